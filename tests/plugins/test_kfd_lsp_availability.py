"""When the lsp tools are offered: a server that can start, for a language present."""

from __future__ import annotations

import sys
from pathlib import Path

from kfd_lsp.availability import decide, extensions_present
from kfd_lsp.servers import ServerSpec

PYTHON = ServerSpec(command=[sys.executable, "--stdio"], extensions=[".py", ".pyi"])
"""A server whose program exists and is executable (what it is does not matter here)."""
TYPESCRIPT = ServerSpec(command=[sys.executable], extensions=[".ts", ".js"])


def test_a_server_for_a_language_present_makes_the_tools_available() -> None:
    assert decide({"python": PYTHON}, {".py"}) is None
    assert decide({"python": PYTHON, "typescript": TYPESCRIPT}, {".js"}) is None


def test_files_of_a_language_without_a_server_say_what_to_install() -> None:
    reason = decide({"typescript": TYPESCRIPT}, {".py", ".md"})
    assert reason is not None
    assert reason.startswith("no language server is installed for the files here (for Python:")
    assert "pip install basedpyright" in reason and "[tools.lsp.servers.<name>]" in reason


def test_servers_for_no_language_present_are_not_offered() -> None:
    reason = decide({"python": PYTHON}, {".rs"})
    assert reason == "no file here is of a language an installed server takes (.py, .pyi)"


def test_a_configured_server_that_cannot_start_is_named() -> None:
    broken = ServerSpec(command=["kfd-no-such-language-server"], extensions=[".py"])
    reason = decide({"python": broken}, {".py"})
    assert reason is not None
    # Python files are here, and no server for them can start.
    assert reason.startswith("no language server is installed for the files here")
    assert decide({"python": broken}, set()) == (
        "the configured language server cannot start: kfd-no-such-language-server is not an "
        "executable"
    )


def test_nothing_installed_and_nothing_known_here() -> None:
    reason = decide({}, set())
    assert reason is not None and reason.startswith("no language server is installed (Python:")


def test_the_walk_skips_hidden_and_vendored_trees_and_stops_when_it_has_seen_enough(
    tmp_path: Path,
) -> None:
    for hidden in (".git/hooks/x.py", ".venv/lib/y.py", "node_modules/z/index.js"):
        (tmp_path / hidden).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / hidden).write_text("")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "README.MD").write_text("")
    assert extensions_present(tmp_path, {".py", ".js", ".md"}) == {".md"}
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.PY").write_text("")
    assert extensions_present(tmp_path, {".py", ".js"}) == {".py"}
    # Top-down: a directory's own entries are seen before what lies deeper.
    deep = tmp_path / "many" / "a"
    (deep / "b").mkdir(parents=True)
    for index in range(20):
        (deep / f"{index}.txt").write_text("")
    (deep / "b" / "c.js").write_text("")
    assert extensions_present(tmp_path / "many", {".js"}, limit=10) == set()
    assert extensions_present(tmp_path / "many", {".js"}, limit=100) == {".js"}
