"""The permission gate: gather the facts of a tool call and decide it.

Facts that need I/O are gathered here (where paths really point, what a bash
line runs and touches, which rules apply, which hosts a network tool reaches);
the decision itself is the pure `kfd.policy.engine.decide_facts`, then every
plugin policy votes and `kfd.policy.verdicts.combine` keeps the strictest
verdict. The caller describes where the call happens with a `CallSite`, a
small value: the gate knows nothing of sessions.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from kfd.api import PathAccess, Policy, PolicyRequest, Tool, Verdict
from kfd.policy import engine
from kfd.policy.facts import CallFacts, LineFacts, PathFact
from kfd.policy.gitconfig import hooks_directories
from kfd.policy.gitindex import repository_tops
from kfd.policy.judge_paths import restricted_reads
from kfd.policy.line_facts import line_facts
from kfd.policy.paths import hard_links, instruction_links, real_path, resolve
from kfd.policy.rules import PathMatcher, SourcedRule, normal_host

if TYPE_CHECKING:
    import msgspec

    from kfd.policy.rulebook import RuleBook
    from kfd.protocol import Mode

__all__ = ["SHELL_TOOL", "CallSite", "Gathered", "decide_call", "gather", "restricted_matcher"]

log = logging.getLogger(__name__)

SHELL_TOOL = "bash"
"""The tool whose ``command`` argument is a bash line the engine analyzes."""


@dataclass(frozen=True, slots=True)
class CallSite:
    """Where a tool call is decided: what the gate needs of the session, as values."""

    session_id: str
    workspace: str
    mode: Mode
    session_rules: tuple[str, ...]
    untrusted: str | None
    """The untrusted tool read earlier this turn, if any."""
    rule_book: RuleBook
    policies: tuple[Policy, ...]
    network_allowed: bool
    """``[sandbox] network``: commands may reach the network unasked."""
    tools: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """The ``[tools.<name>]`` tables (a network tool's hosts may depend on its own)."""


async def decide_call(
    site: CallSite, tool: Tool[Any], args: msgspec.Struct, raw: dict[str, Any]
) -> Verdict:
    """Allow, ask or deny one tool call, with the reason."""
    network = tool.network or (tool.name == SHELL_TOOL and raw.get("network") is True)
    domains = None
    if tool.network:
        try:
            found = tool.domains(args, site.tools.get(tool.name, {}))
            domains = None if found is None else [normal_host(str(d)) for d in found]
        except Exception:
            log.exception("tool %s failed to name its domains", tool.name)
    request = PolicyRequest(
        session_id=site.session_id,
        tool=tool.name,
        arguments=raw,
        read_only=tool.read_only,
        edits_files=tool.edits_files,
        workspace=site.workspace,
        mode=site.mode,
        paths=[],
        session_rule=tool.session_rule(args),
        session_rules=list(site.session_rules),
        network=network,
        untrusted=bool(site.untrusted),
        domains=domains,
    )
    gathered = await gather(
        site.rule_book,
        request,
        tool.paths(args),
        site.untrusted or "",
        site.network_allowed,
        domains=domains,
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


def restricted_matcher(rules: Sequence[SourcedRule], workspace: str, home: str) -> PathMatcher:
    """The paths read rules deny or ask about, compiled for walking trees."""
    specs = tuple(s.rule.spec for s in restricted_reads(rules) if s.rule.spec is not None)
    return _matcher(specs, workspace, home)


@functools.lru_cache(maxsize=64)
def _matcher(specs: tuple[str, ...], workspace: str, home: str) -> PathMatcher:
    return PathMatcher(specs, workspace, home, restricting=True)


async def gather(
    book: RuleBook,
    request: PolicyRequest,
    accesses: Sequence[PathAccess],
    untrusted: str,
    network_allowed: bool,
    *,
    domains: list[str] | None = None,
) -> Gathered:
    """Everything the engine needs about ``request``.

    Fills ``request.paths`` (plugin policies read them) on the way.
    """
    workspace = request.workspace
    applicable = await book.applicable(workspace, request.session_rules)
    command = request.arguments.get("command") if request.tool == SHELL_TOOL else None
    home = os.path.expanduser("~")

    def look() -> tuple[list[PathFact], LineFacts | None, tuple[str, ...]]:
        resolved = resolve(Path(workspace), accesses)
        request.paths = resolved
        links = instruction_links(workspace) if resolved else {}
        facts = [PathFact.of(r, workspace, hard_links(r.real), links) for r in resolved]
        line = None
        if isinstance(command, str):
            matcher = restricted_matcher(applicable.rules, workspace, home)
            line = line_facts(command, workspace, restricted=matcher, home=home)
        tops = repository_tops(real_path(workspace)) if resolved or line else []
        hooks = tuple(h for top in tops for h in hooks_directories(top, home))
        return facts, line, hooks

    paths, line, hooks = await asyncio.to_thread(look)
    facts = CallFacts(
        request=request,
        rules=applicable.rules,
        paths=paths,
        line=line,
        home=home,
        hooks=hooks,
        untrusted=untrusted,
        network_allowed=network_allowed,
        domains=domains,
    )
    return Gathered(facts, applicable.problems)
