"""The client library every frontend uses to talk to the daemon.

One of kfd's three public contracts (with `kfd.protocol` and `kfd.api`). It
imports only pyzmq, msgspec and `kfd.protocol`, so a client starts fast.

::

    async with await Client.connect(name="my-frontend", spawn=True) as client:
        info = await client.create_session(cwd="/path/to/repo")
        async with await client.attach(info.id) as session:
            await client.send(info.id, "hello")
            async for event in session:
                print(event)

`Attachment` is the heart of it: it yields every event of a session exactly
once, in order: the logged history first, then live events. It re-attaches by
itself when it notices a gap (a slow subscriber's dropped event) and when the
daemon restarts, yielding `ConnectionLost` and `ConnectionRestored` so a
frontend can say so. Streamed text (``message.delta``, ``tool.output``)
arrives with offsets; the attachment trims overlaps and fills what it missed
from the snapshot, so the text a frontend assembles is exact.

`Follower` (from `Client.follow`) does the same for every session at once,
for frontends that watch them all (the notifier, a chat bridge): each
session's events exactly once and in order, interleaved across sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar, cast

import msgspec
import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from kfd import paths
from kfd import protocol as p

__all__ = [
    "Attachment",
    "Client",
    "ClientError",
    "ConnectionLost",
    "ConnectionRestored",
    "DaemonUnavailable",
    "Followed",
    "Follower",
    "RequestFailed",
    "ensure_daemon",
    "runtime_dir",
    "start_daemon",
    "state_dir",
]

SYNC_PREFIX = b"~sync."
CLIENT_TOPIC = b"~client."
SESSION_TOPIC_PREFIX = b"s"
"""Every session id (so every session topic) starts with this letter; other
topics (``global``, ``~sync.``, ``~client.``) never do."""
DEFAULT_TIMEOUT = 30.0
REFRESH_TIMEOUT = 120.0
"""For ``daemon.status`` with ``refresh_tools``: servers may be starting."""

ResultT = TypeVar("ResultT", bound=msgspec.Struct)


class ClientError(Exception):
    """Base of the client's errors."""


class DaemonUnavailable(ClientError):
    """No daemon answered (and none could be started)."""


class RequestFailed(ClientError):
    """The daemon answered with a typed error (``code``, ``message``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


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


def runtime_dir() -> Path:
    """The daemon's runtime directory (``$XDG_RUNTIME_DIR/kfd``)."""
    return paths.runtime_dir()


def state_dir() -> Path:
    """Where kfd keeps state (``$XDG_STATE_HOME/kfd``); frontends keep theirs here too."""
    return paths.state_dir()


_encoder = msgspec.json.Encoder()
_reply_decoder = msgspec.json.Decoder(p.Reply)
_event_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(p.AnyEvent)
_header_decoder = msgspec.json.Decoder(p.EventHeader)
_result_decoders: dict[str, msgspec.json.Decoder[Any]] = {}


def _decode_result(method: str, raw: msgspec.Raw) -> Any:
    decoder = _result_decoders.get(method)
    if decoder is None:
        decoder = _result_decoders[method] = msgspec.json.Decoder(p.RESULT_TYPES[method])
    return decoder.decode(raw)


def decode_event(body: bytes) -> p.Event | p.EventHeader:
    """An event, or just its header when its type is unknown to this client."""
    try:
        event: p.Event = _event_decoder.decode(body)
        return event
    except msgspec.ValidationError:
        return _header_decoder.decode(body)


class Client:
    """A connection to the daemon: requests, and attachments to sessions."""

    def __init__(self, directory: Path, name: str) -> None:
        self.runtime_dir = directory
        self.name = name
        self.id = f"f{secrets.token_hex(6)}"
        self._context = zmq.asyncio.Context()
        self._rpc = self._context.socket(zmq.DEALER)
        self._rpc.setsockopt(zmq.ROUTING_ID, self.id.encode())
        self._rpc.setsockopt(zmq.LINGER, 0)
        self._sub = self._context.socket(zmq.SUB)
        self._sub.setsockopt(zmq.LINGER, 0)
        self._sub.setsockopt(zmq.RCVHWM, 100_000)
        self._monitor = self._sub.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        self._ids = itertools.count(1)
        self._pending: dict[str, tuple[str, asyncio.Future[Any]]] = {}
        self._syncs: dict[bytes, asyncio.Future[None]] = {}
        self._attachments: dict[bytes, list[Attachment]] = {}
        self._followers: list[Follower] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = asyncio.Event()
        self.hello: p.HelloResult | None = None
        self.closed = False

    @classmethod
    async def connect(
        cls,
        directory: Path | None = None,
        *,
        name: str = "client",
        spawn: bool = False,
        timeout: float = 10.0,
    ) -> Client:
        """Connect and say hello. With ``spawn``, start a daemon if none runs."""
        directory = directory or runtime_dir()
        if spawn:
            await asyncio.to_thread(ensure_daemon, directory, timeout)
        client = cls(directory, name)
        client._rpc.connect(f"ipc://{directory / 'rpc.sock'}")
        client._sub.connect(f"ipc://{directory / 'events.sock'}")
        client._tasks = [
            asyncio.create_task(client._read_replies()),
            asyncio.create_task(client._read_events()),
            asyncio.create_task(client._watch_connection()),
        ]
        try:
            client.hello = await client.request(
                p.Hello(id="", name=name, pid=os.getpid()), timeout=timeout
            )
            await client._subscribe([CLIENT_TOPIC + client.id.encode()], timeout=timeout)
        except BaseException:
            await client.close()
            raise
        return client

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(DaemonUnavailable("the client was closed"))
        self._monitor.close(linger=0)
        self._sub.close(linger=0)
        self._rpc.close(linger=0)
        self._context.term()

    # -- requests ----------------------------------------------------------

    async def request(self, request: p.Request, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Send a request and return its decoded result (see `protocol.RESULT_TYPES`).

        Raises `RequestFailed` for an error reply, `DaemonUnavailable` when no
        reply comes within ``timeout`` seconds.
        """
        request.id = str(next(self._ids))
        method = p.method_name(request)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = (method, future)
        try:
            await self._rpc.send(_encoder.encode(request))
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise DaemonUnavailable(
                f"no answer to {method} within {timeout:g} s from the daemon at "
                f"{self.runtime_dir} (is it running? `kfd status`)"
            ) from None
        finally:
            self._pending.pop(request.id, None)

    async def _read_replies(self) -> None:
        while True:
            body = await self._rpc.recv()
            try:
                reply = _reply_decoder.decode(body)
            except msgspec.MsgspecError as exc:
                self._drop_bad_reply(body, exc)
                continue
            pending = self._pending.get(reply.id)
            if pending is None:
                continue
            method, future = pending
            if future.done():
                continue
            if reply.ok:
                try:
                    future.set_result(_decode_result(method, reply.result))
                except msgspec.MsgspecError as exc:
                    future.set_exception(RequestFailed("bad_reply", str(exc)))
            else:
                error = reply.error or p.ErrorInfo(code="internal", message="no error given")
                future.set_exception(RequestFailed(error.code, error.message))

    def _drop_bad_reply(self, body: bytes, exc: Exception) -> None:
        """A reply we cannot read fails the request it answers, if we can tell which."""
        try:
            request_id = msgspec.json.decode(body, type=dict[str, Any]).get("id")
        except msgspec.MsgspecError:
            return
        pending = self._pending.get(str(request_id))
        if pending is not None and not pending[1].done():
            pending[1].set_exception(RequestFailed("bad_reply", f"unreadable reply: {exc}"))

    # -- convenience -------------------------------------------------------

    async def status(self, *, refresh_tools: bool = False) -> p.StatusResult:
        """The daemon's state; ``refresh_tools`` first asks the tool sources (MCP
        servers start if they have not yet), so it may take longer."""
        result: p.StatusResult = await self.request(
            p.Status(id="", refresh_tools=refresh_tools),
            timeout=REFRESH_TIMEOUT if refresh_tools else DEFAULT_TIMEOUT,
        )
        return result

    async def shutdown(self) -> None:
        await self.request(p.Shutdown(id=""))

    async def create_session(
        self,
        cwd: str | os.PathLike[str],
        *,
        title: str = "",
        model: str | None = None,
        mode: p.Mode = "default",
    ) -> p.SessionInfo:
        result: p.SessionResult = await self.request(
            p.SessionCreate(id="", cwd=os.path.abspath(cwd), title=title, model=model, mode=mode)
        )
        return result.session

    async def sessions(
        self, *, cwd: str | None = None, include_archived: bool = False, limit: int = 100
    ) -> list[p.SessionInfo]:
        result: p.SessionListResult = await self.request(
            p.SessionList(id="", cwd=cwd, include_archived=include_archived, limit=limit)
        )
        return result.sessions

    async def session(self, session_id: str) -> p.SessionInfo:
        result: p.SessionResult = await self.request(p.SessionGet(id="", session=session_id))
        return result.session

    async def send(
        self, session_id: str, text: str, *, client_msg_id: str | None = None
    ) -> p.MessageSendResult:
        result: p.MessageSendResult = await self.request(
            p.MessageSend(id="", session=session_id, text=text, client_msg_id=client_msg_id)
        )
        return result

    async def cancel(self, session_id: str, *, clear_queue: bool = False) -> None:
        await self.request(p.TurnCancel(id="", session=session_id, clear_queue=clear_queue))

    async def respond(
        self,
        session_id: str,
        approval_id: str,
        decision: p.ApprovalDecision,
        message: str = "",
    ) -> None:
        await self.request(
            p.ApprovalRespond(
                id="",
                session=session_id,
                approval_id=approval_id,
                decision=decision,
                message=message,
            )
        )

    async def set_mode(self, session_id: str, mode: p.Mode) -> p.SessionInfo:
        result: p.SessionResult = await self.request(
            p.SessionSetMode(id="", session=session_id, mode=mode)
        )
        return result.session

    async def set_model(self, session_id: str, model: str) -> p.SessionInfo:
        result: p.SessionResult = await self.request(
            p.SessionSetModel(id="", session=session_id, model=model)
        )
        return result.session

    async def fork(
        self, session_id: str, message_id: str | None = None, title: str = ""
    ) -> p.SessionInfo:
        result: p.SessionResult = await self.request(
            p.SessionFork(id="", session=session_id, message_id=message_id, title=title)
        )
        return result.session

    async def archive(self, session_id: str, archived: bool = True) -> p.SessionInfo:
        result: p.SessionResult = await self.request(
            p.SessionArchive(id="", session=session_id, archived=archived)
        )
        return result.session

    async def compact(
        self, session_id: str, instructions: str = "", *, timeout: float = 300.0
    ) -> p.CompactResult:
        """Compact the session now; the model writes the summary, so allow time."""
        result: p.CompactResult = await self.request(
            p.SessionCompact(id="", session=session_id, instructions=instructions),
            timeout=timeout,
        )
        return result

    async def context(self, session_id: str) -> p.ContextResult:
        """What fills the session's context window."""
        result: p.ContextResult = await self.request(p.SessionContext(id="", session=session_id))
        return result

    async def memories(
        self,
        *,
        cwd: str | os.PathLike[str] | None = None,
        scope: Literal["project", "global", "all"] = "all",
        query: str | None = None,
        limit: int = 100,
    ) -> list[p.Memory]:
        """Remembered facts: newest first, or ranked by ``query``; with ``cwd``,
        those of its project and the global ones."""
        where = os.path.abspath(cwd) if cwd is not None else None
        request: p.Request
        if query is not None:
            request = p.MemorySearch(id="", query=query, cwd=where, limit=limit)
        else:
            request = p.MemoryList(id="", cwd=where, scope=scope, limit=limit)
        result: p.MemoryListResult = await self.request(request)
        return result.memories

    async def remember(
        self,
        text: str,
        *,
        scope: p.MemoryScope = "project",
        cwd: str | os.PathLike[str] | None = None,
    ) -> p.Memory:
        """Remember a fact for the project of ``cwd`` (secrets are redacted by the daemon)."""
        where = os.path.abspath(cwd) if cwd is not None else None
        result: p.MemoryResult = await self.request(
            p.MemoryAdd(id="", text=text, scope=scope, cwd=where)
        )
        return result.memory

    async def forget(self, memory_id: int) -> p.Memory:
        """Delete a remembered fact; returns what was deleted."""
        result: p.MemoryResult = await self.request(p.MemoryForget(id="", memory_id=memory_id))
        return result.memory

    async def rules(self, *, cwd: str | os.PathLike[str] | None = None) -> p.RulesResult:
        """The permission rules that apply in ``cwd``, by source; without ``cwd``,
        the "always" rules of every project."""
        where = os.path.abspath(cwd) if cwd is not None else None
        result: p.RulesResult = await self.request(p.RulesList(id="", cwd=where))
        return result

    async def remove_rule(
        self,
        rule_id: int | None = None,
        *,
        rule: str = "",
        cwd: str | os.PathLike[str] | None = None,
    ) -> p.RuleInfo:
        """Remove an "always" rule by id, or by its text in the project of ``cwd``."""
        where = os.path.abspath(cwd) if cwd is not None else None
        result: p.RulesResult = await self.request(
            p.RulesRemove(id="", rule_id=rule_id, rule=rule, cwd=where)
        )
        return result.rules[0]

    async def explain(
        self, command: str, *, cwd: str | os.PathLike[str], mode: p.Mode = "default"
    ) -> p.ExplainResult:
        """How the daemon's permission engine decides a bash command in ``cwd``."""
        result: p.ExplainResult = await self.request(
            p.RulesExplain(id="", command=command, cwd=os.path.abspath(cwd), mode=mode)
        )
        return result

    # -- events ------------------------------------------------------------

    async def attach(
        self, session_id: str, *, since_seq: int = 0, tail: int | None = None
    ) -> Attachment:
        """Subscribe to a session, then fetch its snapshot and history."""
        info = await self.session(session_id)  # resolves a short id
        attachment = Attachment(self, info.id)
        topic = info.id.encode()
        self._attachments.setdefault(topic, []).append(attachment)
        try:
            await self._subscribe([topic])
            await attachment._attach(since_seq, tail)
        except BaseException:
            await attachment.close()
            raise
        return attachment

    async def follow(self, since: dict[str, int] | None = None) -> Follower:
        """Follow every session: each one's events exactly once, in order.

        Sessions that are busy now (running, awaiting approval) are attached
        at once from their current state; any other session is attached the
        moment it shows activity (a new session, a message from anyone), from
        its first event seen. ``since`` maps session ids to the last seq the
        caller already handled (a bridge resuming after a restart): those
        sessions are attached from there, so nothing is missed or repeated.
        Each attach yields a `Followed` with the session's snapshot first.
        """
        follower = Follower(self, since or {})
        self._followers.append(follower)
        try:
            await self._subscribe([SESSION_TOPIC_PREFIX])
            await follower._catch_up()
        except BaseException:
            await follower.close()
            raise
        return follower

    async def _subscribe(self, topics: list[bytes], timeout: float = DEFAULT_TIMEOUT) -> None:
        """Subscribe, and return once the daemon has seen the subscriptions."""
        for topic in topics:
            self._sub.subscribe(topic)
        await self._sync(timeout)

    async def _sync(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        token = SYNC_PREFIX + secrets.token_hex(8).encode()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._syncs[token] = future
        self._sub.subscribe(token)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            raise DaemonUnavailable(
                f"the daemon at {self.runtime_dir} did not confirm a subscription"
            ) from None
        finally:
            self._syncs.pop(token, None)
            self._sub.unsubscribe(token)

    def _unsubscribe(self, attachment: Attachment) -> None:
        topic = attachment.session_id.encode()
        attached = self._attachments.get(topic, [])
        if attachment in attached:
            attached.remove(attachment)
            if not self.closed:
                self._sub.unsubscribe(topic)
        if not attached:
            self._attachments.pop(topic, None)

    async def _read_events(self) -> None:
        sub = self._sub
        while True:
            self._dispatch(await sub.recv_multipart())
            # One wake-up, then take whatever else has arrived without awaiting:
            # an awaited receive costs tens of microseconds, a drained one about one.
            for _ in range(1000):
                # NOBLOCK on an asyncio socket returns a future already settled.
                ready = cast("asyncio.Future[list[bytes]]", sub.recv_multipart(flags=zmq.NOBLOCK))
                try:
                    frames = ready.result()
                except zmq.Again:
                    break
                self._dispatch(frames)

    def _dispatch(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            return
        topic, body = frames
        if topic.startswith(SYNC_PREFIX):
            future = self._syncs.get(topic)
            if future is not None and not future.done():
                future.set_result(None)
            return
        attached = self._attachments.get(topic)
        if attached:
            for attachment in attached:
                attachment._queue.put_nowait(body)
        elif topic.startswith(SESSION_TOPIC_PREFIX):
            for follower in self._followers:
                follower._first_sight(topic, body)

    async def _watch_connection(self) -> None:
        """Tell attachments when the daemon goes away and comes back."""
        connected_once = False
        while True:
            message = parse_monitor_message(await self._monitor.recv_multipart())
            if message["event"] == zmq.EVENT_CONNECTED:
                if connected_once:
                    for attachments in list(self._attachments.values()):
                        for attachment in attachments:
                            attachment._queue.put_nowait(_RECONNECTED)
                    for follower in self._followers:
                        follower._reconnected()
                connected_once = True
            elif message["event"] == zmq.EVENT_DISCONNECTED:
                for attachments in list(self._attachments.values()):
                    for attachment in attachments:
                        attachment._queue.put_nowait(_DISCONNECTED)


_DISCONNECTED = b"\x00disconnected"
_RECONNECTED = b"\x00reconnected"


class Attachment:
    """A session's events, each exactly once, in order. Iterate it.

    ``snapshot`` is the live state as of the last (re-)attach; ``last_seq``
    the last durable event yielded.
    """

    def __init__(self, client: Client, session_id: str) -> None:
        self.client = client
        self.session_id = session_id
        self.snapshot: p.Snapshot | None = None
        self.last_seq = 0
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._ready: deque[Item] = deque()
        self._texts: dict[tuple[str, str], int] = {}
        self._outputs: dict[str, int] = {}
        self._gap = False
        self._closed = False

    async def __aenter__(self) -> Attachment:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        self.client._unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[Item]:
        return self

    async def __anext__(self) -> Item:
        while not self._ready:
            if self._closed:
                raise StopAsyncIteration
            if self._gap:
                self._gap = False
                await self._attach(self.last_seq, None)
                continue
            body = await self._queue.get()
            if body == _DISCONNECTED:
                self._ready.append(ConnectionLost(self.session_id))
            elif body == _RECONNECTED:
                await self._reconnect()
            else:
                self._take(body)
        return self._ready.popleft()

    async def next_event(self, timeout: float) -> Item:
        """The next item, or TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            return await self.__anext__()

    async def _reconnect(self) -> None:
        while True:
            try:
                await self.client._sync(timeout=10.0)
                await self._attach(self.last_seq, None, restored=True)
                return
            except (DaemonUnavailable, RequestFailed):
                await asyncio.sleep(0.2)

    async def _attach(self, since_seq: int, tail: int | None, *, restored: bool = False) -> None:
        while True:
            result: p.AttachResult = await self.client.request(
                p.SessionAttach(id="", session=self.session_id, since_seq=since_seq, tail=tail)
            )
            if restored:
                self._ready.append(ConnectionRestored(self.session_id, result.snapshot))
                restored = False
            # History starts where we asked (or where the tail begins).
            start = result.first_seq - 1 if tail is not None else since_seq
            self.last_seq = max(self.last_seq, start)
            for raw in result.events:
                self._take(bytes(raw))
            if not result.more:
                break
            since_seq, tail = self.last_seq, None
        snapshot = result.snapshot
        self.snapshot = snapshot
        self.last_seq = max(self.last_seq, snapshot.seq)
        self._fill_streams(snapshot)

    def _fill_streams(self, snapshot: p.Snapshot) -> None:
        """Yield the part of partial streams this client has not seen."""
        streaming = snapshot.streaming
        if streaming is not None:
            for kind, text in (("reasoning", streaming.reasoning), ("text", streaming.text)):
                self._extend_text(
                    p.MessageDelta(
                        session=self.session_id,
                        seq=snapshot.seq,
                        ephemeral=True,
                        message_id=streaming.message_id,
                        text=text,
                        offset=0,
                        kind="text" if kind == "text" else "reasoning",
                    ),
                    fill=True,
                )
        for running in snapshot.running_tools:
            self._extend_output(
                p.ToolOutput(
                    session=self.session_id,
                    seq=snapshot.seq,
                    ephemeral=True,
                    call_id=running.call_id,
                    data=running.output,
                    offset=running.output_offset,
                ),
                fill=True,
            )

    def _take(self, body: bytes) -> None:
        try:
            event = decode_event(body)
        except msgspec.MsgspecError:
            return
        if event.ephemeral:
            if event.seq > self.last_seq:
                self._gap = True  # a durable event went missing before this one
                return
            if event.seq < self.last_seq:
                return
            if isinstance(event, p.MessageDelta):
                self._extend_text(event)
            elif isinstance(event, p.ToolOutput):
                self._extend_output(event)
            elif isinstance(event, p.Event):
                self._ready.append(event)
            return
        if event.seq <= self.last_seq:
            return
        if event.seq != self.last_seq + 1:
            self._gap = True
            return
        self.last_seq = event.seq
        if isinstance(event, p.MessageCompleted | p.MessageDiscarded):
            self._texts.pop((event.message_id, "text"), None)
            self._texts.pop((event.message_id, "reasoning"), None)
        elif isinstance(event, p.ToolCompleted):
            self._outputs.pop(event.call_id, None)
        if isinstance(event, p.Event):
            self._ready.append(event)

    def _extend_text(self, delta: p.MessageDelta, *, fill: bool = False) -> None:
        key = (delta.message_id, delta.kind)
        known = self._texts.get(key, 0)
        end = delta.offset + len(delta.text)
        if end <= known:
            return
        if delta.offset > known and not fill:
            self._gap = True
            return
        start = max(0, known - delta.offset)
        self._texts[key] = end
        self._ready.append(
            msgspec.structs.replace(delta, text=delta.text[start:], offset=delta.offset + start)
        )

    def _extend_output(self, chunk: p.ToolOutput, *, fill: bool = False) -> None:
        known = self._outputs.get(chunk.call_id, 0)
        end = chunk.offset + len(chunk.data)
        if end <= known:
            return
        if chunk.offset > known and not fill:
            self._gap = True
            return
        start = max(0, known - chunk.offset)
        self._outputs[chunk.call_id] = end
        self._ready.append(
            msgspec.structs.replace(chunk, data=chunk.data[start:], offset=chunk.offset + start)
        )


class Follower:
    """Every session's events, each session's exactly once and in order.

    Iterate it; items of different sessions interleave. Made by
    `Client.follow`. Under the hood it is one `Attachment` per session (so
    gaps and daemon restarts are handled per session), plus a subscription to
    every session topic so that a session never seen before is attached on
    its first event.
    """

    def __init__(self, client: Client, since: dict[str, int]) -> None:
        self.client = client
        self.attachments: dict[str, Attachment] = {}
        self._since = dict(since)
        self._out: asyncio.Queue[FollowItem] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def __aenter__(self) -> Follower:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[FollowItem]:
        return self

    async def __anext__(self) -> FollowItem:
        if self._closed and self._out.empty():
            raise StopAsyncIteration
        return await self._out.get()

    async def next_event(self, timeout: float) -> FollowItem:
        """The next item, or TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            return await self.__anext__()

    async def close(self) -> None:
        self._closed = True
        client = self.client
        if self in client._followers:
            client._followers.remove(self)
            if not client.closed:
                client._sub.unsubscribe(SESSION_TOPIC_PREFIX)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for attachment in list(self.attachments.values()):
            await attachment.close()

    async def _catch_up(self) -> None:
        """Attach the sessions given by the caller and those busy right now."""
        listed = await self.client.sessions(limit=10_000)
        wanted = dict(self._since)
        for info in listed:
            if info.id not in wanted and info.status != "idle":
                wanted[info.id] = info.last_seq
        for session_id, seq in wanted.items():
            if session_id not in self.attachments:
                self._start(session_id, seq, None)

    def _first_sight(self, topic: bytes, body: bytes) -> None:
        """An event of a session nobody here is attached to: attach from it."""
        if self._closed:
            return
        try:
            header = _header_decoder.decode(body)
        except msgspec.MsgspecError:
            return
        session_id = topic.decode("ascii", "replace")
        if session_id in self.attachments or header.session != session_id:
            return
        since = self._since.get(session_id)
        if since is None:
            # An ephemeral event carries the seq of the durable event before it.
            since = header.seq if header.ephemeral else max(0, header.seq - 1)
        self._start(session_id, since, body)

    def _reconnected(self) -> None:
        """Sessions that became busy while the daemon was away are attached now."""
        if not self._closed:
            self._spawn(self._catch_up())

    def _start(self, session_id: str, since_seq: int, first: bytes | None) -> None:
        attachment = Attachment(self.client, session_id)
        self.attachments[session_id] = attachment
        self.client._attachments.setdefault(session_id.encode(), []).append(attachment)
        if first is not None:
            attachment._queue.put_nowait(first)
        self._spawn(self._pump(attachment, since_seq))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump(self, attachment: Attachment, since_seq: int) -> None:
        try:
            await attachment._attach(since_seq, None)
        except RequestFailed:  # no such session (a stale id in the caller's cursor)
            self.attachments.pop(attachment.session_id, None)
            await attachment.close()
            return
        except DaemonUnavailable:
            attachment.last_seq = max(attachment.last_seq, since_seq)
            await attachment._reconnect()  # retries until the daemon answers
        assert attachment.snapshot is not None
        self._out.put_nowait(Followed(attachment.session_id, attachment.snapshot))
        async for item in attachment:
            self._out.put_nowait(item)


# --------------------------------------------------------------------------
# Starting the daemon on demand


def daemon_running(directory: Path) -> bool:
    """True if a daemon holds the lock of ``directory``."""
    return paths.daemon_pid(directory) is not None


def ensure_daemon(directory: Path | None = None, timeout: float = 10.0) -> None:
    """Start a daemon for ``directory`` unless one runs; wait until it is ready."""
    directory = directory or runtime_dir()
    if daemon_running(directory):
        return
    state = paths.state_dir()
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(state / "daemon.stderr", "w+b") as stderr:
        try:
            start_daemon(dict(os.environ), stderr, timeout)
        except DaemonUnavailable:
            if daemon_running(directory):
                return  # another client started one first
            raise


def start_daemon(
    env: dict[str, str],
    stderr: Any,
    timeout: float = 10.0,
    argv: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``kfd daemon`` detached and return once it reports ready.

    The child is told to report readiness on a private ``$NOTIFY_SOCKET``
    (systemd's protocol), so we wait for the real event, not for a file.
    ``stderr`` is a binary file the daemon's early errors go to; they are
    quoted in the exception when it fails to start.
    """
    with tempfile.TemporaryDirectory(prefix="kfd-spawn-") as scratch:
        address = os.path.join(scratch, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(address)
            process = subprocess.Popen(
                argv or [sys.executable, "-m", "kfd", "daemon"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=dict(env, NOTIFY_SOCKET=address),
                start_new_session=True,
                close_fds=True,
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                readable, _, _ = select.select([notify], [], [], 0.05)
                if readable and b"READY=1" in notify.recv(4096):
                    return process
                code = process.poll()
                if code is not None:
                    stderr.flush()
                    stderr.seek(0)
                    detail = stderr.read().decode(errors="replace").strip()
                    raise DaemonUnavailable(
                        f"the kfd daemon exited with status {code} while starting"
                        + (f":\n{detail[-2000:]}" if detail else "")
                    )
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    process.wait()
    raise DaemonUnavailable(f"the kfd daemon did not become ready within {timeout:g} s")
