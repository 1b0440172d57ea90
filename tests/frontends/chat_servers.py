"""Test support: chat services on 127.0.0.1 speaking their documented payloads.

`MatrixServer` is a homeserver stand-in for the client-server API calls the
bridge makes (``/versions``, ``/sync`` long-polling with ``next_batch``
tokens, ``PUT /rooms/{room}/send/{type}/{txnId}`` deduplicated by txnId per
the spec). `SlackServer` is the Web API (``auth.test``,
``apps.connections.open``, ``chat.postMessage``, ``chat.update``) plus the
Socket Mode WebSocket (hello, envelopes, acknowledgements, redelivery of
unacknowledged envelopes after a reconnect). Both can drop connections.
"""

import asyncio
import itertools
import json

from aiohttp import WSMsgType, web


class _Server:
    def __init__(self) -> None:
        self.app = web.Application()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.changed = asyncio.Condition()

    async def start(self):
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
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


class MatrixServer(_Server):
    TOKEN = "syt_test_token"

    def __init__(self, bot: str = "@kfd:localhost") -> None:
        super().__init__()
        self.bot = bot
        self.timeline: list[tuple[str, dict]] = []
        self.by_txn: dict[str, str] = {}
        self.sends = 0
        self.syncs = 0
        self.cut_next_sync = False
        self._ids = itertools.count(1)
        self._live: dict[int, web.Request] = {}
        self.app.router.add_get("/_matrix/client/versions", self._versions)
        self.app.router.add_get("/_matrix/client/v3/sync", self._sync)
        self.app.router.add_put("/_matrix/client/v3/rooms/{room}/send/{type}/{txn}", self._send)

    # -- what a test does ---------------------------------------------------

    async def say(self, room: str, sender: str, body: str, *, reply_to: str | None = None) -> str:
        content: dict = {"msgtype": "m.text", "body": body}
        if reply_to:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        return await self.append(room, sender, "m.room.message", content)

    async def react(self, room: str, sender: str, target: str, key: str) -> str:
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}}
        return await self.append(room, sender, "m.reaction", content)

    def drop(self) -> None:
        """Cut every open /sync connection, and the next /sync too."""
        self.cut_next_sync = True
        for request in list(self._live.values()):
            if request.transport is not None:
                request.transport.close()

    def messages(self, room: str) -> list[dict]:
        """The bot's messages in ``room``, edits applied: {event_id, body, edits}."""
        shown: dict[str, dict] = {}
        for event_room, event in self.timeline:
            if event_room != room or event["sender"] != self.bot:
                continue
            content = event["content"]
            relates = content.get("m.relates_to", {})
            if relates.get("rel_type") == "m.replace":
                target = shown[relates["event_id"]]
                target["body"] = content["m.new_content"]["body"]
                target["edits"] += 1
            else:
                shown[event["event_id"]] = {
                    "event_id": event["event_id"],
                    "body": content["body"],
                    "edits": 0,
                }
        return list(shown.values())

    # -- the API ------------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.TOKEN}"

    async def _versions(self, request: web.Request) -> web.Response:
        return web.json_response({"versions": ["v1.11"]})

    async def append(self, room: str, sender: str, kind: str, content: object) -> str:
        """Any event, malformed ones included."""
        event_id = f"$e{next(self._ids)}"
        self.timeline.append(
            (
                room,
                {
                    "type": kind,
                    "sender": sender,
                    "event_id": event_id,
                    "content": content,
                    "origin_server_ts": 0,
                },
            )
        )
        await self._notify()
        return event_id

    async def _sync(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return web.json_response(
                {"errcode": "M_UNKNOWN_TOKEN", "error": "bad token"}, status=401
            )
        self.syncs += 1
        await self._notify()
        since = int(request.query.get("since", "s0")[1:] or 0)
        timeout = int(request.query.get("timeout", "0")) / 1000
        self._live[id(request)] = request
        try:
            if self.cut_next_sync:
                self.cut_next_sync = False
                request.transport.close()
                return web.Response(status=502)
            if timeout:
                try:
                    async with asyncio.timeout(timeout), self.changed:
                        while len(self.timeline) <= since:
                            await self.changed.wait()
                except TimeoutError:
                    pass
        finally:
            self._live.pop(id(request), None)
        events = self.timeline[since:]
        rooms: dict = {}
        for room, event in events:
            rooms.setdefault(room, {"timeline": {"events": []}})["timeline"]["events"].append(event)
        return web.json_response({"next_batch": f"s{len(self.timeline)}", "rooms": {"join": rooms}})

    async def _send(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response(
                {"errcode": "M_UNKNOWN_TOKEN", "error": "bad token"}, status=401
            )
        self.sends += 1
        txn = request.match_info["txn"]
        if txn in self.by_txn:  # the spec: the same txnId is the same event
            return web.json_response({"event_id": self.by_txn[txn]})
        content = await request.json()
        event_id = await self.append(
            request.match_info["room"], self.bot, request.match_info["type"], content
        )
        self.by_txn[txn] = event_id
        return web.json_response({"event_id": event_id})


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
        for method in ("auth.test", "apps.connections.open", "chat.postMessage", "chat.update"):
            self.app.router.add_post(f"/api/{method}", self._api)
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
    ) -> str:
        ts = f"{1700000000 + next(self._ts)}.000100"
        event = {"type": "message", "channel": channel, "user": user, "text": text, "ts": ts}
        if thread:
            event["thread_ts"] = thread
        await self._deliver(event, event_id)
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

    async def _deliver(self, event: dict, event_id: str | None) -> None:
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
        if self._socket is not None and not self._socket.closed:
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
        if method == "chat.postMessage":
            ts = f"{1800000000 + next(self._ts)}.000200"
            self.posts.append({**form, "ts": ts})
            await self._notify()
            return web.json_response({"ok": True, "channel": form["channel"], "ts": ts})
        self.updates.append(dict(form))
        await self._notify()
        return web.json_response({"ok": True, "channel": form["channel"], "ts": form["ts"]})

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
