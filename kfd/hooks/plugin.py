"""Shell hooks as a plugin: the same pluggy hooks every plugin implements.

`ShellHooks` is registered with the daemon's plugin host like any plugin and
answers the hooks of `kfd.api`: a `kfd.api.Policy` for ``before_tool`` (a
hook's deny is a vote, and deny from anyone wins), an
`kfd.api.AfterToolHook` for ``after_tool`` (its output is the note appended
to the result), and `kfd_event` for ``turn_end`` (``turn.completed``),
``session_start`` (``session.created``), ``approval_requested`` and
``notification`` (errors, budget warnings, trust questions), which run in
the background. Nothing here is a second mechanism: a hook sees what a
plugin sees, when a plugin sees it.

The hooks come from the user's config (``[[hooks]]``, read again when it
changes) and from a project's ``.kfd/config.toml`` once the user trusted
its exact content (`kfd.config.narrow`; always confined there).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from kfd.api import FinishedCall, PolicyRequest, ToolContext, ToolResult, Verdict, hookimpl
from kfd.config import HookConfig
from kfd.hooks.run import Answer, Confine, Launch, run_hook
from kfd.protocol import (
    ApprovalRequested,
    BudgetWarning,
    ErrorEvent,
    Event,
    HookReported,
    SessionCreated,
    TrustRequired,
    TurnCompleted,
)

log = logging.getLogger(__name__)

RESULT_LIMIT = 64 * 1024
"""Characters of a tool's result an ``after_tool`` hook is given."""

_json = msgspec.json.Encoder(order="sorted")

UserHooks = Callable[[], Sequence[HookConfig]]
ProjectHooks = Callable[[str], Awaitable[Sequence[HookConfig]]]
Workspace = Callable[[str], str | None]
Report = Callable[[str, HookReported], None]


def label(hook: HookConfig) -> str:
    """``event: command``, shortened, for reports."""
    command = " ".join(hook.command.split())
    return f"{hook.event}: {command[:80]}{'…' if len(command) > 80 else ''}"


def matches(hook: HookConfig, subject: str) -> bool:
    """Whether ``hook`` applies to an event described by ``subject``."""
    return not hook.match or re.search(hook.match, subject) is not None


class ShellHooks:
    """The ``[[hooks]]`` of the config, run on the plugin hooks' events."""

    name = "hooks"

    def __init__(
        self,
        user_hooks: UserHooks,
        project_hooks: ProjectHooks,
        confine: Confine,
        workspace_of: Workspace,
        report: Report,
    ) -> None:
        self._user = user_hooks
        self._project = project_hooks
        self._confine = confine
        self._workspace_of = workspace_of
        self._report = report
        self._contexts: dict[tuple[str, str, str], list[str]] = {}
        """Context ``before_tool`` hooks added, by (session, tool, arguments), until the
        call's result takes it."""
        self._tasks: set[asyncio.Task[None]] = set()
        self.runs = 0
        self.failures = 0

    # -- pluggy ----------------------------------------------------------------

    @hookimpl
    def kfd_policies(self, config: Mapping[str, Any]) -> Sequence[Any]:
        return [_BeforeTool(self)]

    @hookimpl
    def kfd_after_tool_hooks(self, config: Mapping[str, Any]) -> Sequence[Any]:
        return [_AfterTool(self)]

    @hookimpl
    def kfd_event(self, event: Event) -> None:
        match event:
            case TurnCompleted():
                self._spawn("turn_end", event)
            case SessionCreated():
                self._spawn("session_start", event)
            case ApprovalRequested():
                self._spawn("approval_requested", event)
            case ErrorEvent() | BudgetWarning() | TrustRequired():
                self._spawn("notification", event)

    @hookimpl
    def kfd_status(self) -> Mapping[str, Any] | None:
        return {"runs": self.runs, "failures": self.failures, "running": len(self._tasks)}

    @hookimpl
    def kfd_shutdown(self) -> Coroutine[Any, Any, None] | None:
        return self._stop()

    async def _stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- running -----------------------------------------------------------------

    async def hooks_for(self, event: str, workspace: str) -> list[tuple[HookConfig, bool]]:
        """The hooks of ``event`` in ``workspace``: (hook, from the user's own config)."""
        found = [(h, True) for h in self._user() if h.event == event]
        try:
            found += [(h, False) for h in await self._project(workspace) if h.event == event]
        except Exception:
            log.exception("cannot read the project hooks of %s", workspace)
        return found

    async def run(
        self, hook: HookConfig, own: bool, payload: dict[str, Any], session: str, workspace: str
    ) -> Answer:
        """Run one hook; failures are reported to the session, never raised."""
        self.runs += 1
        sandboxed = hook.sandbox or not own
        launch = await self._confine(Path(workspace), sandboxed)
        if isinstance(launch, Launch):
            answer = await run_hook(
                hook.command,
                _json.encode(payload),
                Path(workspace),
                launch,
                hook.timeout_s,
                denies=hook.event == "before_tool",
            )
        else:
            answer = Answer("unavailable", message=f"not run: {launch}")
        if answer.outcome in ("failed", "timeout", "unavailable", "denied"):
            if answer.outcome != "denied":
                self.failures += 1
                log.warning("hook %s %s: %s", label(hook), answer.outcome, answer.message)
            self._report(
                session,
                HookReported(
                    session=session,
                    hook=label(hook),
                    outcome=answer.outcome,
                    message=answer.message or answer.reason,
                    duration_ms=round(answer.duration_ms, 1),
                ),
            )
        return answer

    def _spawn(self, kind: str, event: Event) -> None:
        if not self._user() and kind != "session_start" and not self._may_have_project_hooks():
            return
        task = asyncio.get_running_loop().create_task(self._background(kind, event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _may_have_project_hooks(self) -> bool:
        return True  # project hooks are looked up per workspace, from the rule book's cache

    async def _background(self, kind: str, event: Event) -> None:
        workspace = self._workspace_of(event.session)
        if workspace is None:
            return
        payload = {"event": kind, "workspace": workspace, **msgspec.to_builtins(event)}
        subject = _json.encode(payload).decode()
        for hook, own in await self.hooks_for(kind, workspace):
            if matches(hook, subject):
                try:
                    await self.run(hook, own, payload, event.session, workspace)
                except Exception:
                    log.exception("hook %s failed", label(hook))

    def context_for(self, session: str, tool: str, arguments: Mapping[str, Any]) -> list[str]:
        """The context ``before_tool`` hooks added to this call (taken once)."""
        return self._contexts.pop((session, tool, _json.encode(arguments).decode()), [])

    def add_context(self, session: str, tool: str, arguments: Mapping[str, Any], text: str) -> None:
        key = (session, tool, _json.encode(arguments).decode())
        self._contexts.setdefault(key, []).append(text)
        if len(self._contexts) > 1000:  # calls that never ran (denied elsewhere)
            self._contexts.pop(next(iter(self._contexts)))


class _BeforeTool:
    """``before_tool`` hooks as a permission policy: deny or ask, with the hook's reason."""

    name = "hooks"

    def __init__(self, hooks: ShellHooks) -> None:
        self._hooks = hooks

    async def check(self, request: PolicyRequest) -> Verdict | None:
        hooks = await self._hooks.hooks_for("before_tool", request.workspace)
        if not hooks:
            return None
        subject = f"{request.tool} {_json.encode(request.arguments).decode()}"
        payload = {
            "event": "before_tool",
            "session": request.session_id,
            "workspace": request.workspace,
            "tool": request.tool,
            "arguments": request.arguments,
            "mode": request.mode,
        }
        verdict: Verdict | None = None
        for hook, own in hooks:
            if not matches(hook, subject):
                continue
            answer = await self._hooks.run(
                hook, own, payload, request.session_id, request.workspace
            )
            if answer.context:
                self._hooks.add_context(
                    request.session_id, request.tool, request.arguments, answer.context
                )
            if answer.decision == "deny":
                return Verdict("deny", f"hook {label(hook)}: {answer.reason}")
            if answer.decision == "ask" and verdict is None:
                verdict = Verdict("ask", f"hook {label(hook)}: {answer.reason}")
        return verdict


class _AfterTool:
    """``after_tool`` hooks: their output is a note on the result the model reads."""

    name = "hooks"
    timeout_s = 1200.0
    """Each hook is bounded by its own ``timeout_s`` (two at most run in a row here)."""

    def __init__(self, hooks: ShellHooks) -> None:
        self._hooks = hooks

    async def after_tool(
        self, call: FinishedCall, result: ToolResult, ctx: ToolContext
    ) -> str | None:
        notes = self._hooks.context_for(call.session_id, call.tool, call.arguments)
        workspace = str(ctx.workspace)
        hooks = await self._hooks.hooks_for("after_tool", workspace)
        subject = f"{call.tool} {_json.encode(call.arguments).decode()}"
        payload = {
            "event": "after_tool",
            "session": call.session_id,
            "workspace": workspace,
            "tool": call.tool,
            "arguments": call.arguments,
            "paths": [str(ctx.resolve(p.path)) for p in call.paths],
            "result": {"output": result.output[:RESULT_LIMIT], "is_error": result.is_error},
        }
        for hook, own in hooks:
            if not matches(hook, subject):
                continue
            answer = await self._hooks.run(hook, own, payload, call.session_id, workspace)
            if answer.note:
                notes.append(f"[hook {label(hook)}]\n{answer.note}")
        return "\n".join(notes) or None
