"""The ``bash`` tool: one shell command in the workspace, streamed, bounded, stoppable."""

from __future__ import annotations

import asyncio
import functools
import signal
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from kfd.api import (
    ApprovalNeeded,
    Confinement,
    PodProcess,
    Preview,
    Tool,
    ToolContext,
    ToolError,
    ToolResult,
    command_environment,
    confine,
    enter_pod,
    probe_sandbox,
)

from .capture import HeadTail
from .process import Outcome, run_command

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path


UNSANDBOXED = "unsandboxed"
"""The grant that lets a command run without the sandbox (`kfd.api.ApprovalNeeded`)."""


class BashSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[tools.bash]`` in the configuration."""

    default_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 120.0
    """Timeout of a call that names none."""
    max_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 600.0
    """Largest timeout a call may ask for; larger ones are clamped."""
    bwrap: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)] = "bwrap"
    """The bubblewrap program that confines commands (``[sandbox]`` says how)."""

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> BashSettings:
        """Settings from the ``[tools.bash]`` table; a bad value fails the daemon start."""
        try:
            return msgspec.convert(dict(table), cls)
        except msgspec.ValidationError as exc:
            raise ValueError(f"[tools.bash]: {exc}") from exc


class BashArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of bash."""

    command: str
    timeout: Annotated[
        float | None, msgspec.Meta(description="Seconds (default 120, max 600).")
    ] = None
    description: Annotated[str, msgspec.Meta(description="A few words for the user.")] = ""
    network: Annotated[bool, msgspec.Meta(description="Needs the network (the user is asked).")] = (
        False
    )


class BashTool(Tool[BashArgs]):
    """Run a shell command in the workspace and return its output and exit code."""

    name = "bash"
    description = (
        "Run a bash command in the workspace: its output (stdout and stderr) and exit code. "
        "Fresh shell, no stdin. Sandboxed: only the workspace and /tmp are writable, no "
        "network unless set; background processes end with it."
    )
    Args = BashArgs
    schema_budget = 620

    def __init__(self, settings: BashSettings | None = None) -> None:
        self.settings = settings or BashSettings()
        """Timeouts from ``[tools.bash]``."""

    def summary(self, args: BashArgs) -> str:
        """The command (its first line when there are several)."""
        first, _, rest = args.command.strip().partition("\n")
        return f"{first} …" if rest else first

    def session_rule(self, args: BashArgs) -> str:
        """``bash(<exact command>)``: allowing one command never allows another.

        None for a call asking for the network: that is allowed call by call
        (or by ``[sandbox] network``), never by a rule that would not show it.
        """
        return "" if args.network else f"bash({args.command})"

    async def preview(self, args: BashArgs, ctx: ToolContext) -> Preview:
        """The command and the directory it runs in."""
        return Preview(
            summary=args.description or self.summary(args),
            command=args.command,
            cwd=str(ctx.workspace),
        )

    async def run(self, args: BashArgs, ctx: ToolContext) -> ToolResult:
        """Run the command, streaming its output; stop it at the timeout."""
        if not args.command.strip():
            raise ToolError("command is empty. Give the shell command to run.")
        timeout, notes = self._timeout(args.timeout)
        captured = HeadTail()

        def on_output(text: str) -> None:
            captured.append(text)
            ctx.output(text)

        confinement = await self._sandbox(args, ctx)
        outcome: Outcome | None = None
        try:
            async with asyncio.timeout(timeout):
                outcome = await self._attempt(args.command, ctx, confinement, on_output, notes)
                if not outcome.started:
                    # bubblewrap failed while setting up (what it was to cover changed
                    # meanwhile): nothing of the command ran, so it may start once more.
                    notes.append(
                        "the sandbox could not be set up (a path it covers changed while it "
                        "started); the command had not run, and was started again"
                    )
                    captured = HeadTail()  # bubblewrap's complaint is not the command's
                    confinement = await self._sandbox(args, ctx)
                    outcome = await self._attempt(args.command, ctx, confinement, on_output, notes)
        except TimeoutError:
            pass  # run_command stopped the process group on its way out
        except OSError as exc:
            raise ToolError(
                f"The command could not be started: {exc.strerror} ({exc.filename or ''}). "
                "Check that the workspace directory exists."
            ) from exc
        text = captured.text()
        if not text:
            text = "(no output)\n"
        elif not text.endswith("\n"):
            text += "\n"
        if outcome is None:
            notes.append(
                f"Timed out after {timeout:g} s: the command and every process it started "
                "were stopped; its output so far is above. For longer work pass a larger "
                f"timeout (at most {self.settings.max_timeout_s:g} s), or run it in the "
                "background with its output redirected to a file."
            )
            return ToolResult(output=text + _bracketed(notes), is_error=True)
        if outcome.strays_stopped:
            notes.append(
                "Background processes that kept the output open were stopped when the "
                "command exited. To leave one running, redirect its output: cmd > log 2>&1 &"
            )
        notes.append(_exit_status(outcome.returncode, sandboxed=confinement is not None))
        return ToolResult(output=text + _bracketed(notes))

    async def _attempt(
        self,
        command: str,
        ctx: ToolContext,
        confinement: Confinement | None,
        on_output: Callable[[str], None],
        notes: list[str],
    ) -> Outcome:
        """Run ``command`` once, in ``confinement`` (its pod where it can take it)."""
        enter = None
        if confinement is None:
            prefix: list[str] = []
            env = command_environment(ctx.sandbox)
        else:
            prefix, env = confinement.prefix, confinement.env
            # The session's pod where it can take the command: the same confinement,
            # without bubblewrap's start-up (`kfd.api.enter_pod`).
            enter = functools.partial(_enter, confinement, cwd=ctx.workspace, owner=ctx.session_id)
        try:
            return await run_command(
                command, ctx.workspace, on_output, prefix=prefix, env=env, enter=enter
            )
        finally:
            if confinement is not None:
                # Every process of the command is gone: its bubblewrap's PID namespace
                # is empty (run_command waits for that, not for bubblewrap's exit), or
                # the pod's zygote killed them all before it answered.
                notes += await asyncio.shield(confinement.finish())

    async def _sandbox(self, args: BashArgs, ctx: ToolContext) -> Confinement | None:
        """The confinement of this call; None when it runs unconfined.

        Unconfined only if ``[sandbox] enabled = false``, or the user granted it
        (`ApprovalNeeded`) after being told why the sandbox cannot start.
        """
        sandbox = ctx.sandbox
        if not sandbox.enabled or UNSANDBOXED in ctx.granted:
            return None
        # The policy asked the user before a call with network=true got here.
        network = sandbox.network or args.network
        problem = await probe_sandbox(self.settings.bwrap, network=network)
        if problem is not None:
            raise ApprovalNeeded(
                f"The sandbox cannot start: {problem}. Without it the command can change "
                "any of your files and reach the network. Run it unsandboxed?",
                grant=UNSANDBOXED,
            )
        try:
            return await confine(ctx.workspace, sandbox, network=network, bwrap=self.settings.bwrap)
        except OSError as exc:
            raise ToolError(
                f"The sandbox could not be prepared: {exc}. Check that the workspace and "
                "$XDG_CACHE_HOME are directories kfd can use."
            ) from exc

    def _timeout(self, requested: float | None) -> tuple[float, list[str]]:
        limit = self.settings.max_timeout_s
        if requested is None:
            return min(self.settings.default_timeout_s, limit), []
        if requested <= 0:
            raise ToolError(f"timeout must be a positive number of seconds (at most {limit:g}).")
        if requested > limit:
            return limit, [f"timeout {requested:g} s is above the maximum; used {limit:g} s"]
        return requested, []


async def _enter(
    confinement: Confinement, argv: Sequence[str], output: int, *, cwd: Path, owner: str
) -> PodProcess | None:
    return await enter_pod(confinement, argv, cwd=cwd, output=output, owner=owner)


def _exit_status(returncode: int, *, sandboxed: bool = False) -> str:
    if sandboxed and returncode > 128:
        # bwrap exits with 128 + the signal that killed the command, as bash reports it.
        name = _signal_name(returncode - 128)
        if name is not None:
            return f"exit code {returncode} (128 + {name}: killed by it?)"
    if returncode >= 0:
        return f"exit code {returncode}"
    return f"killed by {_signal_name(-returncode) or f'signal {-returncode}'}"


def _signal_name(number: int) -> str | None:
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def _bracketed(notes: list[str]) -> str:
    return "".join(f"[{note}]\n" for note in notes)
