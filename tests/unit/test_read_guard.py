"""The read guard (what grep and glob leave out) answers exactly as the read rules do."""

from __future__ import annotations

from gitignore_reference import path_match
from hypothesis import given, settings
from hypothesis import strategies as st

from kfd.policy.defaults import builtin_rules
from kfd.policy.read_guard import ReadGuard
from kfd.policy.rules import SourcedRule, parse_rule

WORKSPACE = "/work/repo"
HOME = "/home/u"


def rules(*texts: str, decision: str = "deny") -> list[SourcedRule]:
    return [SourcedRule(parse_rule(text), decision, "user") for text in texts]  # type: ignore[arg-type]


USER = [
    *rules(
        "read(**/secrets/**)", "read(/etc/shadow)", "read(~/notes/private*)", "read(config/*.key)"
    ),
    *rules("read(docs/draft/**)", decision="ask"),
    *rules("read(src/**)", decision="allow"),  # allow rules never lift a deny, never leave out
    *rules("grep(vendor/**)"),
]
ALL = [*USER, *builtin_rules()]

SEGMENTS = st.sampled_from(
    [
        "src", "secrets", "docs", "draft", "config", "a", ".env", ".env.local", "id_rsa",
        "x.pem", "key.key", "notes", "private1", ".ssh", ".aws", "credentials", "etc",
        "shadow", "vendor", "..", ".", "home", "u", "work", "repo", "README.md", "v.py",
    ]
)  # fmt: skip


def expected(path: str, sourced: list[SourcedRule], tool: str) -> str | None:
    for deciding in ("deny", "ask"):
        for rule in sourced:
            if rule.decision != deciding or rule.rule.spec is None:
                continue
            if rule.rule.tool != "read" and not (tool != "read" and rule.rule.names(tool)):
                continue
            if path_match(rule.rule.spec, path, WORKSPACE, HOME):
                return rule.rule.text
    return None


@settings(max_examples=800, deadline=None)
@given(
    parts=st.lists(SEGMENTS, min_size=1, max_size=6),
    anchor=st.sampled_from([WORKSPACE, HOME, "/", "/tmp"]),
    tool=st.sampled_from(["read", "grep", "glob"]),
)
def test_the_guard_names_the_same_rule_as_the_rules_themselves(
    parts: list[str], anchor: str, tool: str
) -> None:
    import posixpath

    path = posixpath.normpath(posixpath.join(anchor, *parts))
    guard = ReadGuard(ALL, WORKSPACE, HOME, tool)
    assert guard(path) == expected(path, ALL, tool)
    assert guard(path) == expected(path, ALL, tool)  # cached, the same


def test_deny_rules_are_named_before_ask_rules_and_allow_rules_never_count() -> None:
    asked = rules("read(docs/**)", decision="ask")
    allowed = rules("read(**)", decision="allow")
    guard = ReadGuard([*asked, *rules("read(**/*.md)"), *allowed], WORKSPACE, HOME)
    assert guard(f"{WORKSPACE}/docs/a.md") == "read(**/*.md)"
    assert guard(f"{WORKSPACE}/docs/a.txt") == "read(docs/**)"
    assert guard(f"{WORKSPACE}/src/a.py") is None


def test_secret_files_are_named_by_the_built_in_rules_anywhere() -> None:
    guard = ReadGuard(builtin_rules(), WORKSPACE, HOME, "grep")
    assert guard(f"{WORKSPACE}/.env") == "read(**/.env)"
    assert guard(f"{WORKSPACE}/deploy/prod.pem") == "read(**/*.pem)"
    assert guard("/elsewhere/.env.production") == "read(**/.env.*)"
    assert guard(f"{HOME}/.aws/credentials") == "read(~/.aws/**)"
    assert guard(f"{WORKSPACE}/src/env.py") is None


def test_a_guard_without_read_rules_is_false_and_leaves_nothing_out() -> None:
    guard = ReadGuard(rules("bash(rm *)", "web_fetch(domain:x.org)"), WORKSPACE, HOME, "grep")
    assert not guard
    assert guard(f"{WORKSPACE}/.env") is None


def test_a_secret_under_a_directory_with_a_newline_in_its_name_is_named() -> None:
    # pathspec's `**/.env` misses `a\nb/.env` (its `.` stops at a newline): the
    # guard once said "no rule" after its quick test had matched.
    guard = ReadGuard(builtin_rules(), WORKSPACE, HOME, "grep")
    assert guard(f"{WORKSPACE}/a\nb/.env") == "read(**/.env)"
    assert guard(f"{WORKSPACE}/a\nb/c\nd/key.pem") == "read(**/*.pem)"
