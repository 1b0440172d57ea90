"""A word resolved the quick way gives exactly the fact `path_fact` gives.

`kfd.policy.line_facts` resolves the many words of a long command with one
``lstat`` each (a directory's real path is remembered for the line), falling
back to `path_fact` where the last component is a symlink. In a real tree of
files, directories, symlinks (to files, to directories, dangling, looping,
out of the tree), hard links and odd names, every word, from every base,
must give the same `PathFact`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfd.policy.line_facts import _Gatherer, line_facts
from kfd.policy.paths import real_path
from kfd.policy.reading import _all_plain
from kfd.policy.shell import SimpleCommand, analyze
from kfd.policy.shell.model import Assignment, Redirect, command_key
from kfd.policy.word_paths import normal_relative, path_fact

NAMES = ["src", "a.py", "link", "dir-link", "out", "dangling", "loop", "hard", "gone", "..", "."]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("facts")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret").write_text("x")
    workspace = root / "ws"
    (workspace / "src" / "deep").mkdir(parents=True)
    (workspace / "src" / "a.py").write_text("x")
    (workspace / "src" / "deep" / "a.py").write_text("x")
    (workspace / "a.py").write_text("x")
    (workspace / "link").symlink_to("src/a.py")
    (workspace / "src" / "dir-link").symlink_to("deep")
    (workspace / "dir-link").symlink_to(outside)
    (workspace / "out").symlink_to(outside / "secret")
    (workspace / "dangling").symlink_to("nowhere")
    (workspace / "loop").symlink_to("loop")
    os.link(outside / "secret", workspace / "hard")
    (workspace / "src" / "odd name\nx").write_text("x")
    os.mkfifo(workspace / "fifo")
    return workspace


def gatherer(workspace: Path, bases: list[str]) -> _Gatherer:
    return _Gatherer(str(workspace), real_path(str(workspace)), bases, None, [], [], {})


def same(workspace: Path, word: str, base: str) -> None:
    quick = gatherer(workspace, [str(workspace), base]).resolve(word, base)
    assert quick == path_fact(word, base, real_path(str(workspace))), (word, base)


@given(
    st.lists(st.sampled_from([*NAMES, "src/deep", "odd name\nx", "fifo", ""]), max_size=5),
    st.sampled_from(["", "/", "//", "./", "../"]),
    st.sampled_from(["", "/", "/."]),
    st.sampled_from(["", "src", "src/deep", "dir-link", "src/dir-link", ".."]),
)
@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_every_word_from_every_base_gives_the_same_fact(
    tree: Path, parts: list[str], lead: str, tail: str, base: str
) -> None:
    word = lead + "/".join(parts) + tail
    if not word:
        return
    if word.startswith("/"):
        word = str(tree) + word  # an absolute path into the tree
    same(tree, word, os.path.normpath(os.path.join(str(tree), base)) if base else str(tree))


@pytest.mark.parametrize(
    "word",
    [
        *("a.py", "src/a.py", "link", "out", "hard", "dangling", "loop", "src/dir-link/a.py"),
        *("fifo", "dir-link/secret", "src/../out", "./src//a.py", "src/", "/", "//etc", "gone/x"),
        "a.py/x",
        *("loop/src", "loop//src", "src/dir-link//a.py"),
    ],
)
def test_the_paths_that_matter_give_the_same_fact(tree: Path, word: str) -> None:
    same(tree, word, str(tree))
    # The facts a decision reads: where it really is, what it is, its hard links.
    fact = gatherer(tree, [str(tree)]).resolve(word, str(tree))
    if word == "hard":
        assert fact.links == 2 and fact.kind == "file"
    if word in ("out", "dir-link/secret"):
        assert not fact.inside
    if word == "fifo":
        assert fact.kind == "other"


@pytest.mark.parametrize("fast_path", [True, False])
def test_a_command_met_again_writing_other_files_is_listed_once(
    tree: Path, fast_path: bool
) -> None:
    """A command that differs from one before only by the files its redirections write
    is listed once (`ShellAnalysis.commands`), by either parser; every file written is
    still a fact of the line. One that reads another file by redirection is listed
    again with it (what it reads may be its data: `kfd.policy.unpack_facts`), and
    commands that differ only by their redirections are gathered once (`command_key`)."""
    workspace = str(tree / "ws")
    line = "cat a.py > one; cat a.py > two; cat a.py >> three 2> four; cat src/a.py"
    analysis = analyze(line, fast_path=fast_path)
    assert [c.source for c in analysis.commands] == ["cat a.py", "cat src/a.py"]
    assert [r.target for r in analysis.commands[0].redirects] == ["one"]
    facts = line_facts(line, workspace)
    assert [cf.command.argv for cf in facts.commands] == [["cat", "a.py"], ["cat", "src/a.py"]]
    assert [fact.word for fact in facts.redirects] == ["one", "two", "three", "four"]
    assert all(fact.write for fact in facts.redirects)
    reading = analyze("patch < a.diff > one; patch < b.diff > two; patch < a.diff > three")
    assert [[r.target for r in c.redirects] for c in reading.commands] == [
        ["a.diff", "one"],
        ["b.diff", "two"],
    ]
    facts = line_facts("cat a.py < x > one; cat a.py < y > two", workspace)
    assert [cf.command.redirects[0].target for cf in facts.commands] == ["x", "y"]
    assert facts.commands[0].paths == facts.commands[1].paths
    assert facts.commands[0].key == facts.commands[1].key


@given(st.lists(st.text(alphabet="-@=:\0a/. ", max_size=4), max_size=5))
@settings(max_examples=500, deadline=None)
def test_plain_words_are_told_apart_as_the_pattern_told_them(words: list[str]) -> None:
    """`kfd.policy.reading` takes each word of a line of plain words as itself; which
    are plain it tells by substring tests, as this expression once did."""
    assert _all_plain(words) == (re.search(r"(?:^|\0)[-@]|[=:]", "\0".join(words)) is None)


def test_each_command_keeps_its_key_and_a_repeated_writer_writes_its_operands(tree: Path) -> None:
    """The key kept for a command is its `command_key` (the decision groups commands by
    it), and a command met again still names the files it writes."""
    facts = line_facts("tee log > one; tee log > two; tee b; sort -o out x", str(tree))
    assert [cf.key for cf in facts.commands] == [command_key(cf.command) for cf in facts.commands]
    assert sorted({fact.word for fact in facts.redirects}) == ["b", "log", "one", "out", "two"]


@given(st.text(alphabet="a./\n\0", max_size=8))
@settings(max_examples=1000, deadline=None)
def test_a_normal_relative_word_is_told_as_the_pattern_told_it(word: str) -> None:
    """`normal_relative` tells by substring tests the words this expression told: a
    relative path that `os.path.normpath` leaves as it is."""
    pattern = re.compile(r"(?!\.\.?(?:/|\Z))[^/]+(?:/(?!\.\.?(?:/|\Z))[^/]+)*")
    assert normal_relative(word) == (pattern.fullmatch(word) is not None)


_WORDS = st.lists(st.sampled_from(["a", "b", "-c"]), max_size=2)
_COMMANDS = st.builds(
    SimpleCommand,
    argv=_WORDS,
    static=st.booleans(),
    source=st.sampled_from(["a", "b"]),
    wrappers=st.lists(_WORDS, max_size=1),
    assignments=st.lists(
        st.builds(Assignment, st.just("V"), st.sampled_from(["1", "2"]), st.booleans()), max_size=1
    ),
    redirects=st.lists(
        st.builds(
            Redirect, st.sampled_from(["read", "write"]), st.sampled_from(["o", "p"]), st.booleans()
        ),
        max_size=2,
    ),
    chdir=_WORDS,
    git_config=_WORDS,
    open_ended=st.booleans(),
    dynamic=st.dictionaries(st.integers(0, 2), st.sampled_from(["x", "y"]), max_size=2),
    patterns=st.dictionaries(st.integers(0, 2), st.sampled_from(["*", "?"]), max_size=2),
    wrapper_words=_WORDS,
)


@given(_COMMANDS, _COMMANDS, st.sampled_from(SimpleCommand.__struct_fields__))
@settings(max_examples=2000, deadline=None)
def test_a_commands_key_tells_commands_apart_as_a_copy_without_redirections_did(
    one: SimpleCommand, other: SimpleCommand, field: str
) -> None:
    """`command_key` encodes every field but the redirections, by place: two commands
    share a key exactly when the copies of both without their redirections, encoded,
    are the same (as the key once was made), and a command differing in one field
    only (any of them) is told apart by that field alone."""
    encode = msgspec.msgpack.Encoder().encode

    def reference(command: SimpleCommand) -> bytes:
        return encode(msgspec.structs.replace(command, redirects=[]))

    one_field = msgspec.structs.replace(one, **{field: getattr(other, field)})
    for command in (other, one_field):
        assert (command_key(one) == command_key(command)) == (reference(one) == reference(command))
