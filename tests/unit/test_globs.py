"""Path rules match in time linear in the path, whatever a rule says, and mean what
they meant: the same answers as pathspec's expressions on every input small
enough for those to answer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from gitignore_reference import old_regex
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kfd.policy.globs import NEVER, glob_regex

IN_COMPONENT = ["[ab]", "[a-c]", "[]a]", "[\\]]", "[.]", "[*]"]
"""Bracket expressions that never match a slash, in pathspec's expressions or ours."""
ACROSS = ["[!a]", "[^b]", "[!]]", "[+-0]"]
"""Bracket expressions that pathspec's expressions let match a slash (git does not)."""

ATOMS = st.sampled_from(
    ["a", "b", ".", "*", "*", "?", "\\*", "\\[", "\\", "[a", "\n", *IN_COMPONENT]
)
SEGMENT = st.one_of(
    st.just("**"), st.just("*"), st.lists(ATOMS, min_size=1, max_size=4).map("".join)
)
CHARS = st.sampled_from(["a", "b", "c", ".", "*", "[", "]", "\n", "~"])
COMPONENT = st.lists(CHARS, min_size=1, max_size=6).map("".join)


def patterns(segments: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda lead, parts, trail: lead + "/".join(parts) + trail,
        st.sampled_from(["", "/", "//"]),
        st.lists(segments, min_size=1, max_size=5),
        st.sampled_from(["", "/", " ", "\\ "]),
    )


def matches(expression: str, path: str) -> bool:
    return re.compile(expression, re.DOTALL).match(path) is not None


@settings(max_examples=2000, deadline=None)
@given(patterns(SEGMENT), st.lists(COMPONENT, min_size=1, max_size=5))
@example("**/a*b/**", ["x", "ab", "y"])
@example("a/**/b/**/c", ["a", "b", "b", "c"])
@example("*", ["a\n"])
@example("a*", ["ab\n"])
@example("**/", ["a"])
@example("*/", ["a", "b"])
def test_a_glob_matches_the_paths_pathspec_matched(pattern: str, components: list[str]) -> None:
    path = "/".join(components)
    try:
        old = old_regex(pattern)
    except ValueError:  # a dangling escape: refused, as pathspec refused it
        with pytest.raises(ValueError, match="escaping backslash"):
            glob_regex(pattern)
        return
    assert matches(glob_regex(pattern), path) is matches(old, path), (pattern, path)


@settings(max_examples=600, deadline=None)
@given(
    patterns(st.one_of(SEGMENT, st.sampled_from(ACROSS).map(lambda c: f"a{c}b"))),
    st.lists(COMPONENT, min_size=1, max_size=5),
)
def test_a_bracket_expression_never_matches_more_than_it_did(
    pattern: str, components: list[str]
) -> None:
    path = "/".join(components)
    try:
        old = old_regex(pattern)
    except ValueError:
        return
    if matches(glob_regex(pattern), path):
        assert matches(old, path), (pattern, path)


def test_a_bracket_expression_matches_within_one_component_as_git_has_it() -> None:
    # `git check-ignore` with `/a[!x]b` and `/c[+-0]d` ignores neither a/b nor c/d.
    for pattern, path, one in (("a[!x]b", "a/b", "ayb"), ("c[+-0]d", "c/d", "c.d")):
        assert not matches(glob_regex(pattern), path), pattern
        assert matches(glob_regex(pattern), one), pattern


def test_what_git_discards_matches_nothing_and_a_dangling_escape_is_refused() -> None:
    assert glob_regex("[ab") == NEVER
    assert glob_regex("/") == NEVER
    with pytest.raises(ValueError, match="escaping backslash"):
        glob_regex("a\\")


HOSTILE = [
    "*a" * 9 + "*b",
    "*a" * 40 + "*b",
    "**/" + "*a" * 9 + "*b",
    "**/" + "*a" * 9 + "*b/**",
    "**/" + "a/**/" * 30 + "b",
    "**/" + "*/" * 200 + "b",
    "*/" * 300 + "b",
    "x/" + "**/*a*a*a*a*b/" * 8 + "c",
    "?*" * 60 + "b",
    "[!b]*" * 30 + "b",
    "*" * 300 + "b",
]
"""Rules that held pathspec's expressions for minutes, or far longer."""

LONG_PATHS = [
    "a" * 254 + "c",
    "/".join(["a" * 254 + "c"] * 16),
    "a/" * 2040 + "c",
    "a" * 4090,
    "xa/" * 1360,
]
"""Paths of up to 4 KB, their components up to the kernel's 255 bytes."""

ATTEMPTS = """
import sys
from kfd.policy.rules import PathMatcher, spec_matcher
hostile, paths = {hostile!r}, {paths!r}
for spec in hostile:
    for anchor in ("/ws/", "/elsewhere/"):
        for path in paths:
            PathMatcher([spec], "/ws", "/home/u")(anchor + path)
            spec_matcher(spec, "/ws", "/home/u")(anchor + path)
    PathMatcher(hostile, "/ws", "/home/u")("/ws/" + paths[0])
# and they still name what they name
matcher = PathMatcher([hostile[0], "**/" + "a/**/" * 3 + "b"], "/ws", "/home/u")
assert matcher("/ws/" + "a" * 60 + "b") and not matcher("/ws/" + "a" * 60 + "c")
assert matcher("/elsewhere/a/x/a/a/y/b/c") and not matcher("/elsewhere/a/x/a/y/b/c")
print("done")
"""


def run_bounded(code: str, cwd: Path | None = None) -> str:
    """Run ``code`` in a fresh interpreter; a regression fails the test rather than
    hangs the suite (20 s is a hundred times what the work takes)."""
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=20,
            env=environ,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        raise AssertionError("matching did not finish in 20 s: it backtracks") from expired
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_hostile_rules_over_4_kb_paths_are_matched_promptly_and_still_name_their_paths() -> None:
    assert run_bounded(ATTEMPTS.format(hostile=HOSTILE, paths=LONG_PATHS)).strip() == "done"


DECIDE = """
import asyncio
from pathlib import Path
from kfd.api import PolicyRequest
from kfd.config import PermissionsConfig
from kfd.policy import engine
from kfd.policy.gate import gather
from kfd.policy.rulebook import RuleBook
from kfd.store.db import Store
from kfd.store.rules import RuleStore
from kfd.store.trust import TrustStore

async def decide(book, workspace, command):
    request = PolicyRequest(
        session_id="s", tool="bash", arguments={{"command": command}}, read_only=False,
        edits_files=False, workspace=workspace, mode="default",
    )
    gathered = await gather(book, request, [], "", False)
    return engine.decide_facts(gathered.facts).verdict()

async def main():
    store = await Store.open(Path({db!r}))
    try:
        book = RuleBook(PermissionsConfig(), RuleStore(store), TrustStore(store))
        grep = await decide(book, {workspace!r}, "grep -rn TODO .")
        cat = await decide(book, {workspace!r}, "cat {denied}")
        print(grep.decision, cat.decision, cat.reason)
    finally:
        await store.close()

asyncio.run(main())
"""


def test_an_untrusted_projects_hostile_deny_rule_does_not_hold_a_decision(tmp_path: Path) -> None:
    """The attack as found: a cloned repository whose ``.kfd/config.toml`` (untrusted:
    its deny rules apply at once) denies ``read(*a*a*a*a*a*a*a*a*a*b)`` and which
    commits a file of 60 ``a`` s and a ``c``; ``grep -rn TODO .`` held the daemon
    for minutes."""
    workspace = tmp_path / "repo"
    (workspace / ".kfd").mkdir(parents=True)
    rule = "read(" + "*a" * 9 + "*b)"
    (workspace / ".kfd" / "config.toml").write_text(f'[permissions]\ndeny = ["{rule}"]\n')
    (workspace / ("a" * 60 + "c")).write_text("TODO: nothing\n")
    denied = "a" * 10 + "b"
    (workspace / denied).write_text("TODO: secret\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-C", str(workspace)]
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "clone"], check=True)
    code = DECIDE.format(db=str(tmp_path / "kfd.db"), workspace=str(workspace), denied=denied)
    grep, cat, *reason = run_bounded(textwrap.dedent(code), cwd=tmp_path).split()
    assert cat == "deny" and rule in " ".join(reason)  # the rule applies
    assert grep != "allow"  # the tree holds a file it denies
