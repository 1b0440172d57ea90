"""Requests about permission rules: rules.list, rules.remove, rules.explain.

``rules.explain`` runs the very engine the sessions use, with the daemon's
own configuration and store, so what ``kfd explain`` prints is what a
session would decide (less the session's own rules and untrusted content).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from kfd.api import PolicyRequest
from kfd.daemon.sessions import _workspace
from kfd.errors import RequestError
from kfd.policy import engine
from kfd.policy.gate import SHELL_TOOL, gather
from kfd.policy.rules import MAX_RULE_CHARS, SOURCE_LABELS
from kfd.policy.shell import MAX_COMMAND_BYTES
from kfd.protocol import (
    ExplainedCommand,
    ExplainResult,
    RulesExplain,
    RulesList,
    RulesRemove,
    RulesResult,
)
from kfd.redact import redact

if TYPE_CHECKING:
    from kfd.daemon.ports import DaemonPort
    from kfd.policy.rulebook import RuleBook

RulesRequest = RulesList | RulesRemove | RulesExplain

MAX_PATH = 4096


async def answer(daemon: DaemonPort, request: RulesRequest) -> RulesResult | ExplainResult:
    """The result of one rules request."""
    book = daemon.runtime.rule_book
    assert book is not None
    match request:
        case RulesList():
            cwd = None if request.cwd is None else await directory(request.cwd)
            listed = await book.listing(cwd)
            return RulesResult(
                rules=listed.rules,
                project=listed.project,
                problems=listed.problems,
                ignored=listed.ignored,
            )
        case RulesRemove():
            return await _remove(book, request)
        case RulesExplain():
            return await _explain(daemon, book, request)


async def keep(daemon: DaemonPort, workspace: str, rule: str, session: str) -> None:
    """Store the rule an "allow always" answer kept (the call itself is already allowed)."""
    book = daemon.runtime.rule_book
    assert book is not None
    if redact(rule).count:
        # The approval offered no "always" for it (kfd.agent.session._keepable); a
        # frontend that answered so anyway gets the call, never a stored secret.
        raise RequestError(
            "bad_request",
            "the call is allowed, but its rule holds a secret and is not kept for the "
            "project; it applies to this call only",
        )
    try:
        await book.keep(workspace, rule, session)
    except Exception as exc:
        raise RequestError(
            "internal",
            f"the call is allowed, but the rule could not be kept for the project ({exc}); "
            "it was not stored",
        ) from exc


async def _remove(book: RuleBook, request: RulesRemove) -> RulesResult:
    if request.rule_id is not None:
        removed = await book.remove(request.rule_id)
        if removed is None:
            raise RequestError(
                "not_found", f"no rule {request.rule_id}; `kfd rules list` shows the ids"
            )
        return RulesResult(rules=[removed], project=removed.project)
    text = request.rule.strip()
    if not text or len(text) > MAX_RULE_CHARS or request.cwd is None:
        raise RequestError(
            "bad_request", "name the rule by id, or by its text with the project's cwd"
        )
    cwd = await directory(request.cwd)
    found = await book.find(cwd, text)
    if found is None or found.id is None:
        project = await book.project_of(cwd)
        raise RequestError(
            "not_found",
            f"no rule {text[:200]!r} is kept for {project}; only rules kept with "
            '"allow always" can be removed here (edit the config file for the others)',
        )
    removed = await book.remove(found.id)
    assert removed is not None
    return RulesResult(rules=[removed], project=removed.project)


async def _explain(daemon: DaemonPort, book: RuleBook, request: RulesExplain) -> ExplainResult:
    command = request.command
    if not command.strip():
        raise RequestError("bad_request", "the command is empty")
    if len(command.encode("utf-8", "surrogatepass")) > MAX_COMMAND_BYTES:
        raise RequestError("bad_request", f"the command is longer than {MAX_COMMAND_BYTES} bytes")
    cwd = await directory(request.cwd)
    policy_request = PolicyRequest(
        session_id="",
        tool=SHELL_TOOL,
        arguments={"command": command},
        read_only=False,
        edits_files=False,
        workspace=cwd,
        mode=request.mode,
        session_rule=f"{SHELL_TOOL}({command})",
    )
    sandbox = daemon.config.sandbox
    gathered = await gather(book, policy_request, (), "", sandbox.network)
    facts = gathered.facts
    outcome = engine.decide_facts(facts)
    if gathered.problems and outcome.decision == "allow":
        outcome = engine.Outcome("ask", gathered.problems[0])
    line = facts.line
    assert line is not None
    project = await book.project_of(cwd)
    # A project config that does not load: its content is ignored, and what kfd does
    # instead (its last good rules, or asking) is said, whatever decided.
    _, problem = await book.project_problem(cwd)
    broken = [problem] if problem else []
    commands = []
    for part in line.commands:
        allowed = engine.allowing_rule(part.command, facts.rules)
        commands.append(
            ExplainedCommand(
                command=part.command.source,
                argv=part.command.argv,
                allowed_by=allowed.rule.text if allowed is not None else "",
                source=SOURCE_LABELS[allowed.source] if allowed is not None else "",
            )
        )
    return ExplainResult(
        decision=outcome.decision,
        reason=outcome.reason,
        rule=outcome.rule,
        source=outcome.source,
        mode=request.mode,
        cwd=cwd,
        project=project,
        commands=commands,
        risks=[risk.message for risk in line.analysis.risks],
        sandboxed=sandbox.enabled,
        ignored=[*(await book.trust_info(cwd)).ignored, *broken],
    )


async def directory(cwd: str) -> str:
    """``cwd`` checked and made real, or a bad_request saying what is wrong."""
    if len(cwd) > MAX_PATH or "\0" in cwd:
        raise RequestError("bad_request", f"cwd must be an absolute path, not {cwd[:200]!r}")
    return await asyncio.to_thread(_workspace, cwd)
