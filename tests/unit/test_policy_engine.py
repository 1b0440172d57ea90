"""The built-in permission rules, as plain function calls."""

from __future__ import annotations

import pytest

from kfd.api import PolicyRequest, ResolvedPath, Verdict
from kfd.policy.engine import combine, decide
from kfd.protocol import Mode

INSIDE = ResolvedPath("src/a.py", "/repo/src/a.py", False, True)
OUTSIDE_READ = ResolvedPath("/etc/passwd", "/etc/passwd", False, False)
OUTSIDE_WRITE = ResolvedPath("../x", "/x", True, False)


def request(
    tool: str,
    mode: Mode,
    *,
    read_only: bool = False,
    edits: bool = False,
    paths: tuple[ResolvedPath, ...] = (),
    rule: str = "",
    rules: tuple[str, ...] = (),
) -> PolicyRequest:
    return PolicyRequest(
        session_id="s",
        tool=tool,
        arguments={},
        read_only=read_only,
        edits_files=edits,
        workspace="/repo",
        mode=mode,
        paths=list(paths),
        session_rule=rule,
        session_rules=list(rules),
    )


@pytest.mark.parametrize(
    ("call", "decision", "reason"),
    [
        (request("read", "default", read_only=True, paths=(INSIDE,)), "allow", "read-only"),
        (request("edit", "default", edits=True, paths=(INSIDE,)), "ask", "default mode"),
        (request("bash", "default"), "ask", "default mode"),
        (request("edit", "accept-edits", edits=True, paths=(INSIDE,)), "allow", "accept-edits"),
        (request("bash", "accept-edits"), "ask", "accept-edits mode asks"),
        (request("read", "plan", read_only=True), "allow", "read-only"),
        (request("edit", "plan", edits=True), "deny", "plan mode"),
        (request("bash", "plan", rules=("bash(ls)",), rule="bash(ls)"), "deny", "plan mode"),
        (request("bash", "auto"), "allow", "auto mode"),
        (request("edit", "auto", edits=True, paths=(OUTSIDE_WRITE,)), "deny", "writes outside"),
        (request("read", "auto", read_only=True, paths=(OUTSIDE_READ,)), "ask", "reads outside"),
        (request("read", "default", read_only=True, paths=(INSIDE, OUTSIDE_READ)), "ask", "/etc"),
        (request("bash", "default", rule="bash(ls)", rules=("bash(ls)",)), "allow", "bash(ls)"),
        (request("bash", "default", rule="bash(ls -a)", rules=("bash(ls)",)), "ask", "default"),
    ],
)
def test_builtin_decisions(call: PolicyRequest, decision: str, reason: str) -> None:
    verdict = decide(call)
    assert verdict.decision == decision
    assert reason in verdict.reason


def test_the_strictest_verdict_wins_whatever_the_order() -> None:
    allow, ask, deny = Verdict("allow", "a"), Verdict("ask", "b"), Verdict("deny", "c")
    assert combine([allow, ask, deny]) == deny
    assert combine([deny, allow]) == deny
    assert combine([allow, None, ask]) == ask
    assert combine([allow, Verdict("allow", "second")]) == allow


def test_no_vote_at_all_asks() -> None:
    assert combine([None, None]).decision == "ask"
