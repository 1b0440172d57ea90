"""The daemon: start, serve, stop.

Start order matters, and systemd is told ``READY=1`` only at the end of it:
lock the runtime directory (one daemon per user), open the store, load the
plugins, close the turns a crash left open, bind the bus. Stop order: tell
the frontends, end running turns as interrupted, flush the journal, close.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import queue
import signal
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from kfd import config as config_module
from kfd import paths, redact
from kfd.agent.accounting import Accounting
from kfd.agent.core_tools import with_core_tools
from kfd.agent.runtime import Runtime
from kfd.agent.session import Session
from kfd.agent.tool_search import ToolSearchTool
from kfd.agent.tools import ToolRegistry
from kfd.config import Config
from kfd.daemon import sdnotify
from kfd.daemon.bus import Bus
from kfd.daemon.bus_tcp import Peer
from kfd.daemon.journal import Journal
from kfd.daemon.lock import DaemonLock
from kfd.daemon.reload import ConfigReloader, LiveConfig, publisher
from kfd.daemon.rpc import RpcHandler
from kfd.daemon.sessions import SessionManager
from kfd.daemon.trust_rpc import TrustNotices
from kfd.gateway import make_provider
from kfd.ids import ID_LENGTH, new_id
from kfd.plugins import PluginHost
from kfd.policy.rulebook import RuleBook
from kfd.protocol import GLOBAL_TOPIC, DaemonStopping, Event, SessionCreated
from kfd.store.db import Store
from kfd.store.ledger import Ledger
from kfd.store.rules import RuleStore
from kfd.store.triggers import TriggerLog
from kfd.store.trust import TrustStore
from kfd.triggers.manager import TriggerManager

log = logging.getLogger("kfd.daemon")

CLIENT_TOPIC = b"~client."
"""Each client subscribes to ``~client.<its id>`` while connected: presence."""


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
        self._stop_reason = ""
        self._present: set[str] = set()
        self._bus: Bus | None = None
        self.runtime: Runtime
        self.triggers: TriggerManager | None = None
        self.sessions: SessionManager
        self.reloader: ConfigReloader
        """The user config, kept loaded and watched (`kfd.daemon.reload`)."""
        self.trust_notices = TrustNotices(self)

    def stop(self, reason: str = "") -> None:
        """Begin a clean shutdown (safe to call from a signal handler)."""
        self._stop_reason = self._stop_reason or reason
        self._stop.set()

    def _observe(self, event: Event) -> None:
        self.plugins.observe(event)
        if isinstance(event, SessionCreated):
            self.trust_notices.session_started(event.session)
        if self.triggers is not None:
            self.triggers.observe(event)

    def _live_session(self, session_id: str) -> Session:
        """A loaded session (the core tools run only inside its turns)."""
        return self.sessions.live[session_id]

    def watchers(self, session_id: str) -> int:
        """Frontends subscribed to a session's events."""
        return self._bus.subscribers.get(session_id.encode(), 0) if self._bus else 0

    def peer(self, identity: bytes) -> Peer | None:
        """The key a client attached with over TCP (None: a local client)."""
        return self._bus.peer(identity) if self._bus is not None else None

    def present_frontends(self) -> set[str]:
        return set(self._present)

    def _on_subscription(self, topic: bytes, count: int) -> None:
        if topic.startswith(CLIENT_TOPIC):
            client = topic[len(CLIENT_TOPIC) :].decode("ascii", "replace")
            if count > 0:
                self._present.add(client)
            else:
                self._present.discard(client)
            return
        if len(topic) == ID_LENGTH:
            session = self.sessions.live.get(topic.decode("ascii", "replace"))
            if session is not None:
                session.set_frontends(count)

    async def run(self) -> None:
        paths.ensure_private_dir(self.runtime_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = DaemonLock(self.runtime_dir)
        lock.acquire()
        # Before anything is logged or kept: the secrets of the environment are known.
        redact.learn_environment(os.environ, [config_module.api_key_variable(self.config.model)])
        stop_logging = _start_logging(self.state_dir / "daemon.log", self.config.daemon.log_level)
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
        if self.discover_plugins:
            self.plugins.load_entry_points(config.plugins.disable)
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
        accounting = Accounting(config, ledger, provider)
        bus = self._bus = Bus(self.runtime_dir, config.bus)
        journal = Journal(
            store,
            bus.publish,
            self._observe,
            commit_interval_s=config.daemon.commit_interval_ms / 1000,
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
        self.reloader = ConfigReloader(paths.config_file(), config, live_config, publisher(self))
        trust = TrustStore(store)
        await trust.load()
        self.runtime.rule_book = RuleBook(
            config.permissions,
            RuleStore(store),
            trust,
            freshness=self.reloader,
            on_project_loaded=self.trust_notices.project_loaded,
        )
        self.sessions = SessionManager(self.runtime)
        stop_watching = asyncio.Event()
        journal_task = asyncio.create_task(journal.run(), name="journal")
        try:
            recovered = await self.sessions.recover()
            if recovered:
                log.info("closed the open turns of %d session(s) after a stop", recovered)
            resumed = await accounting.resume_gateway_costs(self.sessions.get)
            if resumed:
                log.info("looking up the gateway's cost of %d earlier request(s) again", resumed)
            bus.on_subscription = self._on_subscription
            bus.bind()
            self.triggers = TriggerManager(self.sessions, TriggerLog(store), config_module.load)
            await self.triggers.start(config.triggers)
            watching = asyncio.create_task(self.reloader.watch(stop_watching), name="config")
            serving = asyncio.create_task(bus.serve(RpcHandler(self)), name="bus")
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
            if serving.done() and serving.exception() is not None:
                log.error("the bus failed", exc_info=serving.exception())
            sdnotify.notify("STOPPING=1")
            log.info("stopping: %s", self._stop_reason or "bus failed")
            journal.publish_global(
                GLOBAL_TOPIC.encode(), DaemonStopping(session="", reason=self._stop_reason)
            )
            stop_watching.set()
            await asyncio.gather(watching, return_exceptions=True)
            await self.trust_notices.close()
            await self.triggers.close()
            await self.sessions.shutdown()
            await self.plugins.shutdown()
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
            stopped.cancel()
        finally:
            stop_watching.set()
            await accounting.close()
            await journal.drain()
            journal_task.cancel()
            await asyncio.gather(journal_task, return_exceptions=True)
            await bus.close()
            await self.runtime.provider.aclose()  # the config's latest
            await live_config.close()  # those a reload replaced
            await store.close()


def _start_logging(path: Path, level: str) -> Callable[[], None]:
    """Log to a file through a thread, so no write blocks the event loop."""
    path.parent.mkdir(parents=True, exist_ok=True)
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    file_handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=5 * 1024 * 1024, backupCount=3, encoding="utf-8"
    )
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    listener = logging.handlers.QueueListener(records, file_handler)
    handler = logging.handlers.QueueHandler(records)
    root = logging.getLogger()
    root.addHandler(handler)
    redacting = redact.RedactingFilter()
    filtered = list(root.handlers)  # the file, and stderr when `kfd daemon --log-stderr`
    for each in filtered:
        each.addFilter(redacting)
    root.setLevel(level.upper())
    listener.start()

    def stop() -> None:
        for each in filtered:
            each.removeFilter(redacting)
        root.removeHandler(handler)
        listener.stop()
        file_handler.close()

    return stop
