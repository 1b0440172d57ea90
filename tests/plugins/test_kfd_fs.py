"""The file tools of kfd_fs, against real files in a real git repository."""

from __future__ import annotations

import hashlib
import os
import stat
import tracemalloc
from typing import TYPE_CHECKING, Any

import pytest

import kfd_fs
from kfd.api import PathAccess, ToolError
from kfd_fs import EditTool, GlobTool, GrepTool, ReadTool, WriteTool
from kfd_fs.globs import compile_glob
from kfd_fs.read import (
    DEFAULT_LIMIT,
    MAX_LINE_CHARS,
    MAX_OUTPUT_CHARS,
    READ_CHUNK_BYTES,
    read_window,
)
from kfd_fs.search import MAX_GLOB_FILES

if TYPE_CHECKING:
    from pathlib import Path

    from kfd.agent.toolcall import CallContext

read_tool, write_tool, edit_tool = ReadTool(), WriteTool(), EditTool()
glob_tool, grep_tool = GlobTool(), GrepTool()


async def read(ctx: CallContext, path: str, **kwargs: Any) -> str:
    return (await read_tool.run(ReadTool.Args(path=path, **kwargs), ctx)).output


async def write(ctx: CallContext, path: str, content: str) -> str:
    return (await write_tool.run(WriteTool.Args(path=path, content=content), ctx)).output


async def edit(ctx: CallContext, path: str, old: str, new: str, replace_all: bool = False) -> str:
    args = EditTool.Args(path=path, old_string=old, new_string=new, replace_all=replace_all)
    return (await edit_tool.run(args, ctx)).output


async def glob(ctx: CallContext, pattern: str, path: str = "") -> list[str]:
    output = (await glob_tool.run(GlobTool.Args(pattern=pattern, path=path), ctx)).output
    return output.splitlines()


async def grep(ctx: CallContext, pattern: str, **kwargs: Any) -> str:
    return (await grep_tool.run(GrepTool.Args(pattern=pattern, **kwargs), ctx)).output


def leftovers(directory: Path) -> list[str]:
    """Temporary files an atomic write might have left behind."""
    return [name for name in os.listdir(directory) if name.startswith(".kfd-")]


def set_mtimes(repo: Path, names_oldest_first: list[str]) -> None:
    for age, name in enumerate(names_oldest_first):
        os.utime(repo / name, (1_600_000_000 + age * 100, 1_600_000_000 + age * 100))


# --------------------------------------------------------------------------
# the plugin


def test_plugin_offers_the_five_file_tools_with_described_schemas_within_budget() -> None:
    tools = {tool.name: tool for tool in kfd_fs.kfd_tools({})}
    assert set(tools) == {"read", "write", "edit", "glob", "grep"}
    assert [name for name, tool in tools.items() if tool.read_only] == ["read", "glob", "grep"]
    assert [name for name, tool in tools.items() if tool.edits_files] == ["write", "edit"]
    for tool in tools.values():
        assert tool.description and tool.schema_budget > 0, tool.name


def test_tools_name_their_paths_and_exact_session_rules() -> None:
    edit_args = EditTool.Args(path="./src/app.py", old_string="a", new_string="b")
    assert edit_tool.paths(edit_args) == [PathAccess("./src/app.py", write=True)]
    assert edit_tool.session_rule(edit_args) == "edit(src/app.py)"
    write_args = WriteTool.Args(path="src/new.py", content="")
    assert write_tool.session_rule(write_args) == "write(src/new.py)"
    assert write_tool.paths(write_args) == [PathAccess("src/new.py", write=True)]
    assert read_tool.paths(ReadTool.Args(path="a.txt")) == [PathAccess("a.txt", write=False)]
    assert read_tool.summary(ReadTool.Args(path="a.txt", offset=10, limit=5)) == "a.txt:10-14"
    assert glob_tool.paths(GlobTool.Args(pattern="*.py")) == [PathAccess(".", write=False)]
    assert grep_tool.summary(GrepTool.Args(pattern="TODO", path="src")) == "TODO in src"


# --------------------------------------------------------------------------
# read


async def test_read_numbers_lines_like_cat_n(repo: Path, ctx: CallContext) -> None:
    (repo / "a.txt").write_text("alpha\n\tbeta\n")
    assert await read(ctx, "a.txt") == "1\talpha\n2\t\tbeta\n"


async def test_read_shows_the_window_and_how_to_continue(repo: Path, ctx: CallContext) -> None:
    (repo / "a.txt").write_text("".join(f"line {n}\n" for n in range(1, 11)))
    output = await read(ctx, "a.txt", offset=3, limit=2)
    assert output.startswith("3\tline 3\n4\tline 4\n")
    assert "line 5" not in output
    assert "Showing lines 3-4 of 10. Continue with offset=5." in output


async def test_read_offset_past_the_end_says_how_long_the_file_is(
    repo: Path, ctx: CallContext
) -> None:
    (repo / "a.txt").write_text("one\ntwo\n")
    with pytest.raises(ToolError, match=r"past the end of a\.txt, which has 2 lines"):
        await read(ctx, "a.txt", offset=5)


async def test_read_cuts_long_lines_with_a_marker(repo: Path, ctx: CallContext) -> None:
    (repo / "wide.txt").write_text("x" * (MAX_LINE_CHARS + 500) + "\nshort\n")
    output = await read(ctx, "wide.txt")
    first = output.splitlines()[0]
    assert first.startswith("1\t" + "x" * MAX_LINE_CHARS + " … [line cut: 2,500 characters]")
    assert "\n2\tshort" in output
    assert "1 line(s) longer than 2000 characters were cut" in output


def test_read_holds_no_more_than_a_chunk_of_a_huge_line_in_memory(repo: Path) -> None:
    # 32 MiB on one line, a two-byte character across every chunk boundary: read
    # must neither hold the line whole (it did, three times over) nor misjudge it.
    line = b"\xc3\xa9" + b"a" * (READ_CHUNK_BYTES - 1) + b"\xc3\xa9" * (16 * 1024 * 1024 - 32768)
    data = line + b"\r\nend\n"
    (repo / "huge.txt").write_bytes(data)
    tracemalloc.start()
    try:
        window = read_window(repo / "huge.txt", "huge.txt", 1, DEFAULT_LIMIT, repo)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, f"read held {peak:,} bytes at once"
    length = len(line.decode())
    assert window.text.startswith(f"1\té{'a' * (MAX_LINE_CHARS - 1)} … [line cut: {length:,}")
    assert "\n2\tend\n" in window.text and "CRLF" in window.text
    assert window.stamp.sha256 == hashlib.sha256(data).hexdigest()
    # A bad byte far into a long line is still found, on its line.
    (repo / "bad.txt").write_bytes(b"ok\n" + b"a" * (3 * READ_CHUNK_BYTES) + b"\xff\n")
    with pytest.raises(ToolError, match=r"line 2 has invalid bytes"):
        read_window(repo / "bad.txt", "bad.txt", 1, DEFAULT_LIMIT, repo)
    (repo / "cut.txt").write_bytes(b"ok\n" + b"a" * (READ_CHUNK_BYTES - 1) + b"\xc3")
    with pytest.raises(ToolError, match=r"line 2 has invalid bytes"):
        read_window(repo / "cut.txt", "cut.txt", 1, DEFAULT_LIMIT, repo)


async def test_read_caps_output_and_hints_to_page_on(repo: Path, ctx: CallContext) -> None:
    (repo / "big.txt").write_text("".join(f"{n:04d}" + "y" * 1500 + "\n" for n in range(400)))
    output = await read(ctx, "big.txt")
    body, _, note = output.rpartition("\n[")
    assert len(body) <= MAX_OUTPUT_CHARS
    last = int(body.splitlines()[-1].split("\t")[0])
    assert 100 < last < 400
    assert f"Output capped at 256 KiB: showing lines 1-{last} of 400" in note
    assert f"Continue with offset={last + 1}" in note


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"PK\x03\x04\x00\x00binary", "binary file"), (b"caf\xe9 latin-1\n", "not UTF-8 text")],
)
async def test_read_refuses_files_that_are_not_utf8_text(
    repo: Path, ctx: CallContext, state: dict[str, Any], content: bytes, reason: str
) -> None:
    (repo / "blob.bin").write_bytes(content)
    with pytest.raises(ToolError, match=reason) as caught:
        await read(ctx, "blob.bin")
    assert "bash" in str(caught.value)
    assert not state.get("read_files")


async def test_read_of_a_directory_suggests_glob(repo: Path, ctx: CallContext) -> None:
    (repo / "src").mkdir()
    with pytest.raises(ToolError, match=r"src is a directory\. Use glob"):
        await read(ctx, "src")


async def test_read_of_a_missing_file_suggests_similar_names(repo: Path, ctx: CallContext) -> None:
    (repo / "src").mkdir()
    (repo / "src" / "config.py").write_text("")
    with pytest.raises(
        ToolError, match=r"src/confg\.py does not exist\. Did you mean: src/config\.py"
    ):
        await read(ctx, "src/confg.py")
    with pytest.raises(ToolError, match="nor does its directory"):
        await read(ctx, "nowhere/config.py")


async def test_read_of_an_empty_file_says_so(repo: Path, ctx: CallContext) -> None:
    (repo / "empty.txt").write_text("")
    assert await read(ctx, "empty.txt") == "empty.txt is empty (0 bytes)."


async def test_read_records_the_hash_and_mtime_of_the_file(
    repo: Path, ctx: CallContext, state: dict[str, Any]
) -> None:
    path = repo / "a.txt"
    path.write_bytes(b"one\ntwo\n")
    await read(ctx, "a.txt", limit=1)
    stamp = state["read_files"][str(path)]
    assert stamp.sha256 == hashlib.sha256(b"one\ntwo\n").hexdigest()
    assert stamp.mtime_ns == path.stat().st_mtime_ns


async def test_read_hides_crlf_and_says_so(repo: Path, ctx: CallContext) -> None:
    (repo / "dos.txt").write_bytes(b"one\r\ntwo\r\n")
    output = await read(ctx, "dos.txt")
    assert output.startswith("1\tone\n2\ttwo\n")
    assert "CRLF" in output


# --------------------------------------------------------------------------
# write


async def test_write_creates_the_file_and_its_parent_directories(
    repo: Path, ctx: CallContext
) -> None:
    result = await write_tool.run(WriteTool.Args(path="a/b/new.py", content="x = 1\ny = 2\n"), ctx)
    assert (repo / "a" / "b" / "new.py").read_text() == "x = 1\ny = 2\n"
    assert result.output == "Created a/b/new.py (2 lines)."
    assert result.display is not None
    assert result.display.diff is not None
    assert "--- /dev/null\n+++ b/a/b/new.py\n" in result.display.diff
    assert "+y = 2\n" in result.display.diff


async def test_write_gives_a_new_file_the_umask_mode(repo: Path, ctx: CallContext) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    await write(ctx, "new.txt", "hi\n")
    assert stat.S_IMODE((repo / "new.txt").stat().st_mode) == 0o666 & ~umask


async def test_write_refuses_to_overwrite_a_file_not_read(repo: Path, ctx: CallContext) -> None:
    (repo / "notes.txt").write_text("precious\n")
    with pytest.raises(ToolError, match=r"you have not read it in this session\. Read it first"):
        await write(ctx, "notes.txt", "clobbered\n")
    assert (repo / "notes.txt").read_text() == "precious\n"


async def test_write_overwrites_a_read_file_atomically_keeping_its_mode(
    repo: Path, ctx: CallContext
) -> None:
    script = repo / "run.sh"
    script.write_text("echo old\n")
    script.chmod(0o754)
    await read(ctx, "run.sh")
    output = await write(ctx, "run.sh", "echo new\necho more\n")
    assert output == "Overwrote run.sh (2 lines)."
    assert script.read_text() == "echo new\necho more\n"
    assert stat.S_IMODE(script.stat().st_mode) == 0o754
    assert leftovers(repo) == []


async def test_write_refuses_when_the_file_changed_since_read(repo: Path, ctx: CallContext) -> None:
    (repo / "a.txt").write_text("v1\n")
    await read(ctx, "a.txt")
    (repo / "a.txt").write_text("v2 by the user\n")
    with pytest.raises(ToolError, match="changed since you last read it"):
        await write(ctx, "a.txt", "v3\n")
    assert (repo / "a.txt").read_text() == "v2 by the user\n"


async def test_write_updates_the_stamp_so_edits_follow_without_a_reread(
    repo: Path, ctx: CallContext
) -> None:
    await write(ctx, "a.txt", "one\n")
    await write(ctx, "a.txt", "two\n")
    await edit(ctx, "a.txt", "two", "three")
    assert (repo / "a.txt").read_text() == "three\n"


async def test_no_tool_follows_a_symlink_and_each_names_its_target(
    repo: Path, ctx: CallContext
) -> None:
    (repo / "real.txt").write_text("old\n")
    (repo / "link.txt").symlink_to("real.txt")
    (repo / "dir").mkdir()
    (repo / "dirlink").symlink_to("dir")
    for call in (
        read(ctx, "link.txt"),
        write(ctx, "link.txt", "new\n"),
        edit_tool.run(EditTool.Args(path="link.txt", old_string="old", new_string="x"), ctx),
        write(ctx, "dirlink/new.txt", "new\n"),
    ):
        with pytest.raises(ToolError, match=r"symbolic link to (real\.txt|dir);.*Use the path"):
            await call
    assert (repo / "link.txt").is_symlink() and (repo / "real.txt").read_text() == "old\n"
    assert not (repo / "dir" / "new.txt").exists()
    await read(ctx, "real.txt")
    await write(ctx, "real.txt", "new\n")
    assert (repo / "real.txt").read_text() == "new\n"


async def test_write_preview_shows_the_diff_without_writing(repo: Path, ctx: CallContext) -> None:
    (repo / "a.txt").write_text("old\n")
    await read(ctx, "a.txt")
    preview = await write_tool.preview(WriteTool.Args(path="a.txt", content="new\n"), ctx)
    assert preview.diff == "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-old\n+new\n"
    assert (repo / "a.txt").read_text() == "old\n"


async def test_the_preview_of_a_write_that_would_fail_raises_its_error(
    repo: Path, ctx: CallContext
) -> None:
    (repo / "a.txt").write_text("old\n")
    with pytest.raises(ToolError, match="have not read it"):
        await write_tool.preview(WriteTool.Args(path="a.txt", content="new\n"), ctx)


# --------------------------------------------------------------------------
# edit

SOURCE = "def greet(name):\n    print('hello', name)\n    return name\n"


async def test_edit_replaces_the_exact_string_and_returns_the_diff(
    repo: Path, ctx: CallContext
) -> None:
    (repo / "app.py").write_text(SOURCE)
    await read(ctx, "app.py")
    result = await edit_tool.run(
        EditTool.Args(path="app.py", old_string="'hello'", new_string="'goodbye'"), ctx
    )
    assert (repo / "app.py").read_text() == SOURCE.replace("'hello'", "'goodbye'")
    assert result.output.startswith("Edited app.py: replaced 1 occurrence (line 2).\n")
    assert "-    print('hello', name)\n+    print('goodbye', name)\n" in result.output
    assert result.display is not None
    assert result.display.diff is not None
    assert result.display.diff.startswith("--- a/app.py\n+++ b/app.py\n")
    assert leftovers(repo) == []


async def test_edit_keeps_the_mode_of_the_file(repo: Path, ctx: CallContext) -> None:
    (repo / "tool").write_text("#!/bin/sh\necho a\n")
    (repo / "tool").chmod(0o755)
    await read(ctx, "tool")
    await edit(ctx, "tool", "echo a", "echo b")
    assert stat.S_IMODE((repo / "tool").stat().st_mode) == 0o755


async def test_edit_refuses_a_file_not_read(repo: Path, ctx: CallContext) -> None:
    (repo / "app.py").write_text(SOURCE)
    with pytest.raises(ToolError, match="Read it first"):
        await edit(ctx, "app.py", "hello", "bye")
    assert (repo / "app.py").read_text() == SOURCE


async def test_edit_refuses_after_an_outside_change(repo: Path, ctx: CallContext) -> None:
    (repo / "app.py").write_text(SOURCE)
    await read(ctx, "app.py")
    (repo / "app.py").write_text(SOURCE + "# formatted\n")
    with pytest.raises(ToolError, match="changed since you last read it"):
        await edit(ctx, "app.py", "hello", "bye")
    assert (repo / "app.py").read_text() == SOURCE + "# formatted\n"
    await read(ctx, "app.py")
    await edit(ctx, "app.py", "hello", "bye")
    assert "bye" in (repo / "app.py").read_text()


async def test_edit_of_a_missing_string_shows_the_closest_line(
    repo: Path, ctx: CallContext
) -> None:
    (repo / "app.py").write_text(SOURCE)
    await read(ctx, "app.py")
    with pytest.raises(ToolError) as caught:
        await edit(ctx, "app.py", "print('helo', nme)", "x")
    message = str(caught.value)
    assert "old_string was not found in app.py" in message
    assert "indentation" in message
    assert "closest line in the file is line 2: \"    print('hello', name)\"" in message


async def test_edit_that_differs_only_in_whitespace_says_so(repo: Path, ctx: CallContext) -> None:
    (repo / "app.py").write_text(SOURCE)
    await read(ctx, "app.py")
    with pytest.raises(ToolError, match="does match when whitespace is ignored"):
        await edit(ctx, "app.py", "def greet(name):\n  print('hello', name)", "x")


async def test_edit_of_an_ambiguous_string_names_every_line(repo: Path, ctx: CallContext) -> None:
    (repo / "a.txt").write_text("x = 1\ny = 2\nx = 1\n\nx = 1\n")
    await read(ctx, "a.txt")
    with pytest.raises(ToolError, match=r"appears 3 times in a\.txt \(at lines 1, 3, 5\)"):
        await edit(ctx, "a.txt", "x = 1", "x = 2")
    assert (repo / "a.txt").read_text() == "x = 1\ny = 2\nx = 1\n\nx = 1\n"


async def test_edit_replace_all_changes_every_occurrence(repo: Path, ctx: CallContext) -> None:
    (repo / "a.txt").write_text("x = 1\ny = 2\nx = 1\n")
    await read(ctx, "a.txt")
    output = await edit(ctx, "a.txt", "x = 1", "x = 9", replace_all=True)
    assert (repo / "a.txt").read_text() == "x = 9\ny = 2\nx = 9\n"
    assert output.startswith("Edited a.txt: replaced 2 occurrences (lines 1, 3).")


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [("same", "same", "identical"), ("", "x", "old_string is empty")],
)
async def test_edit_refuses_a_pointless_edit(
    repo: Path, ctx: CallContext, old: str, new: str, reason: str
) -> None:
    (repo / "a.txt").write_text("same\n")
    await read(ctx, "a.txt")
    with pytest.raises(ToolError, match=reason):
        await edit(ctx, "a.txt", old, new)


async def test_edit_of_a_missing_file_points_to_write(repo: Path, ctx: CallContext) -> None:
    with pytest.raises(ToolError, match=r"does not exist.*use write"):
        await edit(ctx, "new.py", "a", "b")


async def test_consecutive_edits_need_no_reread(repo: Path, ctx: CallContext) -> None:
    (repo / "app.py").write_text(SOURCE)
    await read(ctx, "app.py")
    await edit(ctx, "app.py", "greet", "welcome")
    await edit(ctx, "app.py", "return name", "return None")
    assert (repo / "app.py").read_text() == (
        "def welcome(name):\n    print('hello', name)\n    return None\n"
    )


async def test_edit_matches_multiline_text_in_a_crlf_file(repo: Path, ctx: CallContext) -> None:
    (repo / "dos.txt").write_bytes(b"one\r\ntwo\r\nthree\r\n")
    await read(ctx, "dos.txt")
    await edit(ctx, "dos.txt", "one\ntwo", "uno\ndos")
    assert (repo / "dos.txt").read_bytes() == b"uno\r\ndos\r\nthree\r\n"


async def test_edit_preview_shows_the_diff_without_writing(repo: Path, ctx: CallContext) -> None:
    (repo / "app.py").write_text(SOURCE)
    await read(ctx, "app.py")
    args = EditTool.Args(path="app.py", old_string="return name", new_string="return 1")
    preview = await edit_tool.preview(args, ctx)
    assert preview.diff is not None
    assert "-    return name\n+    return 1\n" in preview.diff
    assert (repo / "app.py").read_text() == SOURCE


# --------------------------------------------------------------------------
# glob


async def test_glob_skips_gitignored_files_and_directories(repo: Path, ctx: CallContext) -> None:
    (repo / ".gitignore").write_text("generated.py\nbuild/\n")
    (repo / "build").mkdir()
    for name in ("app.py", "generated.py", "build/out.py", "notes.md"):
        (repo / name).write_text("")
    assert await glob(ctx, "*.py") == ["app.py"]
    assert await glob(ctx, "**/*.py") == ["app.py"]


async def test_glob_includes_dotfiles_but_never_the_git_directory(
    repo: Path, ctx: CallContext
) -> None:
    (repo / ".github").mkdir()
    (repo / ".github" / "ci.yml").write_text("")
    assert await glob(ctx, "**") == [".github/ci.yml"]
    assert await glob(ctx, "HEAD") == [
        "No files match 'HEAD' in the workspace. "
        "To list everything under a directory, use 'dir/**'."
    ]


async def test_glob_lists_newest_first(repo: Path, ctx: CallContext) -> None:
    for name in ("old.py", "mid.py", "new.py"):
        (repo / name).write_text("")
    set_mtimes(repo, ["old.py", "mid.py", "new.py"])
    assert await glob(ctx, "*.py") == ["new.py", "mid.py", "old.py"]
    set_mtimes(repo, ["new.py", "mid.py", "old.py"])
    assert await glob(ctx, "*.py") == ["old.py", "mid.py", "new.py"]


async def test_glob_caps_the_listing_and_counts_the_rest(repo: Path, ctx: CallContext) -> None:
    for n in range(MAX_GLOB_FILES + 7):
        (repo / f"f{n:03d}.txt").write_text("")
    lines = await glob(ctx, "*.txt")
    assert len(lines) == MAX_GLOB_FILES + 1
    assert lines[-1].startswith("[7 more files not shown")


async def test_glob_in_a_subdirectory_returns_workspace_relative_paths(
    repo: Path, ctx: CallContext
) -> None:
    (repo / "src" / "pkg").mkdir(parents=True)
    (repo / "src" / "pkg" / "mod.py").write_text("")
    (repo / "src" / "top.py").write_text("")
    (repo / "other.py").write_text("")
    set_mtimes(repo, ["src/top.py", "src/pkg/mod.py"])
    assert await glob(ctx, "*.py", path="src") == ["src/pkg/mod.py", "src/top.py"]
    assert await glob(ctx, "pkg/*.py", path="src") == ["src/pkg/mod.py"]


async def test_glob_rejects_bad_paths_and_absolute_patterns(repo: Path, ctx: CallContext) -> None:
    (repo / "a.txt").write_text("")
    with pytest.raises(ToolError, match="does not exist"):
        await glob(ctx, "*", path="missing")
    with pytest.raises(ToolError, match="is a file, not a directory"):
        await glob(ctx, "*", path="a.txt")
    with pytest.raises(ToolError, match="pattern must be relative"):
        await glob(ctx, str(repo / "*.txt"))


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("*.py", ["a.py", "src/deep/b.py"], ["a.pyc", "py"]),
        ("src/*.py", ["src/a.py"], ["src/deep/b.py", "lib/src/a.py"]),
        ("src/**/*.py", ["src/a.py", "src/deep/b.py"], ["lib/a.py"]),
        ("**/test_*.py", ["test_a.py", "x/y/test_b.py"], ["x/atest_b.py"]),
        ("*.{js,ts}", ["a.js", "d/b.ts"], ["c.py"]),
        ("file?.[ch]", ["file1.c", "file2.h"], ["file10.c", "file1.o"]),
        ("[!a]*.md", ["b.md"], ["a.md"]),
        ("docs/", ["docs/x.md", "docs/a/b.md"], ["doc/x.md"]),
    ],
)
def test_glob_patterns_follow_ripgrep_syntax(
    pattern: str, matches: list[str], misses: list[str]
) -> None:
    regex = compile_glob(pattern)
    assert [path for path in matches if regex.match(path)] == matches
    assert [path for path in misses if regex.match(path)] == []


# --------------------------------------------------------------------------
# grep


@pytest.fixture
def code(repo: Path) -> Path:
    (repo / "src").mkdir()
    (repo / "src" / "app.py").write_text("import os\n\ndef main():\n    return os.getcwd()\n")
    (repo / "src" / "util.py").write_text("def helper():\n    return 'OS'\n")
    (repo / "README.md").write_text("Uses os.getcwd\n")
    (repo / ".gitignore").write_text("ignored.py\n")
    (repo / "ignored.py").write_text("import os\n")
    set_mtimes(repo, ["src/util.py", "README.md", "src/app.py"])
    return repo


async def test_grep_lists_matching_files_newest_first_by_default(
    code: Path, ctx: CallContext
) -> None:
    assert await grep(ctx, r"os\.getcwd") == "src/app.py\nREADME.md"


async def test_grep_content_mode_shows_numbered_lines(code: Path, ctx: CallContext) -> None:
    output = await grep(ctx, "getcwd", output_mode="content")
    assert output == "README.md:1:Uses os.getcwd\nsrc/app.py:4:    return os.getcwd()"


async def test_grep_content_mode_shows_context_lines(code: Path, ctx: CallContext) -> None:
    output = await grep(ctx, "def main", output_mode="content", context=1, path="src/app.py")
    assert output == "src/app.py-2-\nsrc/app.py:3:def main():\nsrc/app.py-4-    return os.getcwd()"


async def test_grep_count_mode_counts_per_file(code: Path, ctx: CallContext) -> None:
    output = await grep(ctx, "os", output_mode="count", case_insensitive=True)
    assert output.splitlines() == [
        "README.md:1",
        "src/app.py:2",
        "src/util.py:1",
        "[4 matching lines in 3 files]",
    ]


async def test_grep_is_case_sensitive_unless_asked(code: Path, ctx: CallContext) -> None:
    assert await grep(ctx, "'OS'") == "src/util.py"
    assert await grep(ctx, "'os'") == "No matches for \"'os'\" in the workspace."
    assert await grep(ctx, "'os'", case_insensitive=True) == "src/util.py"


async def test_grep_glob_filter_keeps_gitignore_in_force(code: Path, ctx: CallContext) -> None:
    assert await grep(ctx, "import os", glob="*.py") == "src/app.py"
    assert await grep(ctx, "getcwd", glob="*.md") == "README.md"
    assert await grep(ctx, "getcwd", glob="src/*.py") == "src/app.py"


async def test_grep_caps_output_at_head_limit_with_a_note(repo: Path, ctx: CallContext) -> None:
    (repo / "many.txt").write_text("hit\n" * 30)
    output = await grep(ctx, "hit", output_mode="content", head_limit=10)
    lines = output.splitlines()
    assert lines[:10] == [f"many.txt:{n}:hit" for n in range(1, 11)]
    assert lines[10].startswith("[20 more lines not shown (head_limit=10)")


async def test_grep_reports_a_bad_regex_with_ripgreps_message(code: Path, ctx: CallContext) -> None:
    with pytest.raises(ToolError) as caught:
        await grep(ctx, "foo(")
    message = str(caught.value)
    assert "not a valid regular expression" in message
    assert "unclosed group" in message
    assert "escape" in message.lower()


async def test_grep_says_when_nothing_matches(code: Path, ctx: CallContext) -> None:
    output = await grep(ctx, "nothing_like_this", path="src", glob="*.py")
    assert output == "No matches for 'nothing_like_this' in src (files matching '*.py')."


async def test_grep_of_a_missing_path_is_an_error(code: Path, ctx: CallContext) -> None:
    with pytest.raises(ToolError, match="missing does not exist"):
        await grep(ctx, "x", path="missing")


async def test_a_dotdot_after_a_link_is_refused_never_taken_as_text(
    repo: Path, ctx: CallContext
) -> None:
    """`x/../../f` with `x -> a/b` is the workspace's `f` to the gate (realpath) and to
    the kernel; tidied as text it would be the parent's `f`, outside the workspace.
    The tool refuses it (resolving it again would race the gate); `..` without a
    link is tidied as text, which is what the gate judged."""
    from kfd.policy.paths import resolve

    (repo / "a" / "b").mkdir(parents=True)
    (repo / "x").symlink_to("a/b")
    spelled = "x/../../victim.txt"
    (decided,) = resolve(repo, [PathAccess(spelled, write=True)])
    assert decided.inside_workspace
    with pytest.raises(ToolError, match="goes through the symbolic link"):
        await write(ctx, spelled, "x\n")
    assert not (repo.parent / "victim.txt").exists()
    await write(ctx, "a/b/../plain.txt", "y\n")
    assert (repo / "a" / "plain.txt").read_text() == "y\n"
