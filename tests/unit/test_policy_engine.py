"""The built-in permission rules as plain function calls, and the gate around them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from kfd.api import PolicyRequest, ResolvedPath, Tool, ToolContext, ToolResult, Verdict
from kfd.config import PermissionsConfig
from kfd.policy.engine import combine, decide
from kfd.policy.gate import CallSite, decide_call
from kfd.policy.rulebook import RuleBook
from kfd.protocol import Mode
from kfd.store.db import Store
from kfd.store.rules import RuleStore
from kfd.store.trust import TrustStore

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


# -- the gate: a call site, a tool, its domains, the plugin policies -----------------------


class FetchArgs(msgspec.Struct):
    url: str


class Fetch(Tool[FetchArgs]):
    """A network tool naming its host as written (the gate normalises it)."""

    name = "web_fetch"
    description = "fetch"
    Args = FetchArgs
    read_only = True
    network = True

    def session_rule(self, args: FetchArgs) -> str:
        return f"web_fetch(domain:{args.url})"

    def domains(self, args: FetchArgs, config: Mapping[str, Any]) -> Sequence[str] | None:
        if config.get("broken"):
            raise RuntimeError("no idea")
        return [args.url]

    async def run(self, args: FetchArgs, ctx: ToolContext) -> ToolResult:
        raise AssertionError("never run by a decision")


class Stubborn:
    name = "stubborn"

    async def check(self, request: PolicyRequest) -> Verdict | None:
        return Verdict("deny", f"stubborn says no to {request.domains}")


@pytest.fixture
async def site(tmp_path: Path) -> Any:
    store = await Store.open(tmp_path / "kfd.db")
    permissions = PermissionsConfig(deny=["web_fetch(domain:*.evil.example)"])
    book = RuleBook(permissions, RuleStore(store), TrustStore(store))
    workspace = tmp_path / "ws"
    workspace.mkdir()
    yield CallSite(
        session_id="s",
        workspace=str(workspace),
        mode="default",
        session_rules=(),
        untrusted=None,
        rule_book=book,
        policies=(),
        network_allowed=False,
    )
    await store.close()


async def test_the_gate_decides_a_network_call_by_the_hosts_it_names(site: CallSite) -> None:
    tool = Fetch()
    new = await decide_call(site, tool, FetchArgs("docs.python.org"), {"url": "x"})
    assert new.decision == "ask" and "docs.python.org" in new.reason
    # The host as the network sees it: a fullwidth letter is no way past a deny rule.
    spoofed = await decide_call(site, tool, FetchArgs("a.\uff45vil.example"), {"url": "x"})
    assert spoofed.decision == "deny" and "evil.example" in spoofed.reason
    allowed = dataclasses.replace(site, session_rules=("web_fetch(domain:docs.python.org)",))
    assert (await decide_call(allowed, tool, FetchArgs("docs.python.org"), {})).decision == "allow"
    plan = dataclasses.replace(site, mode="plan")
    assert (await decide_call(plan, tool, FetchArgs("docs.python.org"), {})).decision == "deny"


async def test_a_tool_that_cannot_name_its_hosts_asks_and_plugins_vote_last(
    site: CallSite,
) -> None:
    tool = Fetch()
    broken = dataclasses.replace(site, mode="auto", tools={"web_fetch": {"broken": True}})
    unknown = await decide_call(broken, tool, FetchArgs("docs.python.org"), {})
    assert unknown.decision == "allow"  # auto mode: a host unknown, but nothing denies it
    stubborn = dataclasses.replace(site, mode="auto", policies=(Stubborn(),))
    verdict = await decide_call(stubborn, tool, FetchArgs("docs.python.org"), {})
    assert verdict.decision == "deny" and "['docs.python.org']" in verdict.reason
