"""Rule syntax, rule sources and the store of "always" rules: what good and bad
input gets."""

from __future__ import annotations

from pathlib import Path

import pytest
from gitignore_reference import path_match
from hypothesis import given, settings
from hypothesis import strategies as st

from kfd.config import PermissionsConfig, load, load_project
from kfd.errors import ConfigError
from kfd.policy.rulebook import RuleBook
from kfd.policy.rules import (
    MAX_RULE_CHARS,
    PathMatcher,
    Rule,
    RuleError,
    domain_match,
    grant_rule,
    grants_of,
    parse_rule,
    spec_matcher,
)
from kfd.store.db import Store
from kfd.store.rules import RuleStore
from kfd.store.trust import TrustStore


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("bash(git status)", Rule("bash(git status)", "bash", "git status")),
        ("  bash(npm run test *) ", Rule("bash(npm run test *)", "bash", "npm run test *")),
        ("edit(src/**)", Rule("edit(src/**)", "edit", "src/**")),
        ("mcp__github__*", Rule("mcp__github__*", "mcp__github__*", None)),
        ("bash(echo (a))", Rule("bash(echo (a))", "bash", "echo (a)")),
        (
            "web_fetch(domain:docs.python.org)",
            Rule("web_fetch(domain:docs.python.org)", "web_fetch", "domain:docs.python.org"),
        ),
    ],
)
def test_rules_parse(text: str, rule: Rule) -> None:
    assert parse_rule(text) == rule


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is not a rule"),
        ("rm -rf /", "is not a rule"),
        ("bash(git status", "is not a rule"),
        ("bash()", "empty"),
        ("bash(   )", "empty"),
        ("bash(echo 'unclosed)", "unbalanced quotes"),
        ("ba\0sh(x)", "is not a rule"),
        ("bash(" + "x" * MAX_RULE_CHARS + ")", "at most"),
    ],
)
def test_garbage_rules_are_refused_with_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(RuleError, match=says):
        parse_rule(text)


@pytest.mark.parametrize(
    ("spec", "path", "matches"),
    [
        ("src/**", "/ws/src/a/b.py", True),
        ("src/**", "/ws/lib/src/b.py", False),
        ("a.py", "/ws/a.py", True),
        ("a.py", "/ws/sub/a.py", False),  # relative specifiers are anchored
        ("**/.env", "/ws/.env", True),
        ("**/.env", "/elsewhere/.env", True),  # `**/` reaches out of the workspace
        ("src/**", "/elsewhere/src/a", False),
        ("~/.ssh/**", "/home/u/.ssh/id_rsa", True),
        ("/etc/**", "/etc/passwd", True),
        ("", "/ws/a", False),
    ],
)
def test_path_specifiers(spec: str, path: str, matches: bool) -> None:
    assert path_match(spec, path, "/ws", "/home/u") is matches


@pytest.mark.parametrize(
    ("pattern", "url", "matches"),
    [
        ("docs.python.org", "https://docs.python.org/3/", True),
        ("docs.python.org", "https://docs.python.org.evil.example/", False),
        ("*.python.org", "https://docs.python.org/", True),
        ("docs.python.org", "not a url", False),
        ("docs.python.org", "http://[::1", False),
        ("docs.python.org", "", False),
        ("evil.example", "https://EVIL.example./x", True),
        ("*.evil.example", "https://a.\uff45vil.example/", True),  # fullwidth e, as IDNA sends it
        ("evil.example", "https://user@evil.example/", True),
        ("evil.example", "https://evil.example%2f@good.org/", False),
        ("bücher.de", "https://xn--bcher-kva.de/", True),
    ],
)
def test_domain_specifiers(pattern: str, url: str, matches: bool) -> None:
    assert domain_match(pattern, url) is matches


def test_grants_are_kept_per_tool() -> None:
    rules = [grant_rule("bash", "unsandboxed"), "bash(ls)", grant_rule("other", "x")]
    assert grants_of(rules, "bash") == frozenset({"unsandboxed"})


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ('[permissions]\nallow = ["bash(ls"]\n', "allow: 'bash(ls' is not a rule"),
        ('[permissions]\ndeny = "bash(ls)"\n', "Expected `array`"),
        ("[permissions]\nalow = []\n", "unknown field `alow`"),
        ('[sandbox]\nnetwork = "yes"\n', "Expected `bool`"),
        ("[sandbox]\nenv_allow = [1]\n", "Expected `str`"),
    ],
)
def test_a_bad_permissions_or_sandbox_table_stops_the_config_with_its_key(
    tmp_path: Path, toml: str, says: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as error:
        load(path, environ={})
    assert says in str(error.value) and str(path) in str(error.value)


def test_a_project_config_holds_only_permissions(tmp_path: Path) -> None:
    assert load_project(tmp_path).permissions == PermissionsConfig()  # absent is fine
    (tmp_path / ".kfd").mkdir()
    (tmp_path / ".kfd" / "config.toml").write_text('[model]\nmodel = "x"\n')
    with pytest.raises(ConfigError, match="unknown field `model`"):
        load_project(tmp_path)
    (tmp_path / ".kfd" / "config.toml").write_text("[permissions\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_project(tmp_path)


async def test_always_rules_are_kept_per_project_and_read_with_the_other_sources(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "kfd.db")
    try:
        project = tmp_path / "project"
        (project / ".git").mkdir(parents=True)
        (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
        (project / "sub").mkdir()
        book = RuleBook(
            PermissionsConfig(deny=["bash(curl *)"]), RuleStore(store), TrustStore(store)
        )
        kept = await book.keep(str(project / "sub"), "bash(make)", "s1")
        assert (kept.project, kept.rule, kept.session) == (str(project), "bash(make)", "s1")
        again = await book.keep(str(project), "bash(make)", "s2")
        assert again.id == kept.id  # kept once
        with pytest.raises(RuleError):
            await book.keep(str(project), "not a rule at all", "s1")

        applicable = await book.applicable(str(project), ["bash(ls)"])
        sources = [(r.rule.text, r.source) for r in applicable.rules[:3]]
        assert sources == [
            ("bash(make)", "always"),
            ("bash(ls)", "session"),
            ("bash(curl *)", "user"),
        ]

        (project / ".kfd").mkdir()
        (project / ".kfd" / "config.toml").write_text('[permissions]\nask = ["bash(npm *)"]\n')
        applicable = await book.applicable(str(project))
        assert ("bash(npm *)", "project") in [(r.rule.text, r.source) for r in applicable.rules]
        (project / ".kfd" / "config.toml").write_text("garbage = = =")
        broken = await book.applicable(str(project))  # the last good rules go on applying
        assert ("bash(npm *)", "project") in [(r.rule.text, r.source) for r in broken.rules]
        assert broken.problems == [] and "not valid TOML" in book.problem(str(project))

        other = tmp_path / "other"
        other.mkdir()
        assert next(r.source for r in (await book.applicable(str(other))).rules) == "user"

        removed = await book.remove(kept.id or 0)
        assert removed is not None and removed.rule == "bash(make)"
        assert await book.remove(kept.id or 0) is None
        assert next(r.source for r in (await book.applicable(str(project))).rules) != "always"
    finally:
        await store.close()


SPECS = st.sampled_from(
    [
        "**/.env",
        "**/.env.*",
        "**/*.pem",
        "**/id_rsa",
        "**/secrets/**",
        "secrets/**",
        "config/*.toml",
        "~/.ssh/**",
        "~/.aws/**",
        "/etc/shadow",
        "/etc/*.conf",
        "src/**/*.key",
        # Kept rules (escaped: that one path), bare names, odd and broad specifiers.
        "src/\\*\\*",
        "secrets/\\[x\\]",
        "cat *",
        "[ *",
        "**",
        "*.toml",
        "./src/**",
        "../u/**",
        "~",
        "/",
    ]
)
PARTS = st.sampled_from(
    ["ws", "src", "secrets", ".env", "**", "[x]", "cat x", "[ a", ".env.local", "a.pem",
     "id_rsa", "config", "x.toml", "home", "u", ".ssh", ".aws", "etc", "shadow", "a.conf",
     "deep", "k.key", "tmp"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(SPECS, max_size=5), st.lists(PARTS, min_size=1, max_size=6))
def test_the_fast_path_matcher_agrees_with_path_match(specs: list[str], parts: list[str]) -> None:
    path = "/" + "/".join(parts)
    workspace, home = "/ws", "/home/u"
    expected = any(path_match(spec, path, workspace, home) for spec in specs)
    assert PathMatcher(specs, workspace, home)(path) is expected


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ("**/.env", "/ws/a\nb/.env"),
        ("src/**/*.key", "/ws/src/a\nb/x.key"),
        ("secrets/**", "/ws/secrets/a\nb"),
        ("/etc/**/*.conf", "/etc/a\nb/x.conf"),
        ("**/secrets/**", "/elsewhere/secrets/a\nb"),
    ],
)
def test_a_path_with_a_newline_in_it_is_matched_like_any_other(spec: str, path: str) -> None:
    # pathspec's `.` stops at a newline: `cat 'a<newline>b/.env'` was allowed
    # past read(**/.env). Every decision matches with the compiled matcher.
    assert PathMatcher([spec], "/ws", "/home/u")(path)
    assert spec_matcher(spec, "/ws", "/home/u")(path)


def test_a_name_rule_covers_the_files_backups_and_no_other_name() -> None:
    matcher = PathMatcher(["**/.env", "**/*.pem", "**/id_rsa"], "/ws", "/home/u")
    for path in ("/ws/.env~", "/ws/.env.bak", "/ws/a/server.pem~", "/ws/id_rsa.old"):
        assert matcher(path), path
    for path in ("/ws/id_rsa.pub", "/ws/.envrc", "/ws/envy", "/ws/.env~x", "/ws/pem"):
        assert not matcher(path), path


@settings(max_examples=300, deadline=None)
@given(
    st.lists(SPECS, max_size=5),
    st.lists(st.lists(PARTS, min_size=1, max_size=6), min_size=1, max_size=8),
    st.sampled_from([1, 3, 1000]),
)
def test_a_matcher_that_remembers_what_it_matched_agrees_path_after_path(
    specs: list[str], paths: list[list[str]], remember: int
) -> None:
    """A matcher remembers paths and their components between calls (and forgets them
    past ``remember``): each answer is still `path_match`'s."""
    matcher = PathMatcher(specs, "/ws", "/home/u", remember=remember)
    for parts in [*paths, *paths]:
        path = "/" + "/".join(parts)
        expected = any(path_match(spec, path, "/ws", "/home/u") for spec in specs)
        assert matcher(path) is expected, path


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("read(a\\)", "ends with an escaping backslash"),
        ("edit(src/x\\)", "ends with an escaping backslash"),
        (f"read({'a' * 5000})", "a path rule is at most"),
    ],
)
def test_a_path_rule_no_decision_could_match_is_refused_when_read(text: str, why: str) -> None:
    """Checked where the config is read (the file asks until it is fixed), not at each
    decision of the workspace, where it made every call fail."""
    with pytest.raises(RuleError, match=why):
        parse_rule(text)
    assert parse_rule("read(a\\\\)").spec == "a\\\\"  # an escaped backslash is a name
