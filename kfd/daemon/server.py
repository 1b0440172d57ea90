"""The daemon: start, serve, stop.

Start order matters, and systemd is told ``READY=1`` only at the end of it:
lock the runtime directory (one daemon per user), open the store, load the
plugins, close the ledger rows and turns a crash left open, bind the bus,
then run the messages that were accepted but never started. Stop order: tell
the frontends, end running turns as interrupted (or, for a graceful
restart, let them finish first), flush the journal, close. The stop has a
deadline (``[daemon] shutdown_timeout_s``): past it the daemon logs exactly
what it could not write and exits anyway.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import resource
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import msgspec

from kfd import config as config_module
from kfd import paths, redact
from kfd.agent.accounting import Accounting
from kfd.agent.core_tools import with_core_tools
from kfd.agent.runtime import Runtime
from kfd.agent.session import Session
from kfd.agent.tool_search import ToolSearchTool
from kfd.agent.toolcall import sandbox_of
from kfd.agent.tools import ToolRegistry
from kfd.checkpoints.service import Checkpoints, settings_of
from kfd.commands.book import CommandBook
from kfd.commands.loader import command_grants
from kfd.config import Config, HookConfig
from kfd.daemon import logs, sdnotify
from kfd.daemon.bus import Bus
from kfd.daemon.config_notices import ConfigNotices
from kfd.daemon.file_delegates import FileDelegates
from kfd.daemon.frontend_services import ServerSupply
from kfd.daemon.journal import Journal
from kfd.daemon.lock import DaemonLock
from kfd.daemon.reload import ConfigReloader, LiveConfig
from kfd.daemon.rpc import RpcHandler
from kfd.daemon.sessions import SessionManager
from kfd.daemon.telemetry import Telemetry
from kfd.daemon.trust_rpc import TrustNotices
from kfd.gateway import make_provider
from kfd.hooks.confine import confiner
from kfd.hooks.plugin import ShellHooks
from kfd.ids import ID_LENGTH, new_id
from kfd.plugins import PluginHost
from kfd.policy.rulebook import CommandPin, RuleBook
from kfd.protocol import (
    FILES_TOPIC,
    GLOBAL_TOPIC,
    DaemonStopping,
    DaemonTrouble,
    EnvFact,
    Event,
    HookReported,
    SessionCreated,
    TrustInfo,
    env_digest,
)
from kfd.sandbox import environment as sandbox_environment
from kfd.store.checkpoints import CheckpointStore
from kfd.store.db import Store
from kfd.store.ledger import Ledger
from kfd.store.rules import RuleStore
from kfd.store.triggers import TriggerLog
from kfd.store.trust import TrustStore
from kfd.triggers.manager import TriggerManager

log = logging.getLogger("kfd.daemon")

EXIT_UNWRITTEN = 75
"""Exit status when the stop deadline passed with writes unfinished (EX_TEMPFAIL)."""


class Daemon:
    """One daemon process. `run` blocks until stopped."""

    def __init__(
        self,
        config: Config,
        *,
        runtime_dir: Path | None = None,
        state_dir: Path | None = None,
        plugins: PluginHost | None = None,
        discover_plugins: bool = True,
    ) -> None:
        self.config = config
        self.runtime_dir = runtime_dir or paths.runtime_dir()
        self.state_dir = state_dir or paths.state_dir()
        self.plugins = plugins or PluginHost()
        self.discover_plugins = discover_plugins
        self.daemon_id = new_id("d")
        self.started_at = time.time()
        self._stop = asyncio.Event()
        self._interrupt = asyncio.Event()
        self._stop_reason = ""
        self._restart = False
        self.draining = False
        """A graceful stop waits for the running turns (``kfd restart``)."""
        self._present: set[str] = set()
        self._bus: Bus | None = None
        self.runtime: Runtime
        self.triggers: TriggerManager | None = None
        self.sessions: SessionManager
        self.telemetry: Telemetry | None = None
        self._journal: Journal | None = None
        self.env_salt = secrets.token_hex(8)
        self.environment = provider_environment(config, os.environ, self.env_salt)
        """The provider environment this daemon started with, as clients compare it."""
        self.reloader: ConfigReloader
        """The user config, kept loaded and watched (`kfd.daemon.reload`)."""
        self.trust_notices = TrustNotices(self)
        self.config_notices = ConfigNotices(self)
        """Config files that do not load, told in the sessions they concern."""
        self.file_delegates = FileDelegates(self._deliver_file_request)
        """The frontends serving sessions' files (an editor's buffers)."""
        self.server_supply: ServerSupply
        """The MCP servers frontends supplied for sessions."""
        self._releasing: set[asyncio.Task[None]] = set()

    @property
    def bus(self) -> Bus:
        assert self._bus is not None, "the bus is bound at start"
        return self._bus

    def stop(
        self, reason: str = "", *, wait_for_turns: bool = False, restart: bool = False
    ) -> None:
        """Begin a shutdown (safe to call from a signal handler).

        ``wait_for_turns``: running turns finish first (a later stop without it
        interrupts them); ``restart``: frontends are told the daemon comes back.
        """
        self._stop_reason = self._stop_reason or reason
        self._restart = self._restart or restart
        if not wait_for_turns:
            self._interrupt.set()
        self._stop.set()

    def _observe(self, event: Event) -> None:
        self.plugins.observe(event)
        if isinstance(event, SessionCreated):
            self.trust_notices.session_started(event.session)
            self.config_notices.session_started(event.session)
        if self.triggers is not None:
            self.triggers.observe(event)
        if self.telemetry is not None:
            self.telemetry.observe(event)

    def _project_loaded(self, project: str, info: TrustInfo) -> None:
        """A project config was read anew (`kfd.policy.rulebook.ProjectLoaded`)."""
        self.trust_notices.project_loaded(project, info)
        self.config_notices.project_loaded(project, info)

    def _live_session(self, session_id: str) -> Session:
        """A loaded session (the core tools run only inside its turns)."""
        return self.sessions.live[session_id]

    def _shell_hooks(self) -> ShellHooks:
        """The ``[[hooks]]`` of the configs, as a plugin (`kfd.hooks.plugin`)."""

        async def project_hooks(workspace: str) -> list[HookConfig]:
            book = self.runtime.rule_book
            return await book.project_hooks(workspace) if book is not None else []

        def workspace_of(session_id: str) -> str | None:
            session = self.sessions.live.get(session_id)
            return session.info.cwd if session is not None else None

        def report(session_id: str, event: HookReported) -> None:
            session = self.sessions.live.get(session_id)
            if session is not None:
                session.emit(event)

        return ShellHooks(
            lambda: self.config.hooks,
            project_hooks,
            confiner(lambda: self.config.sandbox),
            workspace_of,
            report,
        )

    async def _prune_checkpoints(self) -> None:
        checkpoints = self.runtime.checkpoints
        if checkpoints is not None:
            await _prune_loop(checkpoints)

    def watchers(self, session_id: str) -> int:
        """Frontends attached to a session's events."""
        return self._bus.watchers(session_id.encode()) if self._bus else 0

    def present_frontends(self) -> set[str]:
        return set(self._present)

    def _on_presence(self, client: str, connected: bool) -> None:
        if connected:
            self._present.add(client)
            return
        self._present.discard(client)
        # What the frontend lent its sessions goes with it: its file service at
        # once (a question to it ends unanswered: the disk is used), its MCP
        # servers as they stop.
        self.file_delegates.gone(client)
        task = asyncio.create_task(self.server_supply.gone(client), name=f"release {client}")
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    def _deliver_file_request(self, identity: bytes, body: bytes) -> None:
        self.bus.deliver(identity, FILES_TOPIC.encode(), body)

    def _on_subscription(self, topic: bytes, count: int) -> None:
        if len(topic) == ID_LENGTH:
            session = self.sessions.live.get(topic.decode("ascii", "replace"))
            if session is not None:
                session.set_frontends(count)

    def _on_trouble(self, problem: str | None) -> None:
        """Tell every frontend that writes fail (or work again)."""
        journal = self._journal
        assert journal is not None
        if problem is None:
            message = "the state directory can be written again; going on"
        else:
            message = (
                f"cannot write to the state directory {self.state_dir}: {problem}; retrying "
                "(turns pause at their next step)"
            )
        log.warning("%s", message) if problem else log.info("%s", message)
        notice = DaemonTrouble(session="", problem=problem or "", message=message)
        journal.notice(notice, list(self.sessions.live))
        journal.publish_global(GLOBAL_TOPIC.encode(), notice)

    async def run(self) -> None:
        # Nothing relative may resolve inside the directory the daemon was started in
        # (a workspace): not a program found on a relative PATH entry, not a file.
        os.chdir("/")
        _more_descriptors()
        paths.ensure_private_dir(self.runtime_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = DaemonLock(self.runtime_dir)
        lock.acquire()
        # Before anything is logged or kept: the secrets of the environment are known,
        # those of the variables commands do not get included.
        sandbox = self.config.sandbox
        redact.learn_environment(
            os.environ,
            [config_module.api_key_variable(self.config.model)],
            withheld=sandbox_environment.withheld(os.environ, [*sandbox.env, *sandbox.env_allow]),
        )
        redact.warm_up()
        daemon_config = self.config.daemon
        stop_logging = logs.start_logging(
            self.state_dir / "daemon.log",
            daemon_config.log_level,
            max_bytes=daemon_config.log_max_kib * 1024,
            backups=daemon_config.log_backups,
        )
        try:
            await self._serve()
        finally:
            lock.release()
            stop_logging()

    async def _serve(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop, signal.Signals(signum).name)
        store = await Store.open(self.state_dir / "kfd.db")
        store.on_trouble = self._on_trouble
        if self.discover_plugins:
            self.plugins.load_entry_points(config.plugins.disable)
        self.plugins.register(self._shell_hooks(), "hooks")
        tools = ToolRegistry(
            with_core_tools(
                self.plugins.tools(config.tools), store, self._live_session, self.plugins.errors
            ),
            self.plugins.tool_sources(msgspec.to_builtins(config)),
            search=ToolSearchTool(self._live_session),
            defer_after=config.context.defer_tools_after,
        )
        policies = self.plugins.policies(config.tools)
        provider = make_provider(config.model)
        ledger = Ledger(store)
        self.telemetry = Telemetry.start(config.telemetry, self.daemon_id)
        accounting = Accounting(
            config,
            ledger,
            provider,
            on_closed=self.telemetry.model_request if self.telemetry is not None else None,
        )
        bus = self._bus = Bus(
            self.runtime_dir,
            client_queue_bytes=config.daemon.client_queue_kib * 1024,
            tcp=config.bus,
        )
        journal = self._journal = Journal(
            store,
            bus.publish,
            self._observe,
            commit_interval_s=config.daemon.commit_interval_ms / 1000,
            publish_global=bus.publish_global,
        )
        self.runtime = Runtime(
            config=config,
            provider=provider,
            tools=tools,
            policies=policies,
            journal=journal,
            store=store,
            accounting=accounting,
            after_tool_hooks=self.plugins.after_tool_hooks(config.tools),
            delta_window_s=config.daemon.delta_window_ms / 1000,
        )
        live_config = LiveConfig(self)
        self.reloader = ConfigReloader(
            paths.config_file(), config, live_config, self.config_notices.user_config
        )
        trust = TrustStore(store)
        await trust.load()
        commands = CommandBook(paths.config_dir() / "commands", trust.trusted)
        self.runtime.commands = commands
        self.runtime.rule_book = RuleBook(
            config.permissions,
            RuleStore(store),
            trust,
            freshness=self.reloader,
            on_project_loaded=self._project_loaded,
            commands=lambda project: [
                CommandPin(c.info.name, c.info.path, c.sha256, command_grants(c))
                for c in commands.project_files(project)
            ],
        )
        self.runtime.checkpoints = Checkpoints(
            CheckpointStore(store),
            self.state_dir / "checkpoints",
            self.runtime.rule_book.project_of,
            lambda: settings_of(self.runtime.config.checkpoints),
        )
        self.runtime.files = self.file_delegates
        self.server_supply = ServerSupply(tools, lambda: sandbox_of(self.runtime.config.sandbox))
        self.sessions = SessionManager(self.runtime)
        stop_watching = asyncio.Event()
        pruning = asyncio.create_task(self._prune_checkpoints(), name="checkpoints")
        journal_task = asyncio.create_task(journal.run(), name="journal")
        serving: asyncio.Task[None] | None = None
        try:
            closed = await accounting.close_unfinished()
            if closed:
                log.info(
                    "closed %d cost ledger row(s) a stop left unfinished: %s",
                    len(closed),
                    ", ".join(entry.id for entry in closed),
                )
            recovered = await self.sessions.recover()
            if recovered:
                log.info("closed the open turns of %d session(s) after a stop", recovered)
            resumed = await accounting.resume_gateway_costs(self.sessions.get)
            if resumed:
                log.info("looking up the gateway's cost of %d earlier request(s) again", resumed)
            bus.on_subscription = self._on_subscription
            bus.on_presence = self._on_presence
            bus.bind()
            self.triggers = TriggerManager(self.sessions, TriggerLog(store), config_module.load)
            await self.triggers.start(config.triggers)
            watching = asyncio.create_task(self.reloader.watch(stop_watching), name="config")
            serving = asyncio.create_task(bus.serve(RpcHandler(self)), name="bus")
            sweeping = asyncio.create_task(self._unload_idle(), name="unload idle sessions")
            started = self.sessions.run_queued()
            if started:
                log.info("running the messages queued before the stop in %d session(s)", started)
            # What start-up made (modules, plugins, tables: some 60,000 objects) lives
            # as long as the daemon: kept out of the garbage collector's full
            # collections, which would walk it again each time (15 ms on a small
            # machine: a stall every frontend's stream shows).
            gc.collect()
            gc.freeze()
            sdnotify.notify(f"READY=1\nSTATUS=serving\nMAINPID={os.getpid()}")
            log.info(
                "kfd daemon %s (pid %d) serving %s with %d tools",
                self.daemon_id,
                os.getpid(),
                self.runtime_dir,
                len(tools.names),
            )
            stopped = asyncio.create_task(self._stop.wait())
            await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            sweeping.cancel()
            if serving.done() and serving.exception() is not None:
                log.error("the bus failed", exc_info=serving.exception())
                self._interrupt.set()
            if not self._interrupt.is_set():
                await self._drain_turns()
            sdnotify.notify("STOPPING=1")
            log.info("stopping: %s", self._stop_reason or "bus failed")
            journal.publish_global(
                GLOBAL_TOPIC.encode(),
                DaemonStopping(session="", reason=self._stop_reason, restart=self._restart),
            )
            # The stop runs as its own task: past the deadline it is left
            # where it is stuck (a write on a full disk), not waited for.
            stop_watching.set()
            await asyncio.gather(watching, return_exceptions=True)
            stopping = asyncio.create_task(self._stop_turns(serving), name="stopping")
            done, _ = await asyncio.wait({stopping}, timeout=config.daemon.shutdown_timeout_s)
            if stopping not in done:
                self._exit_unwritten(journal, store, stuck=stopping)
        finally:
            stop_watching.set()
            pruning.cancel()
            await asyncio.gather(pruning, return_exceptions=True)
            if serving is not None and not serving.done():
                serving.cancel()
                await asyncio.gather(serving, return_exceptions=True)
            journal_task.cancel()
            await asyncio.gather(journal_task, return_exceptions=True)
            if self.telemetry is not None:
                await asyncio.to_thread(self.telemetry.shutdown)
            await bus.close()
            await self.runtime.provider.aclose()  # the config's latest
            await live_config.close()  # those a reload replaced
        if not await store.close(config.daemon.shutdown_timeout_s):
            self._exit_unwritten(journal, store)

    async def _unload_idle(self) -> None:
        """Now and then, drop the sessions nobody uses from memory."""
        idle_s = self.config.daemon.unload_idle_s
        while True:
            await asyncio.sleep(min(60.0, idle_s / 2))
            keep = self.runtime.accounting.gateway_costs.sessions()
            if self.triggers is not None:
                keep |= self.triggers.running_sessions()
            dropped = self.sessions.unload_idle(idle_s, keep)
            if dropped:
                log.info("unloaded %d idle session(s) from memory", dropped)

    async def _drain_turns(self) -> None:
        """A graceful stop: running turns finish; new messages queue for the next start."""
        self.draining = True
        self.sessions.drain()
        busy = [s for s in self.sessions.live.values() if s.busy]
        if busy:
            log.info("waiting for %d running turn(s) before stopping", len(busy))
        interrupt = asyncio.create_task(self._interrupt.wait())
        while True:
            busy = [s for s in self.sessions.live.values() if s.busy]
            if not busy:
                break
            waits = {asyncio.ensure_future(s.idle()) for s in busy}
            await asyncio.wait({*waits, interrupt}, return_when=asyncio.FIRST_COMPLETED)
            for wait in waits:
                wait.cancel()
            if interrupt.done():
                log.info("stop asked again: interrupting the running turns")
                break
        interrupt.cancel()

    async def _stop_turns(self, serving: asyncio.Task[None]) -> None:
        """Interrupt the turns and write everything out."""
        assert self.triggers is not None
        await self.trust_notices.close()
        await self.config_notices.close()
        await self.triggers.close()
        await self.sessions.shutdown()
        await self.plugins.shutdown()
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        await self.runtime.accounting.close()
        await self.runtime.journal.drain()

    def _exit_unwritten(
        self, journal: Journal, store: Store, stuck: asyncio.Task[None] | None = None
    ) -> None:
        """The stop deadline passed: say exactly what is lost (and, when the stop
        itself did not finish, where it waits), and exit now."""
        lost = [*journal.unwritten(), *store.unwritten()]
        if stuck is not None:
            lost.append(f"the stop waits at {awaiting(stuck)}")
        log.error(
            "stopping without writing everything (deadline %gs passed%s): %s",
            self.config.daemon.shutdown_timeout_s,
            f"; {store.trouble}" if store.trouble else "",
            "; ".join(lost) or "nothing pending, but the store did not close",
        )
        logs.flush()
        for handler in logging.getLogger().handlers:
            handler.close()
        # The store's thread may be stuck in the kernel on a dead disk:
        # do not wait for it (nor for asyncio's own teardown).
        os._exit(EXIT_UNWRITTEN)


def awaiting(task: asyncio.Task[Any]) -> str:
    """Where ``task`` waits: each coroutine down its ``await`` chain, as file:line
    function, then on into the task or the gathered tasks it waits for."""
    steps: list[str] = []
    current: asyncio.Task[Any] | None = task
    seen: set[int] = set()
    while current is not None and id(current) not in seen and len(steps) < 80:
        seen.add(id(current))
        coro: Any = current.get_coro()
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is None:
                break
            code = frame.f_code
            steps.append(f"{os.path.basename(code.co_filename)}:{frame.f_lineno} {code.co_name}")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        # What the task's innermost await is blocked on (asyncio keeps it on the task).
        waiter = getattr(current, "_fut_waiter", None)
        children = getattr(waiter, "_children", None)  # the future of an asyncio.gather
        current = None
        if isinstance(waiter, asyncio.Task):
            current = waiter
            steps.append(f"task {waiter.get_name()!r}")
        elif children is not None:
            pending = [child for child in children if not child.done()]
            steps.append(f"gather ({len(pending)} of {len(children)} pending)")
            if pending and isinstance(pending[0], asyncio.Task):
                current = pending[0]
                steps.append(f"task {current.get_name()!r}")
        elif waiter is not None:
            steps.append("a future")  # a lock, a thread's result, a shield: the end
    return " -> ".join(steps) or "?"


def provider_environment(
    config: Config, environ: os._Environ[str] | dict[str, str], salt: str
) -> dict[str, EnvFact]:
    """The variables that choose and reach the provider, as `daemon.hello` reports them."""
    secret = {
        "KFD_API_KEY",
        config_module.api_key_variable(config.model),
        *(d.api_key_env for d in config_module.PROVIDER_DEFAULTS.values()),
    }
    names = {*config_module.ENV_OVERRIDES, *secret}
    facts: dict[str, EnvFact] = {}
    for name in sorted(names):
        value = environ.get(name) or ""
        facts[name] = EnvFact(
            set=bool(value),
            value="" if name in secret else value,
            digest=env_digest(salt, value) if value else "",
        )
    return facts


PRUNE_EVERY_S = 6 * 3600.0


async def _prune_loop(checkpoints: Checkpoints) -> None:
    """Forget old checkpoints now and then (`[checkpoints] keep_days`, `max_total_mb`)."""
    await asyncio.sleep(60)  # not while the daemon starts
    while True:
        try:
            forgotten = await checkpoints.prune()
            if forgotten:
                log.info("forgot the checkpoints of %d old turn(s)", forgotten)
        except Exception:
            log.exception("pruning checkpoints failed")
        await asyncio.sleep(PRUNE_EVERY_S)


MAX_DESCRIPTORS = 65536


def _more_descriptors() -> None:
    """Raise the soft limit of open files toward the hard one (at most `MAX_DESCRIPTORS`).

    Every client connection, session subprocess, MCP server and unfinished TCP
    handshake holds descriptors; the usual soft limit of 1024 runs out long
    before the machine does, and a daemon out of descriptors fails everything.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_DESCRIPTORS if hard == resource.RLIM_INFINITY else min(hard, MAX_DESCRIPTORS)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (OSError, ValueError) as exc:
            log.info("open files stay limited to %d: %s", soft, exc)
