"""The ``bash`` tool: one shell command in the workspace, streamed, bounded, stoppable."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from kfd.api import Preview, Tool, ToolContext, ToolError, ToolResult

from .capture import HeadTail
from .process import Outcome, run_command

if TYPE_CHECKING:
    from collections.abc import Mapping


class BashSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[tools.bash]`` in the configuration."""

    default_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 120.0
    """Timeout of a call that names none."""
    max_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 600.0
    """Largest timeout a call may ask for; larger ones are clamped."""

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> BashSettings:
        """Settings from the ``[tools.bash]`` table; a bad value fails the daemon start."""
        try:
            return msgspec.convert(dict(table), cls)
        except msgspec.ValidationError as exc:
            raise ValueError(f"[tools.bash]: {exc}") from exc


class BashArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of bash."""

    command: Annotated[str, msgspec.Meta(description="The shell command to run.")]
    timeout: Annotated[
        float | None,
        msgspec.Meta(description="Seconds before the command is stopped (default 120, max 600)."),
    ] = None
    description: Annotated[
        str, msgspec.Meta(description="What the command does, in a few words, for the user.")
    ] = ""


class BashTool(Tool[BashArgs]):
    """Run a shell command in the workspace and return its output and exit code."""

    name = "bash"
    description = (
        "Run a shell command with bash in the workspace directory; stdout and stderr come "
        "back merged, with the exit code. Each call is a fresh shell (cd and variables do "
        "not persist) and stdin is empty, so nothing interactive. Prefer read, edit, glob "
        "and grep over cat, sed, find and grep. Background processes are stopped when the "
        "command ends unless their output is redirected (cmd > log 2>&1 &)."
    )
    Args = BashArgs

    def __init__(self, settings: BashSettings | None = None) -> None:
        self.settings = settings or BashSettings()
        """Timeouts from ``[tools.bash]``."""

    def summary(self, args: BashArgs) -> str:
        """The command (its first line when there are several)."""
        first, _, rest = args.command.strip().partition("\n")
        return f"{first} …" if rest else first

    def session_rule(self, args: BashArgs) -> str:
        """``bash(<exact command>)``: allowing one command never allows another."""
        return f"bash({args.command})"

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

        outcome: Outcome | None = None
        try:
            async with asyncio.timeout(timeout):
                outcome = await run_command(args.command, ctx.workspace, on_output)
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
        notes.append(_exit_status(outcome.returncode))
        return ToolResult(output=text + _bracketed(notes))

    def _timeout(self, requested: float | None) -> tuple[float, list[str]]:
        limit = self.settings.max_timeout_s
        if requested is None:
            return min(self.settings.default_timeout_s, limit), []
        if requested <= 0:
            raise ToolError(f"timeout must be a positive number of seconds (at most {limit:g}).")
        if requested > limit:
            return limit, [f"timeout {requested:g} s is above the maximum; used {limit:g} s"]
        return requested, []


def _exit_status(returncode: int) -> str:
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"killed by {name}"


def _bracketed(notes: list[str]) -> str:
    return "".join(f"[{note}]\n" for note in notes)
