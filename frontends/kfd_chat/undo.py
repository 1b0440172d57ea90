"""``!undo`` in chat: put back the files the last turn (or turn N and later) changed.

A file changed since the turn is never overwritten silently: the bridge
says which and what undoing would do, and ``!undo overwrite``, ``!undo
keep`` or ``!undo merge`` answers (applied only if the files are still as
shown). ``!undo conversation`` (or ``both``) also forks the session from
before the turn; the room then talks to the fork.
"""

from __future__ import annotations

from dataclasses import dataclass

from kfd import protocol as p
from kfd.client import Client

CHOICES: tuple[p.ConflictChoice, ...] = ("overwrite", "keep", "merge")
DIFF_LINES = 40

_DONE = {
    "restore": "restored",
    "unchanged": "already as before",
    "lost": "not restored (its content was not kept)",
    "overwritten": "restored over later changes",
    "kept": "kept as changed since",
    "merged": "merged",
    "merge_conflict": "merged with conflict markers",
    "failed": "FAILED",
}


@dataclass(frozen=True, slots=True)
class Pending:
    """An undo that stopped at conflicts, waiting for ``!undo overwrite|keep|merge``."""

    turn: int | None
    conversation: bool
    fingerprint: str


async def undo(
    client: Client, session: str, argument: str, pending: dict[str, Pending]
) -> tuple[str, p.SessionInfo | None]:
    """Run ``!undo ARGUMENT``: what to say in the room, and the forked session if any."""
    words = argument.lower().split()
    choice = next((c for c in CHOICES if c in words), None)
    waiting = pending.pop(session, None)
    if choice is not None and waiting is not None:
        turn, conversation, expect = waiting.turn, waiting.conversation, waiting.fingerprint
    else:
        numbers = [int(w) for w in words if w.isdigit()]
        turn = numbers[0] if numbers else None
        conversation = "conversation" in words or "both" in words
        expect = ""
    result = await client.undo(
        session,
        turn,
        conversation=conversation,
        on_conflict=choice or "ask",
        expect=expect,
    )
    if not result.applied:
        pending[session] = Pending(turn, conversation, result.fingerprint)
        return conflicts(result), None
    return done(result), result.forked


def conflicts(result: p.UndoResult) -> str:
    """The message about files changed since the turn (nothing was applied)."""
    lines = ["⚠️ nothing undone yet: these files changed since the turn"]
    for step in result.steps:
        if step.action != "conflict":
            continue
        diff = step.diff.splitlines()
        shown = diff[:DIFF_LINES] + (
            [f"… {len(diff) - DIFF_LINES} more lines"] if len(diff) > DIFF_LINES else []
        )
        lines.append(f"`{step.path}`: undoing would do this to it:")
        lines.append("```\n" + "\n".join(shown) + "\n```")
    lines.append("answer `!undo overwrite`, `!undo keep` (theirs) or `!undo merge`")
    return "\n".join(lines)


def done(result: p.UndoResult) -> str:
    """The message about an undo that was applied."""
    turns = ", ".join(map(str, result.turns)) or "-"
    lines = [f"↩️ undid turn(s) {turns}"]
    lines += [f"`{s.path}`: {_DONE.get(s.action, s.action)}" for s in result.steps]
    if result.forked is not None:
        lines.append(f"the conversation goes on from before the turn in {result.forked.id}")
    return "\n".join(lines)
