"""The connection to the daemon: requests, subscriptions, and what arrives.

Two sockets: a DEALER for requests, their replies and the session events
this client subscribed to (batched by the daemon, ``[EVENTS_FRAME, topic,
body, ...]``), and a SUB that only tells the daemon this client is here
(``~client.<id>``) and when the daemon goes and comes back.

Every request gets an answer: its reply, a refusal (``overloaded`` ones are
retried here with backoff, since the daemon did nothing with them), or
`DaemonUnavailable` after a timeout. A refusal without an id (the daemon could
not read one) fails the oldest request still waiting, rather than leave it to
time out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import secrets
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import msgspec
import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from kfd import protocol as p
from kfd.client.attachment import Attachment
from kfd.client.daemon import ensure_daemon, runtime_dir
from kfd.client.environment import environment_drift
from kfd.client.errors import ClientError, DaemonUnavailable, RemoteRefused, RequestFailed
from kfd.client.events import DISCONNECTED, RECONNECTED, SESSION_TOPIC_PREFIX
from kfd.client.files import FileHandler, FileService
from kfd.client.follow import Follower
from kfd.client.notices import GLOBAL, Notices
from kfd.client.remote import HANDSHAKE_FAILURES, PERMANENT_FAILURES, Remote
from kfd.client.socket_reader import SocketReader

SYNC_PREFIX = b"~sync."
CLIENT_TOPIC = b"~client."
EVENTS_FRAME = b"\x00events"
"""First frame of a batch of session events (`kfd.daemon.bus`)."""
FILES_TOPIC = p.FILES_TOPIC.encode()
DEFAULT_TIMEOUT = 30.0
REFRESH_TIMEOUT = 120.0
"""For ``daemon.status`` with ``refresh_tools``: servers may be starting."""
OVERLOADED_RETRIES = 8
"""Times an ``overloaded`` refusal is retried (after 0.05 s, doubling to 2 s)."""

_encoder = msgspec.json.Encoder()
_reply_decoder = msgspec.json.Decoder(p.Reply)
_file_request_decoder = msgspec.json.Decoder(p.FileRequested)
_result_decoders: dict[str, msgspec.json.Decoder[Any]] = {}


def _decode_result(method: str, raw: msgspec.Raw) -> Any:
    decoder = _result_decoders.get(method)
    if decoder is None:
        decoder = _result_decoders[method] = msgspec.json.Decoder(p.RESULT_TYPES[method])
    return decoder.decode(raw)


class Client:
    """A connection to the daemon: requests, and attachments to sessions."""

    def __init__(self, directory: Path, name: str, remote: Remote | None = None) -> None:
        self.runtime_dir = directory
        self.name = name
        self.remote = remote
        """The daemon on another host this client talks to (None: the local one)."""
        self.where = f"`{remote.name}` ({remote.endpoint})" if remote else str(directory)
        """The daemon, as messages name it."""
        self.pinned_on_first_use = ""
        """The remote daemon's key, when this connection pinned it (first use)."""
        self.id = f"f{secrets.token_hex(6)}"
        self._context = zmq.asyncio.Context()
        self._rpc = self._context.socket(zmq.DEALER)
        self._rpc.setsockopt(zmq.ROUTING_ID, self.id.encode())
        self._rpc.setsockopt(zmq.LINGER, 0)
        # The same socket without pyzmq's asyncio layer, for every send and
        # receive: a frontend gets an event batch many times a second, and
        # the layer's futures cost it more than the events themselves. The
        # event loop watches the socket's descriptor (`kfd.client.socket_reader`).
        self._raw: zmq.Socket[bytes] = zmq.Socket.shadow(self._rpc.underlying)
        self._reader = SocketReader(self._raw, self._take, self._reading, batch=1000)
        self._sub = self._context.socket(zmq.SUB)
        self._sub.setsockopt(zmq.LINGER, 0)
        self._sub.setsockopt(zmq.RCVHWM, 100_000)
        # Connected means the handshake succeeded: over TCP a connection that
        # fails CURVE (a wrong key) is opened and closed again and again.
        self._monitor = self._sub.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED | HANDSHAKE_FAILURES
        )
        self._refused: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        """Set to the monitor event when a handshake fails (a key refused)."""
        self._shut_out = False
        """The remote daemon refused our key after we had been connected (revoked)."""
        self._ids = itertools.count(1)
        self._pending: dict[str, tuple[str, asyncio.Future[Any]]] = {}
        self._topics: Counter[bytes] = Counter()
        """What this client is subscribed to (sent again to a restarted daemon)."""
        self._resubscribed: asyncio.Future[None] | None = None
        self._syncs: dict[bytes, asyncio.Future[None]] = {}
        self._attachments: dict[bytes, list[Attachment]] = {}
        self._followers: list[Follower] = []
        self._notices: list[Notices] = []
        self._file_services: dict[str, FileService] = {}
        self._supplied: dict[str, list[p.McpServer]] = {}
        """What this client lends sessions, told again to a restarted daemon."""
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._connected = asyncio.Event()
        self.hello: p.HelloResult | None = None
        self.closed = False

    @property
    def environment_drift(self) -> list[str]:
        """How this process's provider environment differs from the daemon's
        (one line per variable; empty when they agree). See `drift_message`."""
        return environment_drift(self.hello) if self.hello is not None else []

    @classmethod
    async def connect(
        cls,
        directory: Path | None = None,
        *,
        name: str = "client",
        spawn: bool = False,
        timeout: float = 10.0,
        remote: Remote | None = None,
    ) -> Client:
        """Connect and say hello. With ``spawn``, start a daemon if none runs.

        With ``remote``, connect to that daemon over CURVE TCP instead (see
        `kfd.client.remote`): `RemoteRefused` (or `DaemonKeyChanged`) when the
        handshake fails, `KeysMissing` without this user's key pair.
        """
        directory = directory or runtime_dir()
        if remote is not None:
            return await _connect_remote(cls, directory, name, remote, timeout)
        if spawn:
            await asyncio.to_thread(ensure_daemon, directory, timeout)
        client = cls(directory, name)
        client._rpc.connect(f"ipc://{directory / 'rpc.sock'}")
        client._sub.connect(f"ipc://{directory / 'events.sock'}")
        await client._start(timeout)
        return client

    async def _start(self, timeout: float) -> None:
        """Say hello once connected; a failed handshake ends the wait at once."""
        self._tasks = [
            asyncio.create_task(self._read_replies()),
            asyncio.create_task(self._read_events()),
            asyncio.create_task(self._watch_connection()),
        ]
        try:
            hello = asyncio.ensure_future(
                self.request(p.Hello(id="", name=self.name, pid=os.getpid()), timeout=timeout)
            )
            await asyncio.wait({hello, self._refused}, return_when=asyncio.FIRST_COMPLETED)
            if not hello.done():
                hello.cancel()
                await asyncio.gather(hello, return_exceptions=True)
                raise _Refused(self._refused.result())
            self.hello = hello.result()
            self._sub.subscribe(CLIENT_TOPIC + self.id.encode())
            await self._sync(timeout)
        except BaseException:
            await self.close()
            raise

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
        if not self._refused.done():
            self._refused.cancel()
        for task in [*self._tasks, *self._background]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
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
        reply comes within ``timeout`` seconds. An ``overloaded`` refusal is
        retried with backoff (the daemon did not act on it) within the timeout.
        """
        method = p.method_name(request)
        deadline = asyncio.get_running_loop().time() + timeout
        delay = 0.05
        for attempt in range(OVERLOADED_RETRIES + 1):
            try:
                return await self._request_once(request, method, deadline)
            except RequestFailed as exc:
                left = deadline - asyncio.get_running_loop().time()
                if exc.code != "overloaded" or attempt == OVERLOADED_RETRIES or left <= delay:
                    raise
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _request_once(self, request: p.Request, method: str, deadline: float) -> Any:
        if self._shut_out:
            raise RemoteRefused(
                f"the daemon at {self.where} no longer accepts this client's key (taken out "
                "of its authorized_keys?); connect again once it is back in"
            )
        request.id = str(next(self._ids))
        body = _encoder.encode(request)
        if len(body) > p.MAX_REQUEST_BYTES:
            raise RequestFailed(
                "too_large",
                f"the {method} request is {len(body):,} bytes; the daemon reads at most "
                f"{p.MAX_REQUEST_BYTES:,}",
            )
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = (method, future)
        timeout = max(0.0, deadline - asyncio.get_running_loop().time())
        try:
            async with asyncio.timeout(timeout):
                # Inside the timeout: a socket with no connection to send on
                # (a remote daemon that refused our key) blocks the send itself.
                await self._send(body)
                return await future
        except TimeoutError:
            raise DaemonUnavailable(
                f"no answer to {method} within {timeout:g} s from the daemon at "
                f"{self.where} (is it running? `kfd status`)"
            ) from None
        finally:
            self._pending.pop(request.id, None)

    async def _send(self, body: bytes) -> None:
        """Send a request; while the socket has no room or no connection (a
        remote daemon that refused our key), try again now and then."""
        pause = 0.005
        while True:
            try:
                self._raw.send(body, flags=zmq.NOBLOCK)
            except zmq.Again:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.1)
                continue
            finally:
                self._reader.check()
            return

    async def _read_replies(self) -> None:
        await self._reader.run()  # up to 1000 messages at a time, then other work runs

    def _reading(self) -> bool:
        return not self.closed

    def _take(self, frames: list[bytes]) -> None:
        if frames and frames[0] == EVENTS_FRAME:
            for index in range(1, len(frames) - 1, 2):
                self._dispatch([frames[index], frames[index + 1]])
            return
        if len(frames) != 1:
            return
        body = frames[0]
        try:
            reply = _reply_decoder.decode(body)
        except msgspec.MsgspecError as exc:
            self._drop_bad_reply(body, exc)
            return
        pending = self._pending.get(reply.id)
        if pending is None and not reply.id and not reply.ok:
            # A refusal the daemon could not address: it answers our oldest request.
            pending = next((each for each in self._pending.values() if not each[1].done()), None)
        if pending is None:
            return
        method, future = pending
        if future.done():
            return
        if reply.ok:
            try:
                future.set_result(_decode_result(method, reply.result))
            except (msgspec.MsgspecError, KeyError) as exc:
                future.set_exception(RequestFailed("bad_reply", f"{method}: {exc!r}"))
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

    def _path(self, path: str | os.PathLike[str]) -> str:
        """A path as the daemon takes it: absolute here; on a remote daemon,
        an absolute path on its host, never made absolute against ours."""
        text = os.fspath(path)
        if self.remote is None:
            return os.path.abspath(text)
        if not text.startswith("/"):
            raise RequestFailed(
                "bad_request",
                f"{text!r}: on the remote daemon `{self.remote.name}` a directory is an "
                "absolute path on its host",
            )
        return text

    async def status(self, *, refresh_tools: bool = False, cwd: str = "") -> p.StatusResult:
        """The daemon's state; ``refresh_tools`` first asks the tool sources (MCP
        servers start if they have not yet), so it may take longer. With ``cwd``,
        ``tools_missing`` says which tools cannot work in that directory."""
        result: p.StatusResult = await self.request(
            p.Status(id="", refresh_tools=refresh_tools, cwd=cwd),
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
            p.SessionCreate(id="", cwd=self._path(cwd), title=title, model=model, mode=mode)
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
        where = self._path(cwd) if cwd is not None else None
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
        where = self._path(cwd) if cwd is not None else None
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
        where = self._path(cwd) if cwd is not None else None
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
        where = self._path(cwd) if cwd is not None else None
        result: p.RulesResult = await self.request(
            p.RulesRemove(id="", rule_id=rule_id, rule=rule, cwd=where)
        )
        return result.rules[0]

    async def explain(
        self, command: str, *, cwd: str | os.PathLike[str], mode: p.Mode = "default"
    ) -> p.ExplainResult:
        """How the daemon's permission engine decides a bash command in ``cwd``."""
        result: p.ExplainResult = await self.request(
            p.RulesExplain(id="", command=command, cwd=self._path(cwd), mode=mode)
        )
        return result

    async def trust(self, cwd: str | os.PathLike[str]) -> p.TrustInfo:
        """Whether the project config of ``cwd`` is trusted, what it grants, what is ignored."""
        result: p.TrustInfo = await self.request(p.TrustShow(id="", cwd=self._path(cwd)))
        return result

    async def set_trust(
        self, cwd: str | os.PathLike[str], sha256: str = "", *, trusted: bool = True
    ) -> p.TrustInfo:
        """Trust the project config of ``cwd`` at the content hashed ``sha256`` (what
        `trust` showed: if the file changed since, `RequestFailed` with ``conflict``),
        or revoke its trust with ``trusted=False``."""
        result: p.TrustInfo = await self.request(
            p.TrustSet(id="", cwd=self._path(cwd), sha256=sha256, trusted=trusted)
        )
        return result

    async def trusted_files(self) -> p.TrustListResult:
        """Every trusted file, and which of them changed since."""
        result: p.TrustListResult = await self.request(p.TrustList(id=""))
        return result

    # -- what this frontend lends a session ------------------------------------

    async def supply_mcp_servers(self, session_id: str, servers: list[p.McpServer]) -> None:
        """Run ``servers`` for the session while this client is connected (an editor's
        ``mcpServers``), replacing what it supplied before; ``[]`` withdraws them.
        `RequestFailed` with ``bad_request`` names a malformed server."""
        await self.request(p.SessionMcpServers(id="", session=session_id, servers=servers))
        if servers:
            self._supplied[session_id] = list(servers)
        else:
            self._supplied.pop(session_id, None)

    async def serve_files(
        self,
        session_id: str,
        handler: FileHandler,
        *,
        read: bool = True,
        write: bool = True,
        timeout_s: float = 5.0,
    ) -> FileService:
        """Serve the session's file reads and/or writes with ``handler`` (see
        `kfd.client.files`) until the returned service is closed; the daemon waits
        ``timeout_s`` at most for each answer, then uses the disk."""
        service = FileService(
            self, session_id, handler, read=read, write=write, timeout_s=timeout_s
        )
        old = self._file_services.get(session_id)
        if old is not None:
            old.closed = True
        self._file_services[session_id] = service
        try:
            await self.request(service.registration())
        except BaseException:
            self._drop_file_service(service)
            raise
        return service

    def _drop_file_service(self, service: FileService) -> None:
        if self._file_services.get(service.session_id) is service:
            del self._file_services[service.session_id]

    def _on_file_request(self, body: bytes) -> None:
        try:
            request = _file_request_decoder.decode(body)
        except msgspec.MsgspecError:
            return
        service = self._file_services.get(request.session)
        if service is None:  # no longer served here: say so, and the daemon reads the disk
            answer = p.FilesAnswer(id="", request_id=request.request_id, fallback=True)
            self._background_task(self._quietly(answer))
            return
        self._background_task(service.handle(request))

    async def _quietly(self, request: p.Request) -> None:
        with contextlib.suppress(ClientError):
            await self.request(request, timeout=10.0)

    async def _lend_again(self) -> None:
        """A restarted daemon knows nothing of what this client lent: tell it again."""
        for service in list(self._file_services.values()):
            await self._quietly(service.registration())
        for session_id, servers in list(self._supplied.items()):
            await self._quietly(p.SessionMcpServers(id="", session=session_id, servers=servers))

    def _background_task(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- events ------------------------------------------------------------

    async def checkpoints(self, session_id: str) -> p.CheckpointListResult:
        """The turns of a session that changed files, with those files."""
        result: p.CheckpointListResult = await self.request(
            p.CheckpointList(id="", session=session_id)
        )
        return result

    async def diff(self, session_id: str, turn: int | None = None) -> p.DiffResult:
        """What a turn (or, without ``turn``, the whole session) changed, as a diff."""
        result: p.DiffResult = await self.request(
            p.CheckpointDiff(id="", session=session_id, turn=turn)
        )
        return result

    async def undo(
        self,
        session_id: str,
        turn: int | None = None,
        *,
        files: bool = True,
        conversation: bool = False,
        on_conflict: p.ConflictChoice = "ask",
        expect: str = "",
        dry_run: bool = False,
    ) -> p.UndoResult:
        """Put the files back as before ``turn`` (the last turn that changed files);
        ``conversation`` also forks the session from before it. See `p.CheckpointUndo`."""
        result: p.UndoResult = await self.request(
            p.CheckpointUndo(
                id="",
                session=session_id,
                turn=turn,
                files=files,
                conversation=conversation,
                on_conflict=on_conflict,
                expect=expect,
                dry_run=dry_run,
            ),
            timeout=REFRESH_TIMEOUT,
        )
        return result

    async def commands(
        self, *, cwd: str | os.PathLike[str] | None = None, session_id: str | None = None
    ) -> p.CommandListResult:
        """The custom commands of a workspace (or a session's)."""
        result: p.CommandListResult = await self.request(
            p.CommandList(
                id="", cwd=os.path.abspath(cwd) if cwd is not None else None, session=session_id
            )
        )
        return result

    async def run_command(
        self, session_id: str, name: str, arguments: str = "", client_msg_id: str | None = None
    ) -> p.MessageSendResult:
        """Run custom command ``name`` in a session (its prompt is sent as a message)."""
        result: p.MessageSendResult = await self.request(
            p.CommandRun(
                id="",
                session=session_id,
                name=name,
                arguments=arguments,
                client_msg_id=client_msg_id,
            )
        )
        return result

    async def notices(self) -> Notices:
        """Receive the daemon-wide events (`kfd.client.notices`) from now on."""
        notices = Notices(self._drop_notices)
        self._notices.append(notices)
        try:
            # Daemon-wide events come over the SUB socket (session events do not).
            self._sub.subscribe(GLOBAL)
            await self._sync()
        except BaseException:
            await notices.close()
            raise
        return notices

    def _drop_notices(self, notices: Notices) -> None:
        if notices in self._notices:
            self._notices.remove(notices)
            if not self.closed:
                self._sub.unsubscribe(GLOBAL)

    async def attach(
        self, session_id: str, *, since_seq: int = 0, tail: int | None = None
    ) -> Attachment:
        """Subscribe to a session, then fetch its snapshot and history."""
        info = await self.session(session_id)  # resolves a short id
        attachment = Attachment(self, info.id)
        self._add_attachment(attachment)
        try:
            await self._subscribe([info.id.encode()])
            attachment.subscribed = True
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
        """Subscribe to session topics; returns once the daemon sends them to us."""
        for topic in topics:
            self._topics[topic] += 1
        try:
            await self.request(
                p.EventsSubscribe(id="", topics=[t.decode() for t in topics]), timeout=timeout
            )
        except BaseException:
            for topic in topics:
                self._release(topic)
            raise

    def _release(self, topic: bytes) -> bool:
        """Forget one subscription to ``topic``; True if it was the last one."""
        self._topics[topic] -= 1
        if self._topics[topic] > 0:
            return False
        del self._topics[topic]
        return True

    def _unsubscribe_topic(self, topic: bytes) -> None:
        if self._release(topic) and not self.closed:
            task = asyncio.get_running_loop().create_task(self._quietly_unsubscribe(topic))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _quietly_unsubscribe(self, topic: bytes) -> None:
        with contextlib.suppress(ClientError):
            await self.request(
                p.EventsSubscribe(id="", topics=[topic.decode()], subscribe=False), timeout=10.0
            )

    async def _resubscribe(self) -> None:
        """After the daemon came back: subscribe again to everything (once per return)."""
        if self._resubscribed is None or self._resubscribed.done():
            self._resubscribed = asyncio.ensure_future(self._send_subscriptions())
        await asyncio.shield(self._resubscribed)

    async def _send_subscriptions(self) -> None:
        await self._sync(timeout=10.0)
        topics = [topic.decode() for topic in self._topics]
        if topics:
            await self.request(p.EventsSubscribe(id="", topics=topics), timeout=10.0)

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
                f"the daemon at {self.where} did not confirm a subscription"
            ) from None
        finally:
            self._syncs.pop(token, None)
            self._sub.unsubscribe(token)

    async def _introduce(self) -> None:
        with contextlib.suppress(DaemonUnavailable, RequestFailed):
            self.hello = await self.request(p.Hello(id="", name=self.name, pid=os.getpid()))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.append(task)
        task.add_done_callback(
            lambda done: self._tasks.remove(done) if done in self._tasks else None
        )

    def _add_attachment(self, attachment: Attachment) -> None:
        """Route the events of the attachment's session to it."""
        self._attachments.setdefault(attachment.session_id.encode(), []).append(attachment)

    def _drop_follower(self, follower: Follower) -> None:
        """Stop routing first-seen sessions to ``follower``."""
        if follower in self._followers:
            self._followers.remove(follower)
            self._unsubscribe_topic(SESSION_TOPIC_PREFIX)

    def _unsubscribe(self, attachment: Attachment) -> None:
        topic = attachment.session_id.encode()
        attached = self._attachments.get(topic, [])
        if attachment in attached:
            attached.remove(attachment)
            if attachment.subscribed:
                attachment.subscribed = False
                self._unsubscribe_topic(topic)
        if not attached:
            self._attachments.pop(topic, None)

    async def _read_events(self) -> None:
        sub = self._sub
        while True:
            frames = await sub.recv_multipart()
            # Only presence confirmations and daemon-wide events come here.
            if len(frames) != 2:
                continue
            topic, body = frames
            if topic.startswith(SYNC_PREFIX):
                future = self._syncs.get(topic)
                if future is not None and not future.done():
                    future.set_result(None)
            elif topic == GLOBAL:
                for notices in self._notices:
                    notices._put(body)

    def _dispatch(self, frames: list[bytes]) -> None:
        topic, body = frames
        if topic == FILES_TOPIC:
            self._on_file_request(body)
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
            if message["event"] & HANDSHAKE_FAILURES:
                if not self._refused.done():
                    self._refused.set_result(message["event"])
                if connected_once and message["event"] & PERMANENT_FAILURES:
                    # ZeroMQ gives up on a peer that refused us: no reconnect follows.
                    self._shut_out = True
            elif message["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                if connected_once:
                    # A restarted daemon knows this socket's id but not who it is:
                    # introduce ourselves again, so others see a name, not an id.
                    self._spawn(self._introduce())
                    self._spawn(self._lend_again())
                    for attachments in list(self._attachments.values()):
                        for attachment in attachments:
                            attachment._queue.put_nowait(RECONNECTED)
                    for follower in self._followers:
                        follower._reconnected()
                connected_once = True
            elif message["event"] == zmq.EVENT_DISCONNECTED:
                for attachments in list(self._attachments.values()):
                    for attachment in attachments:
                        attachment._queue.put_nowait(DISCONNECTED)


class _Refused(Exception):
    """The handshake failed (the monitor event): turned into `RemoteRefused`."""

    def __init__(self, event: int) -> None:
        super().__init__(event)
        self.event = event


async def _connect_remote(
    cls: type[Client], directory: Path, name: str, remote: Remote, timeout: float
) -> Client:
    """`Client.connect` to a daemon on another host (see `kfd.client.remote`)."""
    from kfd.client import keys
    from kfd.client import remote as remotes

    pair = keys.load("client", secret=True)
    expected = remotes.expected_key(remote)
    if expected is None:
        announced = await remotes.announced_key(remote.address)
        expected = remotes.DaemonKey(announced, "announced")
    client = cls(directory, name, remote)
    address = remote.address
    for socket, endpoint in ((client._rpc, address.rpc), (client._sub, address.events)):
        remotes.secure(socket, remote, pair, expected.key)
        socket.connect(endpoint)
    try:
        await client._start(timeout)
    except _Refused as refused:
        raise await remotes.refusal(remote, expected, refused.event) from None
    except DaemonUnavailable as exc:
        if isinstance(exc, RemoteRefused):
            raise
        raise DaemonUnavailable(
            f"no answer from the daemon `{remote.name}` at {remote.endpoint} within "
            f"{timeout:g} s: is it running there, listening on that address ([bus] listen), "
            "and reachable from here?"
        ) from None
    if expected.source == "announced":
        # The handshake proved the daemon holds the secret half of the key it
        # announced: pin it, as SSH adds a host key to known_hosts.
        remotes.pin(address, expected.key)
        client.pinned_on_first_use = expected.key
    return client
