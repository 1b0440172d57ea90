"""Test support: Slack on 127.0.0.1, speaking its documented payloads.

Slack cannot run locally (Matrix can: see `synapse`). `SlackServer` is the
Web API (``auth.test``, ``apps.connections.open``, ``chat.postMessage`` with
message metadata, ``chat.update``, ``conversations.history`` and
``conversations.replies`` with ``include_all_metadata``) plus the Socket Mode
WebSocket (hello, envelopes, acknowledgements, redelivery of unacknowledged
envelopes after a reconnect). It can drop the connection, and run a hook
after a post is stored but before it is answered (a bridge killed there
made the post and never learnt its ``ts``).
"""

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web


class _Server:
    def __init__(self) -> None:
        self.app = web.Application()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.changed = asyncio.Condition()

    async def start(self, sock=None):
        """Serve on 127.0.0.1; on ``sock`` (a listening socket) when given, such
        as one made in another network namespace (`kfd.testing.netns`)."""
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        if sock is None:
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
        else:
            site = web.SockSite(self._runner, sock)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, predicate, timeout: float = 15.0):
        """Wait until ``predicate()`` returns something truthy; return it."""
        async with asyncio.timeout(timeout), self.changed:
            while not (result := predicate()):
                await self.changed.wait()
            return result


class SlackServer(_Server):
    BOT_TOKEN = "xoxb-test"
    APP_TOKEN = "xapp-test"

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[dict] = []
        self.updates: list[dict] = []
        self.acked: list[str] = []
        self.connections = 0
        self._unacked: dict[str, dict] = {}
        self._socket: web.WebSocketResponse | None = None
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self.after_post: Callable[[dict], Awaitable[None]] | None = None
        """Run once a post is stored, before its answer is sent."""
        self.rate_limit_posts = 0
        """Refuse this many next posts with HTTP 429 and ``Retry-After: 1``, as Slack does."""
        self.rate_limited = 0
        for method in ("auth.test", "apps.connections.open", "chat.postMessage", "chat.update"):
            self.app.router.add_post(f"/api/{method}", self._api)
        for method in ("conversations.history", "conversations.replies"):
            self.app.router.add_get(f"/api/{method}", self._read)
        self.app.router.add_get("/link", self._link)

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/"

    async def message(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        thread: str | None = None,
        event_id: str | None = None,
        late: bool = False,
    ) -> str:
        """Say ``text``; ``late``: Slack holds it until the next connection (as it
        redelivers an envelope that was not acknowledged), keeping its ``ts``."""
        ts = f"{1700000000 + next(self._ts)}.000100"
        event = {"type": "message", "channel": channel, "user": user, "text": text, "ts": ts}
        if thread:
            event["thread_ts"] = thread
        await self._deliver(event, event_id, late=late)
        return ts

    async def reaction(self, channel: str, user: str, ts: str, name: str) -> None:
        await self._deliver(
            {
                "type": "reaction_added",
                "user": user,
                "reaction": name,
                "item": {"type": "message", "channel": channel, "ts": ts},
            },
            None,
        )

    async def drop(self) -> None:
        """Close the Socket Mode connection; unacknowledged envelopes come again."""
        if self._socket is not None:
            await self._socket.close()

    def text_of(self, ts: str) -> str:
        post = next(p for p in self.posts if p["ts"] == ts)
        text = post["text"]
        for update in self.updates:
            if update["ts"] == ts:
                text = update["text"]
        return text

    async def _deliver(self, event: dict, event_id: str | None, *, late: bool = False) -> None:
        envelope_id = f"env-{next(self._ids)}"
        envelope = {
            "envelope_id": envelope_id,
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": 0,
            "payload": {
                "type": "event_callback",
                "event_id": event_id or f"Ev{envelope_id}",
                "event": event,
                "team_id": "T1",
            },
        }
        self._unacked[envelope_id] = envelope
        if not late and self._socket is not None and not self._socket.closed:
            await self._socket.send_str(json.dumps(envelope))

    async def _api(self, request: web.Request) -> web.Response:
        method = request.path.rsplit("/", 1)[-1]
        token = request.headers.get("Authorization", "")
        expected = self.APP_TOKEN if method == "apps.connections.open" else self.BOT_TOKEN
        if token != f"Bearer {expected}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        form = (
            dict(await request.post())
            if request.content_type != "application/json"
            else await request.json()
        )
        if method == "auth.test":
            return web.json_response(
                {"ok": True, "user_id": "UBOT", "bot_id": "BBOT", "team_id": "T1"}
            )
        if method == "apps.connections.open":
            return web.json_response({"ok": True, "url": f"ws://127.0.0.1:{self.port}/link"})
        if method == "chat.postMessage" and self.rate_limit_posts:
            self.rate_limit_posts -= 1
            self.rate_limited += 1
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "1"}
            )
        if method == "chat.postMessage":
            ts = f"{1700000000 + next(self._ts)}.000200"  # one clock with messages
            post = {**form, "ts": ts}
            if isinstance(post.get("metadata"), str):
                post["metadata"] = json.loads(post["metadata"])
            self.posts.append(post)
            await self._notify()
            if self.after_post is not None:
                await self.after_post(post)
            return web.json_response({"ok": True, "channel": form["channel"], "ts": ts})
        self.updates.append(dict(form))
        await self._notify()
        return web.json_response({"ok": True, "channel": form["channel"], "ts": form["ts"]})

    async def _read(self, request: web.Request) -> web.Response:
        """The bot's posts, newest first (a thread's: oldest first, as Slack does)."""
        if request.headers.get("Authorization", "") != f"Bearer {self.BOT_TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        channel = request.query.get("channel")
        thread = request.query.get("ts") if request.path.endswith("replies") else None
        limit = int(request.query.get("limit", "100"))
        with_metadata = request.query.get("include_all_metadata") in ("1", "true", "True")
        found = [p for p in self.posts if p["channel"] == channel and p.get("thread_ts") == thread]
        messages = []
        for post in reversed(found) if thread is None else found:
            message = {
                "type": "message",
                "ts": post["ts"],
                "text": self.text_of(post["ts"]),
                "bot_id": "BBOT",
            }
            if with_metadata and post.get("metadata"):
                message["metadata"] = post["metadata"]
            messages.append(message)
        return web.json_response({"ok": True, "messages": messages[:limit], "has_more": False})

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._socket = socket
        self.connections += 1
        await socket.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "debug_info": {"host": "test"},
                    "connection_info": {"app_id": "A1"},
                }
            )
        )
        for envelope in list(self._unacked.values()):  # Slack retries what was not acked
            envelope["retry_attempt"] += 1
            await socket.send_str(json.dumps(envelope))
        await self._notify()
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                data = json.loads(message.data)
                envelope_id = data.get("envelope_id")
                if envelope_id in self._unacked:
                    del self._unacked[envelope_id]
                    self.acked.append(envelope_id)
                    await self._notify()
        return socket
