"""Matrix through the client-server API (mautrix's `ClientAPI`).

Incoming: ``/sync`` long-polls from the stored ``next_batch`` token, so a
lost connection resumes exactly where it stopped. On the very first run
there is no token: one sync with ``timeout=0`` learns the current position
and its history is skipped (the bot acts on what is said from now on).
Outgoing: ``PUT /rooms/{room}/send/{type}/{txnId}`` with a transaction id
derived from the bridge's key, which the homeserver deduplicates: a post
retried after a lost reply, or repeated after a restart, appears once.
Answers stream by edits (``m.replace``); threads use ``m.thread``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
from mautrix.api import HTTPAPI
from mautrix.client import ClientAPI
from mautrix.errors import MatrixConnectionError, MatrixRequestError, MatrixResponseError
from mautrix.types import EventType, RoomID, SyncToken, UserID

from kfd_chat.adapter import AdapterError, Batch, Incoming, TransientError
from kfd_chat.settings import MatrixSettings

log = logging.getLogger("kfd_chat.matrix")

SYNC_TIMEOUT_MS = 30_000
RETRY_MAX_S = 30.0
_MESSAGE = EventType.find("m.room.message", EventType.Class.MESSAGE)
_TRANSIENT = (aiohttp.ClientError, TimeoutError, MatrixConnectionError, OSError)


class MatrixAdapter:
    """A bot account on a homeserver."""

    name = "matrix"

    def __init__(self, settings: MatrixSettings, token: str) -> None:
        self.settings = settings
        self.edit_interval_s = settings.edit_interval_s
        self._token = token
        self._session: aiohttp.ClientSession | None = None
        self._api: ClientAPI | None = None
        self._since: str | None = None

    async def start(self, cursor: str | None) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_read=SYNC_TIMEOUT_MS / 1000 + 30)
        )
        http = HTTPAPI(self.settings.homeserver, self._token, client_session=self._session)
        self._api = ClientAPI(UserID(self.settings.user_id), api=http)
        self._since = cursor
        if cursor is None:
            first = await self._sync(timeout_ms=0)
            self._since = str(first["next_batch"])
            log.info("first run: starting from now (%s)", self._since)

    async def batches(self) -> AsyncIterator[Batch]:
        while True:
            data = await self._sync(timeout_ms=SYNC_TIMEOUT_MS)
            self._since = str(data.get("next_batch") or self._since)
            yield Batch(list(self._items(data)), self._since)

    async def _sync(self, timeout_ms: int) -> dict[str, Any]:
        assert self._api is not None
        delay = 0.2
        while True:
            try:
                since = SyncToken(self._since) if self._since else None
                data = await self._api.sync(since=since, timeout=timeout_ms)
            except _TRANSIENT as exc:
                log.warning(
                    "sync failed (%s); retrying in %.1f s", exc or type(exc).__name__, delay
                )
            except MatrixRequestError as exc:
                if exc.http_status not in (429, 500, 502, 503, 504):
                    raise AdapterError(f"the homeserver refused /sync: {exc}") from None
                log.warning("sync: %s; retrying in %.1f s", exc, delay)
            else:
                if isinstance(data, dict) and "next_batch" in data:
                    return data
                log.warning("sync answer without next_batch; retrying")
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    def _items(self, data: dict[str, Any]) -> Iterator[Incoming]:
        joined = data.get("rooms", {}).get("join", {})
        for room_id, room in joined.items():
            for event in room.get("timeline", {}).get("events", []):
                item = self._incoming(room_id, event)
                if item is not None:
                    yield item

    def _incoming(self, room: str, event: dict[str, Any]) -> Incoming | None:
        sender = event.get("sender")
        event_id = event.get("event_id")
        content = event.get("content")
        if not isinstance(sender, str) or not isinstance(event_id, str):
            return None
        if sender == self.settings.user_id or not isinstance(content, dict):
            return None
        relates = content.get("m.relates_to") or {}
        if not isinstance(relates, dict):
            relates = {}
        if event.get("type") == "m.reaction":
            if relates.get("rel_type") != "m.annotation":
                return None
            return Incoming(
                id=event_id,
                room=room,
                sender=sender,
                reply_to=str(relates.get("event_id", "")),
                reaction=str(relates.get("key", "")),
            )
        if event.get("type") != "m.room.message" or relates.get("rel_type") == "m.replace":
            return None  # edits of a user's message are not new messages
        body = content.get("body")
        if not isinstance(body, str):
            return None
        thread = relates.get("event_id") if relates.get("rel_type") == "m.thread" else None
        reply = (relates.get("m.in_reply_to") or {}).get("event_id")
        if reply is not None and relates.get("is_falling_back"):
            reply = None  # a plain message in a thread, not a reply
        return Incoming(
            id=event_id,
            room=room,
            sender=sender,
            text=_strip_reply_fallback(body),
            thread=str(thread) if thread else None,
            reply_to=str(reply) if reply else None,
        )

    async def post(self, room: str, thread: str | None, text: str, key: str) -> str:
        content: dict[str, Any] = {"msgtype": "m.text", "body": text}
        if thread:
            content["m.relates_to"] = {"rel_type": "m.thread", "event_id": thread}
        return await self._send(room, content, key)

    async def edit(self, room: str, message: str, text: str, key: str) -> None:
        content = {
            "msgtype": "m.text",
            "body": f"* {text}",
            "m.new_content": {"msgtype": "m.text", "body": text},
            "m.relates_to": {"rel_type": "m.replace", "event_id": message},
        }
        await self._send(room, content, key)

    async def _send(self, room: str, content: dict[str, Any], key: str) -> str:
        assert self._api is not None
        txn = "kfd" + hashlib.sha256(key.encode()).hexdigest()[:32]
        try:
            event = await self._api.send_message_event(RoomID(room), _MESSAGE, content, txn_id=txn)  # type: ignore[arg-type]
            return str(event)
        except _TRANSIENT as exc:
            raise TransientError(f"matrix: sending to {room} failed ({exc})") from None
        except MatrixRequestError as exc:
            if exc.http_status in (429, 500, 502, 503, 504):
                raise TransientError(f"matrix: {exc}") from None
            raise AdapterError(f"the homeserver refused a message to {room}: {exc}") from None
        except MatrixResponseError as exc:
            raise TransientError(f"matrix: odd answer ({exc})") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _strip_reply_fallback(body: str) -> str:
    """Replies quote the original as ``> `` lines first; the answer follows."""
    lines = body.splitlines()
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    return "\n".join(lines).strip()
