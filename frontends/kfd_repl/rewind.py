"""``/undo``, ``/rewind`` and custom commands (``/name``) in the REPL.

``/undo`` puts back the files the last turn changed; ``/rewind`` lists the
turns that changed files (with the files), ``/rewind N`` shows what turn N
changed and ``/rewind N files|conversation|both`` goes back to before it:
the files, the conversation (a fork of the session, which this terminal
then shows), or both. A file changed since the turn is never overwritten
silently: the REPL shows what undoing would do to it, and the answer is
``/undo overwrite``, ``/undo keep`` or ``/undo merge`` (applied only if the
files are still as shown).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kfd import protocol as p
from kfd_repl.blocks import Listing, Note

if TYPE_CHECKING:
    from kfd_repl.app import Repl

CHOICES: tuple[p.ConflictChoice, ...] = ("overwrite", "keep", "merge")
WHAT = ("files", "conversation", "both")
DIFF_LINES = 400
"""Lines of a turn's diff shown by ``/rewind N`` (``kfd diff`` prints it all)."""

_DONE = {
    "restore": "restored",
    "unchanged": "already as before",
    "lost": "not restored: its content was not kept",
    "overwritten": "restored over your later changes",
    "kept": "kept as you changed it",
    "merged": "merged (your later changes kept)",
    "merge_conflict": "merged with conflict markers: resolve them",
    "failed": "FAILED",
}


@dataclass(frozen=True, slots=True)
class PendingUndo:
    """An undo that stopped at conflicts, waiting for the user's choice."""

    session: str
    turn: int | None
    files: bool
    conversation: bool
    fingerprint: str


async def undo(repl: Repl, argument: str) -> None:
    """``/undo [N] [overwrite|keep|merge]``."""
    words = argument.split()
    choice = next((c for c in CHOICES if c in words), None)
    numbers = [int(w) for w in words if w.isdigit()]
    pending = getattr(repl, "pending_undo", None)
    if choice is not None and pending is not None and pending.session == repl.view.info.id:
        await _undo(repl, pending.turn, pending.files, pending.conversation, choice, pending)
        return
    await _undo(repl, numbers[0] if numbers else None, True, False, choice or "ask", None)


async def rewind(repl: Repl, argument: str) -> None:
    """``/rewind``, ``/rewind N``, ``/rewind N files|conversation|both``."""
    words = argument.split()
    numbers = [int(w) for w in words if w.isdigit()]
    what = next((w for w in words if w in WHAT), None)
    choice: p.ConflictChoice = next((c for c in CHOICES if c in words), "ask")
    session = repl.view.info.id
    if not numbers:
        listed = await repl.client.checkpoints(session)
        if not listed.turns:
            repl.show(Note("no turn of this session changed files; /fork forks the conversation"))
            return
        lines = []
        for checkpoint in listed.turns:
            flag = "  (undone)" if checkpoint.undone else ""
            lines.append(f"turn {checkpoint.turn}  {checkpoint.prompt}{flag}")
            lines.extend(f"    {f.change:<8} {f.path}" for f in checkpoint.files)
        lines.append("/rewind N shows turn N's diff; /rewind N files|conversation|both goes back")
        repl.show(Listing("turns that changed files", tuple(lines)))
        return
    turn = numbers[0]
    if what is None:
        diff = await repl.client.diff(session, turn)
        shown = diff.diff.splitlines()
        if len(shown) > DIFF_LINES:
            shown = [*shown[:DIFF_LINES], f"… {len(shown) - DIFF_LINES} more lines (kfd diff)"]
        shown.append(
            f"/rewind {turn} files: put the files back · conversation: fork from before it · both"
        )
        repl.show(Listing(f"turn {turn} changed", tuple(shown)))
        return
    files = what in ("files", "both")
    conversation = what in ("conversation", "both")
    await _undo(repl, turn, files, conversation, choice, None)


async def _undo(
    repl: Repl,
    turn: int | None,
    files: bool,
    conversation: bool,
    choice: p.ConflictChoice,
    pending: PendingUndo | None,
) -> None:
    session = repl.view.info.id
    result = await repl.client.undo(
        session,
        turn,
        files=files,
        conversation=conversation,
        on_conflict=choice,
        expect=pending.fingerprint if pending is not None else "",
    )
    repl.pending_undo = None
    if not result.applied and files:
        _show_conflicts(repl, result)
        repl.pending_undo = PendingUndo(session, turn, files, conversation, result.fingerprint)
        return
    lines = [f"{step.path}: {_DONE.get(step.action, step.action)}" for step in result.steps]
    if result.turns:
        turns = ", ".join(map(str, result.turns))
        repl.show(Listing(f"undid turn(s) {turns}", tuple(lines) or ("(no file)",)))
    if result.forked is not None:
        repl.show(Note(f"the conversation goes on from before the turn in {result.forked.id}"))
        await repl.switch_to(result.forked)


def _show_conflicts(repl: Repl, result: p.UndoResult) -> None:
    lines = []
    for step in result.steps:
        if step.action == "conflict":
            lines.append(f"{step.path}: changed since the turn; undoing would do this to it:")
            lines.extend(f"  {line}" for line in step.diff.splitlines())
        elif step.action == "restore":
            lines.append(f"{step.path}: would be restored")
    lines.append("nothing changed yet: /undo overwrite · /undo keep (yours) · /undo merge")
    repl.show(Listing("files changed since the turn", tuple(lines)))


async def run_custom(repl: Repl, command: p.CommandInfo, argument: str) -> None:
    """Run custom command ``/name ARGS`` in this session."""
    if command.problem:
        repl.show(Note(f"/{command.name} cannot run: {command.problem}", "warn"))
        return
    await repl.client.run_command(repl.view.info.id, command.name, argument)


def custom_help(commands: dict[str, p.CommandInfo]) -> tuple[str, ...]:
    """Lines for ``/help``: the custom commands of this workspace."""
    if not commands:
        return ()
    lines = ["", "custom commands (.kfd/commands/, ~/.config/kfd/commands/):"]
    for name, info in sorted(commands.items()):
        hint = f" {info.argument_hint}" if info.argument_hint else ""
        lines.append(f"  /{name}{hint}  {info.description or info.source}")
    return tuple(lines)
