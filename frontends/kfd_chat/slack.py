"""Slack in Socket Mode, with the official SDK (`slack_sdk`).

Events arrive as envelopes over a WebSocket the SDK keeps open (and reopens
after network loss). An envelope is acknowledged only after the bridge has
handled its message, so one lost with the connection is delivered again;
its ``event_id`` is then already among the handled ids, and it is skipped.
Answers stream by ``chat.update``; a thread is a message's ``thread_ts``.

Slack does not deduplicate posts, so every post carries its key as message
metadata (``kfd_post``); after a crash between a post and the record of its
``ts``, `SlackAdapter.find` reads the channel's (or thread's) recent messages
for that key instead of posting twice. Text is escaped for ``mrkdwn``: a
model's ``<!channel>`` or ``<@U123>`` is shown, never a mention.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from kfd_chat.adapter import AdapterError, Batch, Incoming, TransientError
from kfd_chat.markup import slack_escape
from kfd_chat.settings import SlackSettings

log = logging.getLogger("kfd_chat.slack")

METADATA_TYPE = "kfd_post"
FIND_LIMIT = 100
"""Recent messages searched for a post's key after a crash."""
_TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "service_unavailable", "request_timeout", "fatal_error"}
)


class SlackAdapter:
    """A Slack app connected in Socket Mode."""

    name = "slack"

    def __init__(self, settings: SlackSettings, app_token: str, bot_token: str) -> None:
        self.settings = settings
        self.edit_interval_s = settings.edit_interval_s
        self._app_token = app_token
        self._bot_token = bot_token
        self._web: AsyncWebClient | None = None
        self._socket: SocketModeClient | None = None
        self._queue: asyncio.Queue[tuple[SocketModeRequest, Incoming | None]] = asyncio.Queue()

    async def start(self, cursor: str | None, rooms: set[str]) -> None:
        # The SDK's clients bind to the running event loop: made here, not in __init__.
        kwargs: dict[str, Any] = {"token": self._bot_token}
        if self.settings.base_url:
            kwargs["base_url"] = self.settings.base_url
        self._web = AsyncWebClient(**kwargs)
        self._socket = SocketModeClient(
            app_token=self._app_token,
            web_client=self._web,
            ping_interval=self.settings.ping_interval_s,
            logger=logging.getLogger("kfd_chat.slack.socket"),
        )
        try:
            await self._web.auth_test()
        except SlackApiError as exc:
            raise AdapterError(
                f"slack refused the bot token: {exc.response.get('error')}"
            ) from None
        self._socket.socket_mode_request_listeners.append(self._on_request)  # type: ignore[arg-type]
        await self._socket.connect()  # type: ignore[no-untyped-call]

    async def _on_request(self, client: SocketModeClient, request: SocketModeRequest) -> None:
        item = _incoming(request) if request.type == "events_api" else None
        self._queue.put_nowait((request, item))

    async def batches(self) -> AsyncIterator[Batch]:
        while True:
            request, item = await self._queue.get()
            if item is not None:
                yield Batch([item], None)
            # Acknowledged once handled: unacknowledged envelopes come again.
            assert self._socket is not None
            try:
                await self._socket.send_socket_mode_response(
                    SocketModeResponse(envelope_id=request.envelope_id)
                )
            except (aiohttp.ClientError, ConnectionError, OSError) as exc:
                log.info(
                    "ack of %s lost (%s); Slack will deliver it again", request.envelope_id, exc
                )

    async def post(self, room: str, thread: str | None, text: str, key: str) -> str:
        assert self._web is not None
        response = await self._call(
            self._web.chat_postMessage,
            channel=room,
            text=slack_escape(text),
            thread_ts=thread,
            metadata={"event_type": METADATA_TYPE, "event_payload": {"key": key}},
        )
        return str(response["ts"])

    async def edit(self, room: str, message: str, text: str, key: str) -> None:
        assert self._web is not None
        await self._call(self._web.chat_update, channel=room, ts=message, text=slack_escape(text))

    async def find(self, room: str, thread: str | None, key: str) -> str | None:
        assert self._web is not None
        if thread:
            response = await self._call(
                self._web.conversations_replies,
                channel=room,
                ts=thread,
                limit=FIND_LIMIT,
                include_all_metadata=True,
            )
        else:
            response = await self._call(
                self._web.conversations_history,
                channel=room,
                limit=FIND_LIMIT,
                include_all_metadata=True,
            )
        for message in response.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == METADATA_TYPE and payload.get("key") == key:
                return str(message.get("ts"))
        return None

    async def sent_at(self, room: str, message: str) -> int:
        return slack_time(message)  # a message's ts is its time

    async def join(self, room: str) -> None:
        """Slack apps are added to channels by people; nothing to accept."""

    async def leave(self, room: str) -> None:
        """See `join`."""

    async def _call(self, method: Any, **kwargs: Any) -> Any:
        try:
            return await method(**{k: v for k, v in kwargs.items() if v is not None})
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if error == "ratelimited" or exc.response.status_code == 429:
                retry = exc.response.headers.get("Retry-After") or exc.response.headers.get(
                    "retry-after", "1"
                )
                raise TransientError(f"slack: {error}", retry_after=_seconds(retry)) from None
            if error in _TRANSIENT_ERRORS:
                raise TransientError(f"slack: {error}") from None
            raise AdapterError(f"slack refused {method.__name__}: {error}") from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise TransientError(f"slack: {exc or type(exc).__name__}") from None

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()  # type: ignore[no-untyped-call]
        session = getattr(self._web, "session", None)
        if session is not None:
            await session.close()


def _seconds(value: object) -> float:
    try:
        return min(max(float(str(value)), 0.0), 3600.0)
    except ValueError:
        return 1.0


def slack_time(ts: object) -> int:
    """A Slack ``ts`` ("1700000000.000100": seconds and a per-channel sequence)
    as one integer that orders as Slack orders messages; 0 if it is none."""
    seconds, _, fraction = str(ts or "").partition(".")
    if not seconds.isdigit() or not (fraction.isdigit() or not fraction):
        return 0
    return int(seconds) * 1_000_000 + int(fraction.ljust(6, "0")[:6])


def _incoming(request: SocketModeRequest) -> Incoming | None:
    payload = request.payload or {}
    event = payload.get("event")
    event_id = payload.get("event_id")
    if not isinstance(event, dict) or not isinstance(event_id, str):
        return None
    user = event.get("user")
    if not isinstance(user, str):
        return None
    if event.get("type") == "reaction_added":
        target = event.get("item") or {}
        if target.get("type") != "message":
            return None
        return Incoming(
            id=event_id,
            room=str(target.get("channel", "")),
            sender=user,
            reply_to=str(target.get("ts", "")),
            reaction=str(event.get("reaction", "")),
            kind="reaction",
        )
    if event.get("type") != "message" or event.get("subtype") or event.get("bot_id"):
        return None  # edits, joins, and our own posts are not messages to act on
    text = event.get("text")
    if not isinstance(text, str):
        return None
    thread = event.get("thread_ts")
    thread = str(thread) if thread and thread != event.get("ts") else None
    # Slack has no replies but threads: one started on an approval answers it (the
    # bridge knows which posts are approvals); any other is a thread, not a reply.
    return Incoming(
        id=event_id,
        room=str(event.get("channel", "")),
        sender=user,
        text=text,
        thread=thread,
        at=slack_time(event.get("ts")),
    )
