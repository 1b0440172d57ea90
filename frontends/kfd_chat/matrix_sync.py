"""What a Matrix ``/sync`` answer means for the bridge. Pure: JSON in, facts out.

The client-server API's shapes (v1.11): a joined room's ``timeline`` holds
at most the filter's limit of events (Synapse: 10) and says ``limited: true``
when more happened since the last sync; its ``prev_batch`` token pages back
through what was left out (`kfd_chat.matrix` does). ``rooms.invite`` holds
invitations with their stripped state. Events the bot should never act on:
its own, edits of a message (``m.replace``), and anything from before the
bot joined the room (history a new member can read is not a request to it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kfd_chat.adapter import Incoming

ENCRYPTION = "m.room.encryption"
ENCRYPTED = "m.room.encrypted"


@dataclass(slots=True)
class RoomTimeline:
    """One joined room's part of a sync."""

    room: str
    events: list[dict[str, Any]]
    limited: bool = False
    prev_batch: str | None = None
    encrypted: bool = False
    """The room turned on end-to-end encryption (its state says so), or
    encrypted events arrived in it."""


@dataclass(slots=True)
class Invitation:
    room: str
    inviter: str
    encrypted: bool = False


@dataclass(slots=True)
class SyncFacts:
    next_batch: str
    rooms: list[RoomTimeline] = field(default_factory=list)
    invites: list[Invitation] = field(default_factory=list)


def parse(data: dict[str, Any], bot: str) -> SyncFacts:
    """The facts of one sync answer (malformed parts are skipped, never fatal)."""
    facts = SyncFacts(next_batch=str(data.get("next_batch") or ""))
    rooms = _dict(data.get("rooms"))
    for room_id, room in _dict(rooms.get("join")).items():
        room = _dict(room)
        timeline = _dict(room.get("timeline"))
        events = [e for e in _list(timeline.get("events")) if isinstance(e, dict)]
        state = [e for e in _list(_dict(room.get("state")).get("events")) if isinstance(e, dict)]
        prev = timeline.get("prev_batch")
        facts.rooms.append(
            RoomTimeline(
                room=str(room_id),
                events=events,
                limited=timeline.get("limited") is True,
                prev_batch=prev if isinstance(prev, str) else None,
                encrypted=any(_is_encryption(e) for e in state + events),
            )
        )
    for room_id, room in _dict(rooms.get("invite")).items():
        stripped = [
            e
            for e in _list(_dict(_dict(room).get("invite_state")).get("events"))
            if isinstance(e, dict)
        ]
        inviter = next(
            (
                str(e.get("sender", ""))
                for e in stripped
                if e.get("type") == "m.room.member"
                and e.get("state_key") == bot
                and _dict(e.get("content")).get("membership") == "invite"
            ),
            "",
        )
        encrypted = any(e.get("type") == ENCRYPTION for e in stripped)
        facts.invites.append(Invitation(str(room_id), inviter, encrypted))
    return facts


def is_own_join(event: dict[str, Any], bot: str) -> bool:
    """The bot's membership turning to ``join`` (not a profile change while joined)."""
    if event.get("type") != "m.room.member" or event.get("state_key") != bot:
        return False
    if _dict(event.get("content")).get("membership") != "join":
        return False
    previous = _dict(_dict(event.get("unsigned")).get("prev_content")).get("membership")
    return previous != "join"


def since_joined(events: list[dict[str, Any]], bot: str) -> list[dict[str, Any]]:
    """The events after the bot's latest join among ``events`` (all of them if
    it joined before): what was said before the bot was there is history."""
    for index in range(len(events) - 1, -1, -1):
        if is_own_join(events[index], bot):
            return events[index + 1 :]
    return events


def incoming(room: str, events: list[dict[str, Any]], bot: str) -> Iterator[Incoming]:
    """The messages and reactions among ``events`` that the bridge should see."""
    for event in events:
        item = _incoming(room, event, bot)
        if item is not None:
            yield item


def _incoming(room: str, event: dict[str, Any], bot: str) -> Incoming | None:
    sender = event.get("sender")
    event_id = event.get("event_id")
    content = event.get("content")
    if not isinstance(sender, str) or not isinstance(event_id, str):
        return None
    if sender == bot or not isinstance(content, dict):
        return None
    if event.get("type") == ENCRYPTED:
        return Incoming(id=event_id, room=room, sender=sender, kind="encrypted")
    relates = _dict(content.get("m.relates_to"))
    if event.get("type") == "m.reaction":
        if relates.get("rel_type") != "m.annotation":
            return None
        return Incoming(
            id=event_id,
            room=room,
            sender=sender,
            reply_to=str(relates.get("event_id", "")),
            reaction=str(relates.get("key", "")),
            kind="reaction",
        )
    if event.get("type") != "m.room.message" or relates.get("rel_type") == "m.replace":
        return None  # edits of a user's message are not new messages
    body = content.get("body")
    if not isinstance(body, str):
        return None
    thread = relates.get("event_id") if relates.get("rel_type") == "m.thread" else None
    reply = _dict(relates.get("m.in_reply_to")).get("event_id")
    if reply is not None and relates.get("is_falling_back"):
        reply = None  # a plain message in a thread, not a reply
    return Incoming(
        id=event_id,
        room=room,
        sender=sender,
        text=_strip_reply_fallback(body),
        thread=str(thread) if thread else None,
        reply_to=str(reply) if reply else None,
        at=_time(event.get("origin_server_ts")),
    )


def _time(value: object) -> int:
    """``origin_server_ts`` (milliseconds), 0 if missing or odd."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _is_encryption(event: dict[str, Any]) -> bool:
    return event.get("type") in (ENCRYPTION, ENCRYPTED)


def _strip_reply_fallback(body: str) -> str:
    """Replies used to quote the original as ``> `` lines first; the answer follows."""
    lines = body.splitlines()
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    return "\n".join(lines).strip()


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
