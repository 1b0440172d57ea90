"""Matrix through the client-server API, over aiohttp.

Our own small client rather than an SDK's: the bridge needs the homeserver's
``retry_after_ms`` on every rate-limited call (mautrix drops it), and it makes
seven calls (``whoami``, ``joined_rooms``, ``join``/``leave``, ``sync``,
``messages``, ``send``, and ``event`` for when an approval was posted).

Incoming: ``/sync`` long-polls from the stored ``next_batch`` token, so a
lost connection resumes exactly where it stopped. A room whose timeline comes
back ``limited`` (more happened than a sync returns) is paged back with
``/messages`` down to the previous token, so nothing said during a gap is
lost. On the very first run there is no token: one sync with ``timeout=0``
learns the current position and its history is skipped.

Outgoing: ``PUT /rooms/{room}/send/m.room.message/{txnId}`` with a
transaction id derived from the bridge's key, which the homeserver
deduplicates: a post retried after a lost reply appears once. Every message
carries an HTML ``formatted_body`` and empty ``m.mentions`` (an answer that
says ``@room`` pings nobody). Answers stream by edits (``m.replace``);
threads use ``m.thread``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp

from kfd_chat import matrix_sync
from kfd_chat.adapter import AdapterError, Batch, Incoming, TransientError
from kfd_chat.markup import matrix_html
from kfd_chat.settings import MatrixSettings

log = logging.getLogger("kfd_chat.matrix")

SYNC_TIMEOUT_MS = 30_000
RETRY_MAX_S = 30.0
BACKFILL_LIMIT = 1000
"""Events paged back after a gap, per room; beyond that the oldest are skipped (and logged)."""
_CLIENT = "/_matrix/client/v3"


class Refused(AdapterError):
    """The homeserver answered with an error (``errcode`` says which)."""

    def __init__(self, message: str, status: int, errcode: str) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode


class MatrixAdapter:
    """A bot account on a homeserver."""

    name = "matrix"

    def __init__(self, settings: MatrixSettings, token: str) -> None:
        self.settings = settings
        self.bot = settings.user_id
        self.edit_interval_s = settings.edit_interval_s
        self._base = settings.homeserver.rstrip("/")
        self._token = token
        self._session: aiohttp.ClientSession | None = None
        self._since: str | None = None
        self._survey: list[Incoming] = []
        self._encrypted: set[str] = set()

    async def start(self, cursor: str | None, rooms: set[str]) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_read=SYNC_TIMEOUT_MS / 1000 + 30)
        )
        me = await self._patiently(lambda: self._call("GET", "/account/whoami"))
        if me.get("user_id") != self.bot:
            raise AdapterError(
                f"the token in ${self.settings.token_env} belongs to {me.get('user_id')}, "
                f"not to [chat.matrix] user_id {self.bot}"
            )
        self._since = cursor
        if cursor is None:
            first = await self._sync(timeout_ms=0)
            self._since = str(first["next_batch"])
            log.info("first run: starting from now (%s)", self._since)
        self._survey = await self._survey_rooms(rooms)

    async def _survey_rooms(self, rooms: set[str]) -> list[Incoming]:
        """Join the configured rooms the bot is not in yet; report those it
        cannot join and those that are encrypted."""
        joined = set(
            (await self._patiently(lambda: self._call("GET", "/joined_rooms"))).get(
                "joined_rooms", []
            )
        )
        found: list[Incoming] = []
        for room in sorted(rooms):
            if room not in joined:
                try:
                    await self.join(room)
                except AdapterError as exc:
                    found.append(
                        Incoming(
                            id=f"unjoined|{room}",
                            room=room,
                            sender="",
                            kind="unjoined",
                            detail=str(exc),
                        )
                    )
                    continue
            if await self._is_encrypted(room):
                found.append(self._encrypted_room(room, ""))
        return found

    async def _is_encrypted(self, room: str) -> bool:
        try:
            await self._call("GET", f"/rooms/{quote(room, safe='')}/state/m.room.encryption/")
        except Refused as exc:
            if exc.status != 404:
                log.warning("could not tell whether %s is encrypted: %s", room, exc)
            return False  # an encrypted room still shows itself by its events
        return True

    def _encrypted_room(self, room: str, sender: str) -> Incoming:
        self._encrypted.add(room)
        return Incoming(id=f"encrypted|{room}", room=room, sender=sender, kind="encrypted")

    async def batches(self) -> AsyncIterator[Batch]:
        if self._survey:
            survey, self._survey = self._survey, []
            yield Batch(survey, None)
        while True:
            before = self._since
            data = await self._sync(timeout_ms=SYNC_TIMEOUT_MS)
            facts = matrix_sync.parse(data, self.bot)
            items = await self._items(facts, before)
            self._since = facts.next_batch or self._since
            yield Batch(items, self._since)

    async def _items(self, facts: matrix_sync.SyncFacts, since: str | None) -> list[Incoming]:
        items: list[Incoming] = []
        for invitation in facts.invites:
            items.append(
                Incoming(
                    id=f"invite|{invitation.room}|{facts.next_batch}",
                    room=invitation.room,
                    sender=invitation.inviter,
                    kind="invite",
                    detail="encrypted" if invitation.encrypted else "",
                )
            )
        for timeline in facts.rooms:
            events = timeline.events
            if timeline.limited and timeline.prev_batch and since:
                events = await self._backfill(timeline.room, timeline.prev_batch, since) + events
            events = matrix_sync.since_joined(events, self.bot)
            if timeline.encrypted and timeline.room not in self._encrypted:
                items.append(self._encrypted_room(timeline.room, ""))
            items.extend(matrix_sync.incoming(timeline.room, events, self.bot))
        return items

    async def _backfill(self, room: str, token: str, since: str) -> list[dict[str, Any]]:
        """What a ``limited`` timeline left out, oldest first: ``/messages``
        backwards from its ``prev_batch`` down to the previous sync's token."""
        newest_first: list[dict[str, Any]] = []
        path = f"/rooms/{quote(room, safe='')}/messages"
        while True:
            query = {"dir": "b", "from": token, "to": since, "limit": "100"}
            page = await self._patiently(lambda q=query: self._call("GET", path, query=q))
            chunk = [e for e in page.get("chunk") or [] if isinstance(e, dict)]
            newest_first.extend(chunk)
            end = page.get("end")
            if any(matrix_sync.is_own_join(e, self.bot) for e in chunk):
                break  # older events were said before the bot was there
            if not chunk or not isinstance(end, str) or end == token:
                break
            if len(newest_first) >= BACKFILL_LIMIT:
                log.warning(
                    "more than %d events in %s since the last sync: the older ones are skipped",
                    BACKFILL_LIMIT,
                    room,
                )
                break
            token = end
        log.info("caught up %d events in %s that the sync left out", len(newest_first), room)
        return list(reversed(newest_first))

    async def _sync(self, timeout_ms: int) -> dict[str, Any]:
        query = {"timeout": str(timeout_ms)}
        if self._since:
            query["since"] = self._since
        while True:
            data = await self._patiently(lambda: self._call("GET", "/sync", query=query))
            if "next_batch" in data:
                return data
            log.warning("sync answer without next_batch; retrying")
            await asyncio.sleep(1)

    async def _patiently(self, call: Any) -> dict[str, Any]:
        """``call()`` until the homeserver answers: transient failures wait
        (as long as a rate limit says, else with backoff); refusals raise."""
        delay = 0.2
        while True:
            try:
                result: dict[str, Any] = await call()
                return result
            except TransientError as exc:
                wait = exc.retry_after if exc.retry_after is not None else delay
                log.warning("%s; retrying in %.1f s", exc, wait)
                await asyncio.sleep(wait)
                delay = min(delay * 2, RETRY_MAX_S)

    async def post(self, room: str, thread: str | None, text: str, key: str) -> str:
        content = self._content(text)
        if thread:
            content["m.relates_to"] = {
                "rel_type": "m.thread",
                "event_id": thread,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": thread},
            }
        return await self._send(room, content, key)

    async def edit(self, room: str, message: str, text: str, key: str) -> None:
        new = self._content(text)
        content = {
            **new,
            "body": f"* {text}",  # the fallback clients without edits show
            "formatted_body": f"* {new['formatted_body']}",
            "m.new_content": new,
            "m.relates_to": {"rel_type": "m.replace", "event_id": message},
        }
        await self._send(room, content, key)

    async def find(self, room: str, thread: str | None, key: str) -> str | None:
        return None  # posting again under the same transaction id returns the first event

    async def sent_at(self, room: str, message: str) -> int:
        path = f"/rooms/{quote(room, safe='')}/event/{quote(message, safe='')}"
        stamp = (await self._call("GET", path)).get("origin_server_ts")
        return stamp if isinstance(stamp, int) and stamp > 0 else 0

    async def join(self, room: str) -> None:
        await self._call("POST", f"/join/{quote(room, safe='')}", body={})

    async def leave(self, room: str) -> None:
        await self._call("POST", f"/rooms/{quote(room, safe='')}/leave", body={})

    @staticmethod
    def _content(text: str) -> dict[str, Any]:
        return {
            "msgtype": "m.text",
            "body": text,
            "format": "org.matrix.custom.html",
            "formatted_body": matrix_html(text),
            "m.mentions": {},
        }

    async def _send(self, room: str, content: dict[str, Any], key: str) -> str:
        txn = "kfd" + hashlib.sha256(key.encode()).hexdigest()[:32]
        path = f"/rooms/{quote(room, safe='')}/send/m.room.message/{txn}"
        answer = await self._call("PUT", path, body=content)
        event = answer.get("event_id")
        if not isinstance(event, str):
            raise TransientError(f"matrix: odd answer to a send in {room}: {answer}")
        return event

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        assert self._session is not None
        url = f"{self._base}{_CLIENT}{path}"
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            async with self._session.request(
                method, url, params=query, json=body, headers=headers
            ) as response:
                status = response.status
                retry_header = response.headers.get("Retry-After", "")
                try:
                    data = await response.json(content_type=None)
                except ValueError:
                    data = None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            what = exc or type(exc).__name__
            raise TransientError(f"matrix: {method} {path} failed ({what})") from None
        answer = data if isinstance(data, dict) else {}
        if status == 429:
            raise TransientError(
                f"matrix: rate limited on {path.split('/')[1]}",
                retry_after=_retry_after(answer, retry_header),
            )
        if status >= 500:
            raise TransientError(f"matrix: the homeserver failed ({status}) on {method} {path}")
        if status >= 400 or data is None:
            errcode = str(answer.get("errcode", ""))
            error = str(answer.get("error", "")) or f"HTTP {status}"
            raise Refused(
                f"the homeserver refused {method} {path}: {errcode} {error}".strip(),
                status,
                errcode,
            )
        return answer

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _retry_after(answer: dict[str, Any], header: str) -> float:
    """Seconds to wait, from ``retry_after_ms`` or a ``Retry-After`` header."""
    milliseconds = answer.get("retry_after_ms")
    if isinstance(milliseconds, int | float) and milliseconds >= 0:
        return min(float(milliseconds) / 1000, 3600.0)
    try:
        return min(max(float(header), 0.0), 3600.0)
    except ValueError:
        return 1.0
