"""The permission gate: gather the facts of a tool call and decide it.

Facts that need I/O are gathered here (where paths really point, what a bash
line runs and touches, which rules apply); the decision itself is the pure
`kfd.policy.engine.decide_facts`, then every plugin policy votes and
`engine.combine` keeps the strictest verdict.

The turn loop describes where a call is made with a `CallSite` value: the
gate needs nothing else of the session.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from kfd.api import PathAccess, Policy, PolicyRequest, Tool, Verdict
from kfd.policy import engine
from kfd.policy.commands import line_facts
from kfd.policy.facts import CallFacts, LineFacts, PathFact
from kfd.policy.paths import hard_links, resolve

if TYPE_CHECKING:
    import msgspec

    from kfd.policy.rulebook import RuleBook
    from kfd.protocol import Mode

log = logging.getLogger(__name__)

SHELL_TOOL = "bash"
"""The tool whose ``command`` argument is a bash line the engine analyzes."""


@dataclass(frozen=True, slots=True)
class CallSite:
    """Where a tool call is made: what the gate needs to know of the session."""

    session_id: str
    workspace: str
    mode: Mode
    session_rules: tuple[str, ...]
    untrusted: str | None
    """The tool whose untrusted output the model read earlier this turn, if any."""
    rule_book: RuleBook
    policies: tuple[Policy, ...]
    network_allowed: bool
    """``[sandbox] network``."""


async def decide_call(
    site: CallSite, tool: Tool[Any], args: msgspec.Struct, raw: dict[str, Any]
) -> Verdict:
    """Allow, ask or deny one tool call, with the reason."""
    workspace = site.workspace
    untrusted = site.untrusted or ""
    network = tool.network or (tool.name == SHELL_TOOL and raw.get("network") is True)
    request = PolicyRequest(
        session_id=site.session_id,
        tool=tool.name,
        arguments=raw,
        read_only=tool.read_only,
        edits_files=tool.edits_files,
        workspace=workspace,
        mode=site.mode,
        paths=[],
        session_rule=tool.session_rule(args),
        session_rules=list(site.session_rules),
        network=network,
        untrusted=bool(untrusted),
    )
    gathered = await gather(
        site.rule_book, request, tool.paths(args), untrusted, site.network_allowed
    )
    verdicts: list[Verdict | None] = [engine.decide_facts(gathered.facts).verdict()]
    verdicts += [Verdict("ask", problem) for problem in gathered.problems]
    for policy in site.policies:
        name = getattr(policy, "name", type(policy).__name__)
        try:
            verdicts.append(await policy.check(request))
        except Exception as exc:
            log.exception("policy %s failed", name)
            verdicts.append(Verdict("ask", f"policy {name} failed: {exc!r}"))
    return engine.combine(verdicts)


class Gathered(NamedTuple):
    """The facts of a call, and the rule sources that failed to load (each asks)."""

    facts: CallFacts
    problems: list[str]


async def gather(
    book: RuleBook,
    request: PolicyRequest,
    accesses: Sequence[PathAccess],
    untrusted: str,
    network_allowed: bool,
) -> Gathered:
    """Everything the engine needs about ``request``.

    Fills ``request.paths`` (plugin policies read them) on the way.
    """
    workspace = request.workspace
    applicable = await book.applicable(workspace, request.session_rules)
    command = request.arguments.get("command") if request.tool == SHELL_TOOL else None

    def look() -> tuple[list[PathFact], LineFacts | None]:
        resolved = resolve(Path(workspace), accesses)
        request.paths = resolved
        facts = [PathFact.of(r, workspace, hard_links(r.real)) for r in resolved]
        line = line_facts(command, workspace) if isinstance(command, str) else None
        return facts, line

    paths, line = await asyncio.to_thread(look)
    facts = CallFacts(
        request=request,
        rules=applicable.rules,
        paths=paths,
        line=line,
        home=os.path.expanduser("~"),
        untrusted=untrusted,
        network_allowed=network_allowed,
    )
    return Gathered(facts, applicable.problems)
