"""The pure parts of undo, custom commands and hooks: plans, templates, answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfd.checkpoints.diff import file_diff
from kfd.checkpoints.objects import ABSENT, REGULAR, State, blob_id, read_state, unkept
from kfd.checkpoints.plan import Recorded, changed_files, fingerprint, plan
from kfd.checkpoints.restore import put
from kfd.checkpoints.shadow import escape_exclude, parse_status
from kfd.commands.loader import (
    CommandFile,
    allowed_tools,
    command_grants,
    command_name,
    parse,
    split_front_matter,
)
from kfd.commands.template import references, shell_commands, substitute, with_files
from kfd.hooks.run import answer_of
from kfd.protocol import CommandInfo

A, B, C = (State(blob_id(t), REGULAR) for t in (b"a\n", b"b\n", b"c\n"))


def test_undo_restores_what_the_turns_left_and_leaves_what_is_already_back() -> None:
    rows = [Recorded(1, "x", A, B), Recorded(2, "x", B, C), Recorded(2, "y", ABSENT, A)]
    steps = plan(rows, {"x": C, "y": ABSENT})
    assert [(s.path, s.action, s.target, s.turns) for s in steps] == [
        ("x", "restore", A, (1, 2)),
        ("y", "unchanged", ABSENT, (2,)),
    ]


def test_a_file_changed_after_the_turn_is_a_conflict_and_an_unkept_one_is_lost() -> None:
    rows = [Recorded(1, "x", A, B), Recorded(1, "big", unkept("too large"), B)]
    steps = {s.path: s.action for s in plan(rows, {"x": C, "big": B})}
    assert steps == {"x": "conflict", "big": "lost"}


def test_a_turn_that_changed_a_file_back_changed_nothing() -> None:
    assert plan([Recorded(1, "x", A, A)], {"x": C}) == []
    assert changed_files([Recorded(1, "n", ABSENT, A), Recorded(1, "x", A, B)]) == [
        ("n", "added"),
        ("x", "modified"),
    ]


def test_the_fingerprint_changes_with_any_file_state() -> None:
    assert fingerprint({"x": A}) != fingerprint({"x": B})
    assert fingerprint({"x": A, "y": B}) == fingerprint({"y": B, "x": A})


def test_a_diff_names_a_created_file_and_binary_content() -> None:
    text = file_diff("n.txt", ABSENT, A, {A.sha: b"a\n"})
    assert "new file mode 100644" in text and "--- /dev/null" in text and "+a" in text
    binary = State(blob_id(b"\0x"), REGULAR)
    assert "Binary files" in file_diff("b", A, binary, {A.sha: b"a\n", binary.sha: b"\0x"})


def test_a_restore_never_goes_through_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "ws"
    root.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(Exception, match="link"):
        put(root, "link/planted.txt", A, b"a\n")
    assert not (outside / "planted.txt").exists()
    state, _ = read_state(root, "link/x", None, 1000)
    assert not state.kept


def test_git_status_is_read_for_changed_and_untracked_paths_only() -> None:
    listing = (
        b"1 A. N... 000000 100644 100644 " + b"0" * 40 + b" " + A.sha.encode() + b" same.txt\0"
        b"1 AM N... 000000 100644 100644 " + b"0" * 40 + b" " + B.sha.encode() + b" a b.txt\0"
        b"? new.txt\0? nested/\0"
    )
    assert parse_status(listing) == [("a b.txt", B), ("new.txt", ABSENT), ("nested/", ABSENT)]
    assert escape_exclude("dir/a*b [1].txt") == "/dir/a\\*b\\ \\[1\\].txt"


def test_a_template_takes_arguments_files_and_commands() -> None:
    text = substitute("Fix $1 in @src/$2 ($ARGUMENTS) !`git log -1`", 'bug "a b.py"')
    assert text == 'Fix bug in @src/a b.py (bug "a b.py") !`git log -1`'
    assert shell_commands(text) == ["git log -1"]
    assert references("see @a.py, and mail me@example.org @b/c.md.") == ["a.py", "b/c.md"]
    assert substitute("Just do it", "now") == "Just do it\n\nnow\n"
    attached = with_files("p", {"a.py": "x\n"}, {"b": "outside the workspace"})
    assert '<file path="a.py">\nx\n</file>' in attached
    assert "[@b not included: outside the workspace]" in attached


def test_command_files_and_their_front_matter() -> None:
    assert command_name("git/commit.md") == "git:commit"
    assert command_name("Bad Name.md") is None
    front, body = split_front_matter("---\ndescription: x\n---\nbody $1\n")
    assert (front, body) == ("description: x\n", "body $1\n")
    base = CommandInfo(name="c", path="/c.md")
    info, _ = parse("---\nargument-hint: [file]\nmode: nope\ncolour: red\n---\nb\n", base)
    assert info.argument_hint == "[file]"
    assert "unknown key 'colour'" in info.problem and "mode 'nope'" in info.problem
    rules, problems = allowed_tools("Bash(git add:*), Bash(git commit -m *), read")
    assert rules == ["bash(git add *)", "bash(git commit -m *)", "read"] and problems == []
    assert allowed_tools(["bash(ls"])[1]


@pytest.mark.parametrize(
    ("code", "out", "err", "denies", "expected"),
    [
        (2, b"", b"no pushing", True, ("denied", "deny", "no pushing", "")),
        (2, b"", b"3 lint errors", False, ("ok", None, "", "3 lint errors")),
        (0, b'{"decision": "ask", "reason": "sure?"}', b"", True, ("ok", "ask", "sure?", "")),
        (0, b'{"context": "CI is red"}', b"", True, ("ok", None, "", "")),
        (0, b"formatted 1 file", b"", False, ("ok", None, "", "formatted 1 file")),
        (1, b"", b"boom", True, ("failed", None, "", "")),
    ],
)
def test_what_a_hook_answers(
    code: int, out: bytes, err: bytes, denies: bool, expected: tuple[object, ...]
) -> None:
    answer = answer_of(code, out, err, denies=denies)
    assert (answer.outcome, answer.decision, answer.reason, answer.note) == expected
    if out.startswith(b'{"context"'):
        assert answer.context == "CI is red"
    if code == 1:
        assert answer.message == "exit status 1: boom"


async def test_a_commands_output_never_names_a_file_to_attach(tmp_path: Path) -> None:
    from kfd.agent.commands import make_prompt

    (tmp_path / "notes.txt").write_text("private notes\n")
    (tmp_path / "asked.txt").write_text("asked for\n")

    async def run_shell(command: str) -> str:
        return "a commit message that says @notes.txt"

    prompt = await make_prompt(
        "Read @$1, then !`git log -1`", "asked.txt", tmp_path, None, run_shell
    )
    assert '<file path="asked.txt">\nasked for\n</file>' in prompt
    assert "private notes" not in prompt and "says @notes.txt" in prompt


@pytest.mark.parametrize(
    ("body", "arguments"),
    [
        ("Summarise NOTES.md.\n!$9`touch pwned`", ""),
        ("Summarise !$ARGUMENTS`touch pwned` please", ""),
        ("Summarise $1 please", "!`touch pwned`"),
        ("Look at $1 and !`git log -1`", "x` and !`touch pwned"),
    ],
)
async def test_only_the_spans_the_template_shows_run(
    tmp_path: Path, body: str, arguments: str
) -> None:
    """``kfd trust`` lists a command's ``!`cmd``` spans as written: an argument, or an
    empty one (``!$9`cmd```), can neither make a span nor end one."""
    from kfd.agent.commands import make_prompt

    ran: list[str] = []

    async def run_shell(command: str) -> str:
        ran.append(command)
        return "output"

    prompt = await make_prompt(body, arguments, tmp_path, None, run_shell)
    assert ran == shell_commands(body), ran  # what `kfd trust` lists, and only that
    shown = command_grants(CommandFile(CommandInfo(name="c", path="/c.md"), body, ""))
    assert "pwned" not in shown and "pwned" not in "".join(ran)
    assert prompt.count("output") == len(ran)
