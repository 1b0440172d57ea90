"""Properties of the permission engine, over generated command lines (hypothesis).

However an allowed command and a denied one are put together (chained, piped,
nested in substitutions, subshells, ``bash -c`` scripts, wrappers, control
flow), in whatever mode, even when the user allows every command, the line
is never allowed.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfd.api import PolicyRequest
from kfd.config import PermissionsConfig
from kfd.policy.defaults import builtin_rules
from kfd.policy.engine import decide_facts
from kfd.policy.facts import CallFacts
from kfd.policy.line_facts import line_facts
from kfd.policy.rulebook import configured
from kfd.protocol import MODES, Mode

ALLOWED = [
    "git status",
    "ls -la",
    "cat README.md",
    "npm run test",
    "npm run test -- --watch",
    "make",
    "echo hello",
    "true",
]
DENIED = [
    "rm -rf build",
    "rm -fr /",
    "rm -r -f ~/x",
    "/bin/rm -rf .",
    "git push --force",
    "git push origin main --force",
    "curl http://127.0.0.1/",
    "curl -s http://127.0.0.1/x",
    "cat .env",
    "cat src/../.env",
    "head -c 10 .env.local",
]
RULES = PermissionsConfig(
    # Even with every command allowed, a denied one is never allowed.
    allow=[*(f"bash({c})" for c in ALLOWED), "bash(*)"],
    deny=["bash(rm -rf *)", "bash(git push --force *)", "bash(curl *)"],
)
SOURCES = [*configured(RULES, "user"), *builtin_rules()]


def wrapped(inner: str) -> st.SearchStrategy[str]:
    """``inner`` run through one of the ways a line can hide a command."""
    quoted = shlex.quote(inner)
    return st.sampled_from(
        [
            f"( {inner} )",
            f"{{ {inner}; }}",
            f"! {inner}",
            f"time {inner}",
            f"echo $( {inner} )",
            f"echo `{inner}`",
            f"cat <( {inner} )",
            f"bash -c {quoted}",
            f"sh -c {quoted}",
            f"timeout 5 bash -c {quoted}",
            f"env FOO=1 {inner}",
            f"nice -n 5 {inner}",
            f"nohup {inner}",
            f"command {inner}",
            f"sudo {inner}",
            f"if true; then {inner}; fi",
            f"while false; do {inner}; done",
            f"for x in a b; do {inner}; done",
            f"case x in x) {inner};; esac",
            f"f() {{ {inner}; }}; f",
            f"eval {quoted}",
            f"{inner} > out.txt",
            f"{inner} 2>&1 | cat",
        ]
    )


def joined(left: str, right: str) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [
            f"{left} && {right}",
            f"{left} || {right}",
            f"{left}; {right}",
            f"{left} | {right}",
            f"{left} & {right}",
            f"{left}\n{right}",
            f"{right} && {left}",
            f"{right} | {left}",
        ]
    )


def hidden(inner: str, depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return st.just(inner)
    return wrapped(inner).flatmap(lambda line: hidden(line, depth - 1))


@st.composite
def compositions(draw: st.DrawFn) -> str:
    allowed = draw(st.sampled_from(ALLOWED))
    denied = draw(st.sampled_from(DENIED))
    denied = draw(hidden(denied, draw(st.integers(0, 2))))
    line = draw(joined(allowed, denied))
    return draw(st.one_of(st.just(line), hidden(line, 1)))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("props").resolve()
    (root / "README.md").write_text("# demo\n")
    (root / ".env").write_text("TOKEN=x\n")
    (root / ".env.local").write_text("TOKEN=y\n")
    (root / "src").mkdir()
    return root


def decision(workspace: Path, line: str, mode: Mode) -> str:
    request = PolicyRequest(
        session_id="s",
        tool="bash",
        arguments={"command": line},
        read_only=False,
        edits_files=False,
        workspace=str(workspace),
        mode=mode,
        session_rule=f"bash({line})",
    )
    facts = CallFacts(request=request, rules=SOURCES, line=line_facts(line, str(workspace)))
    return decide_facts(facts).decision


def test_the_parts_alone_are_decided_as_expected(workspace: Path) -> None:
    for line in ALLOWED:
        assert decision(workspace, line, "default") == "allow", line
    for line in DENIED:
        assert decision(workspace, line, "auto") == "deny", line


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(line=compositions(), mode=st.sampled_from(MODES))
def test_an_allowed_command_composed_with_a_denied_one_is_never_allowed(
    workspace: Path, line: str, mode: Mode
) -> None:
    assert decision(workspace, line, mode) != "allow", line
