"""The bus protocol: every message a frontend and the daemon exchange.

This module is one of kfd's three public contracts (with `kfd.api` and
`kfd.client`). It imports nothing but msgspec, so a frontend pays for nothing
else.

Wire format
-----------
JSON, one message per ZeroMQ frame.

*Requests* travel over a DEALER socket to the daemon's ROUTER. Every request is
an object whose ``method`` field names it (``"session.create"``) and whose
``id`` the reply echoes. Every request gets exactly one reply::

    {"id": "7", "ok": true, "result": {...}}
    {"id": "7", "ok": false, "error": {"code": "not_found", "message": "..."}}

*Events* travel over the daemon's XPUB socket as two frames: the topic (a
session id, or ``global``) and the event object, whose ``type`` field names it.
Every durable session event carries the session's ``seq``, which grows by one
per event. Streaming events (``message.delta``, ``tool.output``) are marked
``ephemeral``: they are not logged, carry the ``seq`` of the last durable event
before them and an ``offset`` into the text they extend, so a client can place
them exactly.

Compatibility
-------------
New fields always get defaults. A client that meets an event ``type`` it does
not know skips it (`kfd.client` does this for you) but still counts its seq.
"""

from kfd.protocol import events, records, requests, results
from kfd.protocol.events import *  # noqa: F403
from kfd.protocol.records import *  # noqa: F403
from kfd.protocol.requests import *  # noqa: F403
from kfd.protocol.results import *  # noqa: F403

__all__ = [*records.__all__, *requests.__all__, *events.__all__, *results.__all__]
