"""Request handling: decode, dispatch, reply. Nothing a client sends can take
the daemon down; everything wrong gets a typed error reply it can act on."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, get_args

import msgspec

from kfd import __version__, logcontext
from kfd.daemon import (
    checkpoints_rpc,
    commands_rpc,
    context_rpc,
    cost_rpc,
    frontend_services,
    requests,
    rules_rpc,
    trust_rpc,
)
from kfd.daemon.ports import DaemonPort
from kfd.errors import RequestError, StoreUnavailable
from kfd.protocol import (
    PROTOCOL_VERSION,
    ApprovalRespond,
    AttachResult,
    CheckpointDiff,
    CheckpointList,
    CheckpointUndo,
    CommandList,
    CommandRun,
    CostQuery,
    Empty,
    ErrorCode,
    ErrorInfo,
    EventsSubscribe,
    FilesAnswer,
    FilesServe,
    FocusChanged,
    FrontendFocus,
    FrontendInfo,
    FrontendRef,
    Hello,
    HelloResult,
    MemoryAdd,
    MemoryForget,
    MemoryList,
    MemorySearch,
    MessageSend,
    MissingTool,
    ModelList,
    Reply,
    Request,
    RulesExplain,
    RulesList,
    RulesRemove,
    SessionArchive,
    SessionAttach,
    SessionCompact,
    SessionContext,
    SessionCreate,
    SessionFork,
    SessionGet,
    SessionList,
    SessionListResult,
    SessionMcpServers,
    SessionResult,
    SessionSetBudget,
    SessionSetMode,
    SessionSetModel,
    Shutdown,
    Status,
    StatusResult,
    TriggerList,
    TriggerListResult,
    TriggerReload,
    TrustList,
    TrustSet,
    TrustShow,
    TurnCancel,
    method_name,
)
from kfd.redact import redact_struct

if TYPE_CHECKING:
    from kfd.daemon.bus import Bus
    from kfd.daemon.config_notices import ConfigNotices
    from kfd.daemon.file_delegates import FileDelegates
    from kfd.daemon.frontend_services import ServerSupply
    from kfd.daemon.reload import ConfigReloader
    from kfd.protocol import EnvFact

log = logging.getLogger(__name__)

HELLO_GRACE_S = 10.0
"""A client that said hello this recently counts toward its key's cap even
before its presence is seen."""

ATTACH_EVENT_LIMIT = 20_000
"""Events per attach reply; a client with more to catch up asks again."""

_encoder = msgspec.json.Encoder()


def error_reply(request_id: str, code: ErrorCode, message: str) -> bytes:
    return _encoder.encode(
        Reply(id=request_id, ok=False, error=ErrorInfo(code=code, message=message))
    )


class Served(DaemonPort, Protocol):
    """The daemon as the request dispatcher sees it (`kfd.daemon.server.Daemon`)."""

    @property
    def reloader(self) -> ConfigReloader:
        """The config file's watcher: its path, when it was read, its last error."""
        ...

    @property
    def trust_notices(self) -> trust_rpc.TrustNotices:
        """What sessions were told about their project's trust."""
        ...

    @property
    def config_notices(self) -> ConfigNotices:
        """What sessions were told about config files that do not load."""
        ...

    @property
    def bus(self) -> Bus:
        """The sockets: subscriptions, and each client's queue."""
        ...

    @property
    def environment(self) -> dict[str, EnvFact]:
        """The provider environment the daemon started with (`daemon.hello`)."""
        ...

    @property
    def env_salt(self) -> str:
        """The salt of the digests in `environment`."""
        ...

    @property
    def draining(self) -> bool:
        """A graceful stop waits for the running turns."""
        ...

    @property
    def file_delegates(self) -> FileDelegates:
        """The frontends serving sessions' files."""
        ...

    @property
    def server_supply(self) -> ServerSupply:
        """The MCP servers frontends supplied for sessions."""
        ...


class RpcHandler:
    """Turns request frames into reply frames for one daemon (a `kfd.daemon.bus.RequestHandler`)."""

    def __init__(self, daemon: Served) -> None:
        self.daemon = daemon
        self.frontends: dict[bytes, FrontendInfo] = {}
        self.keys: dict[bytes, str] = {}
        """Frontends attached over TCP -> the key they authenticated with."""
        self._seen_present: set[str] = set()

    def decode(self, identity: bytes, body: bytes) -> tuple[Request | None, bytes | None]:
        """(the request, None), or (None, the refusal to send)."""
        parsed = requests.parse(body)
        if isinstance(parsed, requests.Refusal):
            return None, error_reply(*parsed)
        return parsed, None

    def refusal(self, body: bytes, code: str, message: str) -> bytes:
        """An error reply with whatever id ``body`` lets us read."""
        known: ErrorCode = code if code in _CODES else "internal"  # type: ignore[assignment]
        return error_reply(requests.peek_id(body), known, message)

    async def answer(self, identity: bytes, body: bytes, request: Request | None) -> bytes:
        """The reply to one request (parsed off the event loop if it was not yet)."""
        if request is None:
            parsed = await asyncio.to_thread(requests.parse, body)
            if isinstance(parsed, requests.Refusal):
                return error_reply(*parsed)
            request = parsed
        frontend = self._frontend(identity)
        token = logcontext.REQUEST.set(request.id)
        try:
            result = await self._dispatch(request, frontend, identity)
        except RequestError as exc:
            code: ErrorCode = exc.code if exc.code in _CODES else "internal"  # type: ignore[assignment]
            return error_reply(request.id, code, exc.message)
        except StoreUnavailable as exc:
            return error_reply(request.id, "internal", f"{exc}; nothing was changed, try again")
        except Exception as exc:
            log.exception("request %s failed", method_name(request))
            return error_reply(
                request.id, "internal", f"the daemon failed on this request: {exc!r}"
            )
        finally:
            logcontext.REQUEST.reset(token)
        # Secrets never leave the daemon (events from the store already went through this).
        if isinstance(result, AttachResult):
            result.snapshot = redact_struct(result.snapshot)
        else:
            result = redact_struct(result)
        return _encoder.encode(
            Reply(id=request.id, ok=True, result=msgspec.Raw(_encoder.encode(result)))
        )

    def _frontend(self, identity: bytes) -> FrontendInfo:
        info = self.frontends.get(identity)
        now = time.time()
        if info is None:
            name = identity.decode("ascii", "replace") if identity.isascii() else identity.hex()
            info = FrontendInfo(id=name, name="unknown", connected_at=now)
            self.frontends[identity] = info
            if len(self.frontends) > 10_000:  # forget the oldest silent ones
                oldest = min(self.frontends, key=lambda k: self.frontends[k].last_seen)
                del self.frontends[oldest]
                self.keys.pop(oldest, None)
                self._seen_present.clear()
        info.last_seen = now
        peer = self.daemon.bus.peer(identity)
        info.key = peer.comment if peer is not None else ""
        if peer is not None:
            self.keys[identity] = peer.key
        else:
            self.keys.pop(identity, None)
        return info

    def _admit(self, identity: bytes, frontend: FrontendInfo, name: str) -> None:
        """Name a frontend at hello; over TCP, after its key's comment, and only
        while its key has fewer than ``[bus] max_clients_per_key`` clients."""
        name = name[:64] or "unknown"
        key = self.keys.get(identity)
        if key is None:
            frontend.name = name
            return
        cap = self.daemon.config.bus.max_clients_per_key
        present = self.daemon.present_frontends()
        recent = time.time() - HELLO_GRACE_S
        others = 0
        for other, info in self.frontends.items():
            if other == identity or self.keys.get(other) != key:
                continue
            if info.id in present:
                self._seen_present.add(info.id)
                others += 1
            elif info.connected_at > recent and info.id not in self._seen_present:
                others += 1  # said hello a moment ago; its presence is on its way
        if others >= cap:
            frontend.connected_at = 0.0  # refused: it does not count toward the cap
            raise RequestError(
                "conflict",
                f"the key {frontend.key!r} already has {others} clients attached, the most "
                f"[bus] max_clients_per_key allows on this daemon: close one first",
            )
        # The key's comment, in parentheses, is the daemon's word: a name that
        # brings its own ("phone (bob)") cannot pass for another key's.
        name = name.replace("(", "[").replace(")", "]")
        frontend.name = f"{name} ({frontend.key})"

    async def _dispatch(
        self, request: Request, frontend: FrontendInfo, identity: bytes
    ) -> msgspec.Struct:
        daemon = self.daemon
        sessions = daemon.sessions
        by = FrontendRef(id=frontend.id, name=frontend.name, key=frontend.key)
        match request:
            case Hello():
                self._admit(identity, frontend, request.name)
                frontend.pid = request.pid
                return HelloResult(
                    protocol=PROTOCOL_VERSION,
                    version=__version__,
                    daemon_id=daemon.daemon_id,
                    pid=os.getpid(),
                    frontend_id=frontend.id,
                    environment=daemon.environment,
                    env_salt=daemon.env_salt,
                )
            case EventsSubscribe():
                if len(request.topics) > 1000:
                    raise RequestError("bad_request", "at most 1000 topics per request")
                try:
                    daemon.bus.subscribe(identity, request.topics, request.subscribe)
                except ValueError as exc:
                    raise RequestError("bad_request", str(exc)) from None
                return Empty()
            case Status():
                if request.refresh_tools:
                    await daemon.runtime.tools.refresh()
                return await self._status(request.cwd)
            case Shutdown():
                reason = f"{'restart' if request.restart else 'stop'} asked by {frontend.name}"
                asyncio.get_running_loop().call_soon(
                    lambda: daemon.stop(
                        reason, wait_for_turns=request.wait_for_turns, restart=request.restart
                    )
                )
                return Empty()
            case SessionCreate():
                session = await sessions.create(
                    request.cwd, title=request.title, model=request.model, mode=request.mode
                )
                session.info.frontends = daemon.watchers(session.id)
                return SessionResult(session=session.info)
            case SessionList():
                listed = await daemon.runtime.store.sessions(
                    cwd=os.path.realpath(request.cwd) if request.cwd else None,
                    include_archived=request.include_archived,
                    limit=max(1, min(request.limit, 10_000)),
                )
                live = sessions.live
                return SessionListResult(
                    sessions=[live[s.id].info if s.id in live else s for s in listed]
                )
            case SessionGet():
                return SessionResult(session=(await sessions.get(request.session)).info)
            case SessionAttach():
                return await self._attach(request)
            case SessionFork():
                parent = await sessions.get(request.session)
                forked = await sessions.fork(parent, request.message_id, request.title)
                return SessionResult(session=forked.info)
            case SessionArchive():
                session = await sessions.get(request.session)
                await session.update(by=by, archived=request.archived)
                return SessionResult(session=session.info)
            case SessionSetMode():
                session = await sessions.get(request.session)
                await session.set_mode(request.mode, by=by)
                return SessionResult(session=session.info)
            case SessionSetModel():
                model = request.model.strip()
                if not model or len(model) > 200:
                    raise RequestError("bad_request", "model: a name of 1-200 characters")
                session = await sessions.get(request.session)
                await session.update(by=by, model=model)
                return SessionResult(session=session.info)
            case MessageSend():
                if not request.text.strip():
                    raise RequestError("bad_request", "the message is empty")
                session = await sessions.get(request.session)
                await daemon.config_notices.before_message(session)
                # Answered only once the message is on disk (durable before acknowledged).
                return await session.send(request.text, by, request.client_msg_id)
            case TurnCancel():
                session = await sessions.get(request.session)
                session.cancel(clear_queue=request.clear_queue)
                return Empty()
            case ApprovalRespond():
                session = await sessions.get(request.session)
                rule, written = session.respond(
                    request.approval_id, request.decision, request.message, by
                )
                if request.decision == "allow_always" and rule:
                    await rules_rpc.keep(daemon, session.info.cwd, rule, session.id)
                await written
                return Empty()
            case RulesList() | RulesRemove() | RulesExplain():
                return await rules_rpc.answer(daemon, request)
            case CheckpointList() | CheckpointDiff() | CheckpointUndo():
                return await checkpoints_rpc.answer(sessions, request, by)
            case CommandList() | CommandRun():
                if isinstance(request, CommandRun):
                    await daemon.config_notices.before_message(await sessions.get(request.session))
                return await commands_rpc.answer(sessions, request, by)
            case TrustShow() | TrustSet() | TrustList():
                return await trust_rpc.answer(daemon, daemon.trust_notices, request, by)
            case CostQuery() | ModelList() | SessionSetBudget():
                return await cost_rpc.answer(daemon, request, by)
            case (
                SessionCompact()
                | SessionContext()
                | MemoryList()
                | MemorySearch()
                | MemoryAdd()
                | MemoryForget()
            ):
                return await context_rpc.answer(daemon, request)
            case FrontendFocus():
                session = await sessions.get(request.session)
                if request.focused:
                    session.focused[by.id] = by
                else:
                    session.focused.pop(by.id, None)
                session.publish(
                    FocusChanged(session=session.id, frontend=by, focused=request.focused)
                )
                return Empty()
            case SessionMcpServers() | FilesServe() | FilesAnswer():
                return await frontend_services.answer(
                    daemon,
                    daemon.server_supply,
                    daemon.file_delegates,
                    request,
                    frontend.id,
                    identity,
                )
            case TriggerList():
                triggers = daemon.triggers
                return triggers.listing() if triggers is not None else TriggerListResult()
            case TriggerReload():
                if daemon.triggers is None:
                    raise RequestError("conflict", "the daemon is still starting; try again")
                return await daemon.triggers.reload()
        raise RequestError("bad_request", f"unhandled request {type(request).__name__}")

    async def _attach(self, request: SessionAttach) -> AttachResult:
        session = await self.daemon.sessions.get(request.session)
        session.info.frontends = self.daemon.watchers(session.id)
        # The snapshot is taken in one go at seq S; then every event up to S
        # is made durable and read back. Later events reach the client live.
        snapshot = session.snapshot()
        await self.daemon.runtime.journal.drain()
        store = self.daemon.runtime.store
        if request.tail is not None:
            rows = await store.events_tail(
                session.id, max(0, min(request.tail, ATTACH_EVENT_LIMIT))
            )
            rows = [row for row in rows if row[0] <= snapshot.seq]
        else:
            since = max(0, request.since_seq)
            rows = await store.events(session.id, after=since, limit=ATTACH_EVENT_LIMIT + 1)
            rows = [row for row in rows if row[0] <= snapshot.seq]
        more = len(rows) > ATTACH_EVENT_LIMIT
        rows = rows[:ATTACH_EVENT_LIMIT]
        return AttachResult(
            snapshot=snapshot,
            events=[msgspec.Raw(body) for _, body in rows],
            first_seq=rows[0][0] if rows else snapshot.seq + 1,
            more=more,
        )

    async def _status(self, cwd: str) -> StatusResult:
        daemon = self.daemon
        present = daemon.present_frontends()
        missing: list[MissingTool] = []
        if cwd:
            real = os.path.realpath(cwd)
            if not os.path.isabs(cwd) or not os.path.isdir(real):
                raise RequestError("bad_request", f"cwd {cwd!r} is not an absolute directory")
            found = await daemon.runtime.tools.check(Path(real), daemon.runtime.config.tools)
            missing = [MissingTool(name=name, reason=why) for name, why in sorted(found.items())]
        return StatusResult(
            pid=os.getpid(),
            version=__version__,
            daemon_id=daemon.daemon_id,
            started_at=daemon.started_at,
            uptime_s=round(time.time() - daemon.started_at, 3),
            sessions=daemon.sessions.count,
            loaded=len(daemon.sessions.live),
            running=sum(1 for s in daemon.sessions.live.values() if s.busy),
            frontends=[
                self._with_queue(info) for info in self.frontends.values() if info.id in present
            ],
            runtime_dir=str(daemon.runtime_dir),
            state_dir=str(daemon.state_dir),
            plugins=daemon.plugins.names,
            tools=daemon.runtime.tools.names,
            problems=[
                *daemon.plugins.errors,
                *daemon.runtime.tools.problems,
                *(p for ps in daemon.runtime.tools.session_problems.values() for p in ps),
                *([f"config: {daemon.reloader.error}"] if daemon.reloader.error else []),
            ],
            plugin_status=daemon.plugins.status(),
            config_path=str(daemon.reloader.path),
            config_loaded_at=daemon.reloader.loaded_at,
            config_error=daemon.reloader.error,
            tools_missing=missing,
            draining=daemon.draining,
            trouble=daemon.runtime.store.trouble or "",
        )

    def _with_queue(self, info: FrontendInfo) -> FrontendInfo:
        queued, peak, shed = self.daemon.bus.queue_stats(info.id.encode())
        return msgspec.structs.replace(
            info, queued_bytes=queued, peak_queued_bytes=peak, shed_events=shed
        )


_CODES = frozenset(get_args(ErrorCode))
