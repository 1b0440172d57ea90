"""Which approval a chat message answers, if any. Pure: no I/O.

An answer belongs to the exact call the user was shown, so:

1. A message is an answer only when it is one, whole: ``allow``, ``always``
   or ``allow always``, ``deny`` or ``deny <why>`` (any case, trimmed).
   "Allow me to look first" is a message to the session.
2. A reply answers the approval whose post it replies to (same room); on
   Slack, a message in the thread of an approval's post. A reply to any other
   message (the model's, one in another room, a decided approval) answers
   nothing.
3. A bare answer (no reply) answers the one approval open in the session of
   its room (or thread), and only if it was sent after that approval was
   posted, as the service orders messages: Slack redelivers a late message,
   which must not answer an approval that came after it.

Anything else that reads as an answer is not taken, and the user is told why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kfd import protocol as p
from kfd_chat.adapter import Incoming
from kfd_chat.state import Posted


@dataclass(frozen=True, slots=True)
class Answer:
    """What a message answers: the decision, and why (a ``deny``'s reason)."""

    word: str
    decision: p.ApprovalDecision
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Bound:
    """The approval an answer belongs to; ``bare`` when it was no reply (the
    bridge then checks it was sent after the approval was posted: `newer`)."""

    posted: Posted
    bare: bool


@dataclass(frozen=True, slots=True)
class NotTaken:
    """An answer that answers nothing, and why, as the user is told."""

    why: str


def parse(text: str) -> Answer | None:
    """The answer ``text`` is, whole, or None (a message to the session)."""
    words = text.split()
    if not words:
        return None
    first = words[0].lower()
    if first == "deny":
        return Answer(words[0], "deny", text.strip()[len(words[0]) :].strip())
    said = " ".join(word.lower() for word in words)
    if said == "allow":
        return Answer(said, "allow")
    if said in ("always", "allow always"):
        return Answer(said, "allow_always")
    return None


def bind(item: Incoming, approvals: Iterable[Posted], session: str | None) -> Bound | NotTaken:
    """The approval ``item`` (an answer) answers; ``approvals`` are the open
    ones, ``session`` the one of the item's room (or thread)."""
    here = {posted.message: posted for posted in approvals if posted.room == item.room}
    if item.reply_to is not None:
        posted = here.get(item.reply_to)
        if posted is None:
            return NotTaken("it replies to a message that is not an open approval of kfd's")
        return Bound(posted, bare=False)
    if item.thread is not None and item.thread in here:
        return Bound(here[item.thread], bare=False)  # Slack: the thread of the approval
    open_ones = [a for a in here.values() if session is not None and a.session == session]
    if not open_ones:
        if here:  # the notify room's, say: other sessions' approvals, each to reply to
            return NotTaken("it replies to no approval, and this room's session has none open")
        return NotTaken("no approval is open here")
    if len(open_ones) > 1:
        return NotTaken(f"{len(open_ones)} approvals wait, so it is not clear which one it means")
    return Bound(open_ones[0], bare=True)


def newer(sent: int, posted: int) -> bool:
    """Whether a message sent at ``sent`` came after a post made at ``posted``
    (`kfd_chat.adapter.Incoming.at`); unknown times (0) never are."""
    return sent > 0 and posted > 0 and sent > posted


def not_taken(answer: Answer, why: str) -> str:
    """What the bridge says about an answer it did not take."""
    return (
        f"⚠ `{answer.word}` was not taken as an answer: {why}. To answer an approval, "
        "reply `allow` or `deny [why]` to its message, or react 👍 / 👎 to it."
    )
