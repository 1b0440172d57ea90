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

*Events* of the sessions a client subscribed to (``events.subscribe``) come
back on the same DEALER socket, batched: a multipart message whose first
frame is ``\x00events``, then topic and event frames in pairs (the topic is
the session id). A client that falls behind gets an ``events.dropped`` marker
where events were shed and re-reads them from the log. Daemon-wide events
(``global`` topic) go over the daemon's XPUB socket, which also tells the
daemon that a client is connected (``~client.<id>``). Every durable session
event carries the session's ``seq``, which grows by one per event. Streaming
events (``message.delta``, ``tool.output``) are marked ``ephemeral``: they
are not logged, carry the ``seq`` of the last durable event before them and
an ``offset`` into the text they extend, so a client can place them exactly.

Every request is answered, refusals included, with its ``id`` (or an empty id
when none could be read: the client takes it for its oldest request):
``overloaded`` (retry after a pause), ``too_large`` (over `MAX_REQUEST_BYTES`),
``too_deep`` (nested deeper than `MAX_REQUEST_DEPTH`), ``bad_request``, ...

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
