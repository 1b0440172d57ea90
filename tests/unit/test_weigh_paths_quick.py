"""Weighing a path the quick way finds exactly what the long way finds.

`kfd.policy.judge_paths` skips the paths no rule names, nothing protects and
the workspace holds (`weigh_each`, `weigh_path`), and `kfd.policy.defaults.protected`
tests each of its cases behind a cheaper one. Both are checked here against
the long way: the same findings, the same allow rule, the same reason, for
paths inside and outside, spelled twice (a symlink), with hard links, under
rules of every kind.
"""

from __future__ import annotations

import os

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kfd.agent.instructions import NAMES as INSTRUCTION_FILES
from kfd.api import PolicyRequest
from kfd.policy.defaults import _SHELL_STARTUP, builtin_rules, protected
from kfd.policy.facts import CallFacts, PathFact
from kfd.policy.judge_paths import _weigh_path, path_rules, weigh_each, weigh_path, weigh_touched
from kfd.policy.rules import SourcedRule, parse_rule
from kfd.policy.verdicts import Findings
from kfd.protocol import MODES, Mode

WORKSPACE = "/repo"
HOME = "/home/u"
OWN = ("/home/u/.config/kfd", "/home/u/.local/state/kfd", "/run/user/1/kfd")

RULES = [
    SourcedRule(parse_rule("edit(src/**)"), "allow", "user"),
    SourcedRule(parse_rule("read(docs/*.md)"), "allow", "project"),
    SourcedRule(parse_rule("edit(/tmp/out/**)"), "allow", "user"),
    SourcedRule(parse_rule("read(secret/**)"), "deny", "user"),
    SourcedRule(parse_rule("edit(build/**)"), "ask", "project"),
    SourcedRule(parse_rule("read(~/notes/**)"), "ask", "user"),
    SourcedRule(parse_rule("edit(src/**)"), "allow", "session"),  # kept: a literal path
    SourcedRule(parse_rule("write(gen/*)"), "allow", "user"),
    *builtin_rules(),
]

COMPONENTS = [
    *("src", "docs", "secret", "build", "gen", "a.py", "b.md", ".env", ".env.local"),
    *(".git", "x.git", ".gitx", ".kfd", "kfd", "config", "hooks", "**", "key.pem", "id_rsa"),
    *(".bashrc", "bashrc", ".config", "fish", "config.fish", "a b", "a\nb", ".ssh", "notes"),
    *sorted(INSTRUCTION_FILES),
]
ROOTS = ["/repo", "/repo/src", "/repo/../repo", "/tmp/out", "/etc", "/home/u", *OWN, "/", ""]


@st.composite
def paths(draw: st.DrawFn) -> str:
    root = draw(st.sampled_from(ROOTS))
    parts = draw(st.lists(st.sampled_from(COMPONENTS), max_size=4))
    path = "/".join([root, *parts]) if parts else root
    return os.path.normpath(path) if path.startswith("/") else path


@st.composite
def path_facts(draw: st.DrawFn) -> PathFact:
    path = draw(paths())
    real = draw(st.one_of(st.just(path), paths()))
    return PathFact(
        word=draw(st.sampled_from([path, os.path.basename(path) or "x", "../x"])),
        path=path,
        real=real,
        inside=draw(st.booleans()),
        write=draw(st.sampled_from([None, True, False])),
        links=draw(st.sampled_from([1, 1, 2])),
        kind=draw(st.sampled_from(["file", "dir", "missing"])),
        instruction=draw(st.sampled_from(["", "", "AGENTS.md"])),
    )


def call(tool: str, mode: Mode = "default") -> CallFacts:
    request = PolicyRequest(
        session_id="s",
        tool=tool,
        arguments={"command": "x"},
        read_only=False,
        edits_files=tool != "bash",
        workspace=WORKSPACE,
        mode=mode,
    )
    return CallFacts(request=request, rules=RULES, home=HOME)


def reference_protected(path: str, own: tuple[str, ...]) -> str | None:
    """`protected` as it was written before its cheap tests were put in front."""
    for directory in own:
        if path.startswith(directory) and path[len(directory) : len(directory) + 1] in ("", "/"):
            return "kfd's own config and state (they decide what kfd may do)"
    parts = path.split(os.sep)
    if ".git" in parts:
        return "git's internals (.git: hooks and config run programs)"
    if ".kfd" in parts:
        return "kfd's project config (.kfd)"
    name = parts[-1]
    if name in _SHELL_STARTUP or path.endswith("/.config/fish/config.fish"):
        return f"a shell start-up file ({name})"
    if name in INSTRUCTION_FILES:
        return f"an instruction file ({name}: kfd gives it to the model in every session)"
    return None


@given(paths(), st.sampled_from([OWN, (), ("/",), ("",), ("/repo",)]))
@settings(max_examples=600, deadline=None)
def test_protected_says_what_its_reference_says(path: str, own: tuple[str, ...]) -> None:
    assert protected(path, own) == reference_protected(path, own)


@given(
    st.lists(path_facts(), max_size=6),
    st.sampled_from([None, True, False]),
    st.booleans(),
    st.sampled_from(["bash", "edit", "write", "read"]),
)
@settings(max_examples=300, deadline=None)
def test_weighing_many_paths_finds_what_weighing_each_the_long_way_finds(
    facts_list: list[PathFact], write: bool | None, exact: bool, tool: str
) -> None:
    facts = call(tool)
    quick, slow = Findings(), Findings()
    weigh_each(facts, facts_list, quick, exact=exact, write=write)
    for fact in facts_list:
        _weigh_path(
            facts, msgspec.structs.replace(fact, write=write), slow, exact=exact, redirect=False
        )
    assert quick.best == slow.best


@given(path_facts(), st.booleans(), st.booleans(), st.sampled_from(["bash", "edit", "read"]))
@settings(max_examples=500, deadline=None)
def test_weighing_one_path_finds_and_returns_what_the_long_way_does(
    fact: PathFact, exact: bool, redirect: bool, tool: str
) -> None:
    facts = call(tool)
    quick, slow = Findings(), Findings()
    allowed = weigh_path(facts, fact, quick, exact=exact, redirect=redirect)
    assert allowed == _weigh_path(facts, fact, slow, exact=exact, redirect=redirect)
    assert quick.best == slow.best


def reference_touched(facts: CallFacts, fact: PathFact, found: Findings, *, exact: bool) -> None:
    """A redirection's path weighed as `weigh_touched` did before it took the quick way:
    the long way, then (for a write no rule allows) the mode, each reason spelled."""
    allow = _weigh_path(facts, fact, found, exact=exact, redirect=bool(fact.write))
    if not fact.write or allow is not None or exact:
        return
    if facts.request.mode == "plan":
        found.deny(
            f"plan mode: the command writes {fact.word}; only read-only commands run "
            "(describe the change instead, or ask the user to switch modes)"
        )
    elif facts.request.mode == "default":
        found.ask(f"the command writes {fact.word}: default mode asks before it writes a file")


@given(
    st.lists(path_facts(), max_size=8),
    st.booleans(),
    st.sampled_from(MODES),
)
@settings(max_examples=400, deadline=None)
def test_weighing_a_lines_redirections_finds_what_the_long_way_finds(
    facts_list: list[PathFact], exact: bool, mode: Mode
) -> None:
    facts = call("bash", mode)
    quick, slow = Findings(), Findings()
    weigh_touched(facts, facts_list, quick, exact=exact)
    for fact in facts_list:
        reference_touched(facts, fact, slow, exact=exact)
    assert quick.best == slow.best


def test_the_quick_way_is_taken_for_a_plain_path_and_never_for_a_remarkable_one() -> None:
    """The cases the equivalence above must cover are all there: a plain file, a rule's
    file, a protected one, a hard link, one outside."""
    facts = call("bash")
    plain = PathFact(word="a.py", path="/repo/a.py", real="/repo/a.py", inside=True, kind="file")
    remarkable = [
        msgspec.structs.replace(plain, path="/repo/secret/a", real="/repo/secret/a"),
        msgspec.structs.replace(plain, path="/repo/.git/config", real="/repo/.git/config"),
        msgspec.structs.replace(plain, real="/repo/.git/hooks/pre-commit"),  # a link to it
        msgspec.structs.replace(plain, links=2),
        msgspec.structs.replace(plain, inside=False, real="/etc/passwd"),
        msgspec.structs.replace(plain, instruction="AGENTS.md"),
    ]
    found = Findings()
    weigh_each(facts, [plain], found, exact=False, write=None)
    assert found.best is None
    for fact in remarkable:
        found = Findings()
        weigh_each(facts, [plain, fact], found, exact=False, write=None)
        assert found.best is not None and found.best.decision != "allow", fact


@pytest.mark.parametrize("tool", ["bash", "edit", "write", "read", "web_fetch"])
def test_a_bash_rule_never_names_a_path(tool: str) -> None:
    """A bash rule's specifier is a command: one that reads like a path (``bash(src/**)``)
    restricts no path, for any tool."""
    rules = [SourcedRule(parse_rule(text), "deny", "user") for text in ("bash(src/**)", "bash(*)")]
    facts = msgspec.structs.replace(call(tool), rules=rules)
    fact = PathFact(word="src/a", path="/repo/src/a", real="/repo/src/a", inside=True)
    for write in (None, True, False):
        assert path_rules(facts, fact, write) == []


def test_what_is_remembered_of_a_spelling_holds_for_its_own_rules_and_hooks_only() -> None:
    """`weigh_each` remembers what the rules and guards say of each spelling: a path
    plain under one rule set, or without hooks, is weighed afresh under another."""
    plain = PathFact(word="x", path="/repo/gen/x", real="/repo/gen/x", inside=True, kind="file")
    found = Findings()
    weigh_each(call("bash"), [plain], found, exact=False, write=None)
    assert found.best is None
    denying = [SourcedRule(parse_rule("read(gen/**)"), "deny", "user"), *RULES]
    found = Findings()
    weigh_each(
        msgspec.structs.replace(call("bash"), rules=denying),
        [plain],
        found,
        exact=False,
        write=None,
    )
    assert found.best is not None and found.best.decision == "deny"
    found = Findings()
    hooked = msgspec.structs.replace(call("bash"), hooks=("/repo/gen",))
    weigh_each(hooked, [plain], found, exact=False, write=None)
    assert found.best is not None and found.best.decision == "ask"
    found = Findings()
    weigh_each(call("bash"), [plain], found, exact=False, write=None)
    assert found.best is None
