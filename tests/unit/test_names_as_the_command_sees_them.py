"""A name is judged where and as the command meets it (round 20).

- ``$'\\xHH'`` and ``$'\\NNN'`` give bytes, not characters: ``$'\\xc3'`` names
  the one byte C3 on disk (a link to ``.env`` there), not "Ã" (two bytes).
- ``/proc/self/cwd`` in a directory a line changes into (``env -C``, ``cd``)
  is the command's directory then, not the daemon's: its files are judged there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kfd.config import PermissionsConfig
from kfd.policy.defaults import builtin_rules
from kfd.policy.rulebook import configured
from kfd.policy.shell.words import decode_ansi_c
from kfd.testing.decide import decide_line

RULES = [*configured(PermissionsConfig(allow=["bash(cat *)"]), "user"), *builtin_rules()]


@pytest.mark.parametrize(
    ("body", "decoded"),
    [
        (r"\xc3", "\udcc3"),
        (r"\351", "\udce9"),
        (r"\xc3\xa9", "é"),
        (r"\303\251", "é"),
        (r"a\xc3b", "a\udcc3b"),
        (r"\u00e9", "é"),  # a character: its UTF-8 bytes
        (r"\x41\102", "AB"),
        (r"\n\xc3", "\n\udcc3"),
        (r"x\x00y", "x"),  # bash ends the word at a NUL
        (r"\x", "\\x"),
    ],
)
def test_byte_escapes_decode_to_the_bytes_bash_passes(body: str, decoded: str) -> None:
    assert decode_ansi_c(body) == decoded
    assert os.fsencode(decoded) == os.fsencode(decode_ansi_c(body) or "")


@pytest.mark.parametrize("mode", ["default", "auto", "plan"])
@pytest.mark.parametrize("spelled", ["$'\\xc3'", "$'\\303'"])
def test_a_link_named_by_a_byte_escape_is_judged_as_what_it_leads_to(
    tmp_path: Path, mode: str, spelled: str
) -> None:
    (tmp_path / ".env").write_text("KEY=1\n")
    os.symlink(".env", os.path.join(tmp_path, os.fsdecode(b"\xc3")))
    (tmp_path / "\u00c3").write_text("harmless\n")  # what the old reading looked at
    assert decide_line(tmp_path, f"cat {spelled}", mode, RULES) == "deny"


@pytest.mark.parametrize("mode", ["default", "auto", "plan"])
@pytest.mark.parametrize("change", ["env -C {} cat y", "cd {} && cat y"])
def test_proc_self_cwd_in_a_directory_change_is_the_commands_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, change: str
) -> None:
    """The daemon runs in ``/`` (a system service): ``/proc/self/cwd/<workspace>/src``
    is ``<workspace>/src`` to the daemon, and ``<workspace>/<workspace>/src`` to a
    command run in the workspace, where ``y`` is a link to ``.env``."""
    monkeypatch.chdir("/")
    workspace = tmp_path / "ws"
    relative = str(workspace).lstrip("/")
    (workspace / "src").mkdir(parents=True)
    (workspace / ".env").write_text("KEY=1\n")
    (workspace / "src" / "y").write_text("harmless\n")
    (workspace / relative / "src").mkdir(parents=True)
    (workspace / relative / "src" / "y").symlink_to(workspace / ".env")
    line = change.format(f"/proc/self/cwd/{relative}/src")
    assert decide_line(workspace, line, mode, RULES) == "deny"
