"""What a client yields besides protocol events, and how it reads an event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from kfd import protocol as p

DISCONNECTED = b"\x00disconnected"
RECONNECTED = b"\x00reconnected"
"""Markers a client puts in an attachment's queue when the daemon goes and comes."""

SESSION_TOPIC_PREFIX = b"s"
"""Every session id (so every session topic) starts with this letter; other
topics (``global``, ``~sync.``, ``~client.``) never do."""


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """The daemon went away; the attachment reconnects by itself."""

    session: str


@dataclass(frozen=True, slots=True)
class ConnectionRestored:
    """The daemon is back; what was missed follows, then live events."""

    session: str
    snapshot: p.Snapshot


Item = p.Event | ConnectionLost | ConnectionRestored
"""What iterating an `Attachment` yields."""


@dataclass(frozen=True, slots=True)
class Followed:
    """A `Follower` attached to a session; its events follow this item.

    ``snapshot`` is the session's live state when following began (pending
    approvals included, which no later event repeats).
    """

    session: str
    snapshot: p.Snapshot


FollowItem = Item | Followed
"""What iterating a `Follower` yields."""


_event_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(p.AnyEvent)
_header_decoder = msgspec.json.Decoder(p.EventHeader)


def decode_header(body: bytes) -> p.EventHeader:
    """What every event has (type, session, seq); raises msgspec errors on garbage."""
    return _header_decoder.decode(body)


def decode_event(body: bytes) -> p.Event | p.EventHeader:
    """An event, or just its header when its type is unknown to this client."""
    try:
        event: p.Event = _event_decoder.decode(body)
        return event
    except msgspec.ValidationError:
        return _header_decoder.decode(body)
