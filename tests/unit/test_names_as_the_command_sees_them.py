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
        (r"\u0041", "A"),  # a character in ASCII, in any locale
        (r"\x41\102", "AB"),
        (r"\n\xc3", "\n\udcc3"),
        (r"x\x00y", "x"),  # bash ends the word at a NUL
        (r"\x", "\\x"),
        (r"\xc3\xZ", "\udcc3\\xZ"),  # a `\x` without digits stays where it is
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


def _seen_from_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A daemon in ``/`` (a system service) and a workspace where ``src/y`` is harmless
    and ``<workspace path>/src/y`` (what ``/proc/self/cwd/<workspace path>/src/y`` is
    to a command run in the workspace) is a link to ``.env``: the workspace and its
    path without the leading ``/``."""
    monkeypatch.chdir("/")
    workspace = tmp_path / "ws"
    relative = str(workspace).lstrip("/")
    (workspace / "src").mkdir(parents=True)
    (workspace / ".env").write_text("KEY=1\n")
    (workspace / "src" / "y").write_text("harmless\n")
    (workspace / relative / "src").mkdir(parents=True)
    (workspace / relative / "src" / "y").symlink_to(workspace / ".env")
    return workspace, relative


@pytest.mark.parametrize("mode", ["default", "auto", "plan"])
@pytest.mark.parametrize("change", ["env -C {} cat y", "cd {} && cat y"])
def test_proc_self_cwd_in_a_directory_change_is_the_commands_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, change: str
) -> None:
    """The daemon runs in ``/`` (a system service): ``/proc/self/cwd/<workspace>/src``
    is ``<workspace>/src`` to the daemon, and ``<workspace>/<workspace>/src`` to a
    command run in the workspace, where ``y`` is a link to ``.env``."""
    workspace, relative = _seen_from_root(tmp_path, monkeypatch)
    line = change.format(f"/proc/self/cwd/{relative}/src")
    assert decide_line(workspace, line, mode, RULES) == "deny"


@pytest.mark.parametrize("mode", ["default", "plan"])
@pytest.mark.parametrize(
    "line",
    ["cat d/$'\\xc3'?", "cat d/$'\\303'*", "head d/*$'\\xa9'", "LC_ALL=C; cat d/??", "cat d/??"],
)
def test_a_glob_matches_by_bytes_as_well_as_by_characters(
    tmp_path: Path, mode: str, line: str
) -> None:
    """Round 22: ``?`` is one byte in the C locale (which a line may set), a byte
    escape is a byte: ``d/é`` (C3 A9), a link to ``.env``, is what these name."""
    (tmp_path / ".env").write_text("KEY=1\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "é").symlink_to("../.env")
    assert decide_line(tmp_path, line, mode, RULES) == "deny"


@pytest.mark.parametrize("line", ["LC_ALL=C\ncat $'\\u00e9'", "LANG=C\nhead $'\\u00e9'"])
def test_a_character_escape_beyond_ascii_is_not_taken_as_known(tmp_path: Path, line: str) -> None:
    """Round 22: under the C locale a line sets first, bash leaves ``$'\\u00e9'`` as the
    text ``\\u00E9``: a file of that name (a link to ``.env``) is what it reads."""
    (tmp_path / ".env").write_text("KEY=1\n")
    (tmp_path / "\\u00E9").symlink_to(".env")
    (tmp_path / "é").write_text("harmless\n")
    assert decide_line(tmp_path, line, "default", RULES) != "allow"


@pytest.mark.parametrize(
    "spelled",
    [
        "here/{rel}/src/y",  # a link in the workspace to /proc/self/cwd
        "/proc/self/../self/cwd/{rel}/src/y",
        "/proc/self/task/../cwd/{rel}/src/y",
        "/proc/self/root/proc/self/cwd/{rel}/src/y",
        "/proc/2/cwd/{rel}/src/y",  # the sandbox's second process: in the workspace
    ],
)
def test_a_path_through_proc_is_never_judged_where_the_daemon_finds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelled: str
) -> None:
    """Round 22: ``/proc`` names each process's own directory, root and descriptors;
    resolved by the daemon (in ``/``), such a path names another file than the
    command's, so it is kept under ``/proc``: outside the workspace, it asks."""
    workspace, relative = _seen_from_root(tmp_path, monkeypatch)
    (workspace / "here").symlink_to("/proc/self/cwd")
    line = "cat " + spelled.format(rel=relative)
    for mode in ("default", "plan"):
        assert decide_line(workspace, line, mode, RULES) != "allow", (line, mode)


def test_a_directory_named_proc_in_the_workspace_is_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "notes.txt").write_text("x\n")
    assert decide_line(tmp_path, "cat proc/notes.txt", "default", RULES) == "allow"


@pytest.mark.parametrize(
    "pattern",
    [
        "/proc/self/cwd/{rel}/src/z*",  # the command's directory: expanded there
        "here/{rel}/src/z*",  # a link in the workspace to /proc/self/cwd
        "*/{rel}/src/z*",  # a wildcard that names that link
        "h*/{rel}/src/[z]",
        "/proc/2/cwd/{rel}/src/z*",
        "/proc/*/cwd/{rel}/src/z*",
    ],
)
def test_a_glob_through_proc_is_never_expanded_where_the_daemon_finds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pattern: str
) -> None:
    """Reading the day's change again: a glob was expanded in the daemon's process,
    where ``/proc/self/cwd`` is ``/``: it matched nothing, and the word was taken
    as naming nothing, while the command's ``src/z`` there is a link to ``.env``."""
    workspace, relative = _seen_from_root(tmp_path, monkeypatch)
    (workspace / relative / "src" / "z").symlink_to(workspace / ".env")
    (workspace / "here").symlink_to("/proc/self/cwd")
    line = "cat " + pattern.format(rel=relative)
    for mode in ("default", "plan"):
        assert decide_line(workspace, line, mode, RULES) != "allow", (line, mode)
