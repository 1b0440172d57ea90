"""Live configuration: the user config is read again when it changes.

The file is watched (watchfiles, on its directory: editors replace files
rather than write them in place) and checked with a stat before every
permission decision (`kfd.policy.rulebook.Freshness`), so a change applies
to the next decision, model request or turn without a restart. The new
config replaces the old in one assignment (``runtime.config``): a request
reads the old config or the new, never half of each.

A file that does not load (or that disappears: an empty file is how to ask
for the defaults) leaves the last good config in place; every frontend is
told (``config.error`` on the global topic and in the sessions, by
`kfd.daemon.config_notices`, and ``kfd status``), and told again when it
loads (``config.reloaded``). What changed but cannot apply while the daemon
runs is named in the event, with what to do.

`changes` is the pure part: which sections differ, and which of those apply
live.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import watchfiles

from kfd import config as config_module
from kfd.config import Config
from kfd.errors import ConfigError
from kfd.protocol import ConfigInvalid, ConfigReloaded

if TYPE_CHECKING:
    from kfd.daemon.ports import DaemonPort
    from kfd.gateway.types import Provider

log = logging.getLogger(__name__)

_Stamp = tuple[int, int, int, int]
_MISSING: _Stamp = (0, 0, 0, 0)

QUIET_S = 0.05
"""A config file changed this recently may still be being written: wait."""

EMPTY_QUIET_S = 0.5
"""An empty file is most often one being rewritten in place (truncated, not
yet written; the writer may be descheduled for a while under load): it must
stay empty this long before it means "the defaults"."""

SETTLE_LIMIT_S = 1.0
"""Longest wait for a file that keeps changing; then it is read as it is."""

RECHECK_MS = 2000
"""How often the watched file's stamp is looked at when no event came (one ``stat``)."""

# -- what changed, and what of it applies live (pure) ---------------------------

_LIVE: Mapping[str, str] = {
    "models": "[models]: prices and context windows, from the next request",
    "budget": "[budget]: from the next model request",
    "ledger": "[ledger]: for the next gateway cost look-ups",
    "agent": "[agent]: from the next turn",
    "context": "[context]: from the next model request",
    "permissions": "[permissions]: from the next decision",
    "sandbox": "[sandbox]: from the next command",
    "triggers": "[[triggers]]: the file watchers restarted with the new tables",
    "checkpoints": "[checkpoints]: from the next tool call",
    "hooks": "[[hooks]]: from the next event",
}
_RESTART: Mapping[str, str] = {
    "plugins": "[plugins]: plugins load when the daemon starts; restart it to apply",
    "mcp": "[mcp]: MCP servers are set up when the daemon starts; restart it to apply",
    "notify": "[notify]: `kfd notify` reads it when it starts; restart it to apply",
    "chat": "[chat]: `kfd chat` reads it when it starts; restart it to apply",
    "bus": "[bus]: the daemon binds its listeners when it starts; restart it to apply",
    "remotes": "[remotes]: read by `kfd --remote` when it starts (the daemon does not use it)",
}


class Changes(NamedTuple):
    """What differs between two configs, for the ``config.reloaded`` event."""

    applied: list[str]
    """What changed and applies now, each with when."""
    not_applied: list[str]
    """What changed but waits for a restart, each with what to do."""


def changes(old: Config, new: Config) -> Changes:
    """Which sections of the config changed, and whether each applies live.

    Sections are msgspec Structs, which compare by value.
    """
    applied: list[str] = []
    later: list[str] = []
    for name in Config.__struct_fields__:
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        if name == "model":
            applied.append(
                f"[model]: from the next model request ({after.provider}, new sessions use "
                f"{after.model}; a session keeps its own model, /model changes it)"
            )
        elif name == "daemon":
            _daemon_changes(before, after, applied, later)
        elif name == "tools":
            for table in sorted(set(before) | set(after)):
                if before.get(table) != after.get(table):
                    applied.append(
                        f"[tools.{table}]: tool calls see it from now on (a plugin that reads "
                        "its table only when the daemon starts needs a restart)"
                    )
        elif name in _LIVE:
            applied.append(_LIVE[name])
        else:
            later.append(_RESTART.get(name, f"[{name}]: restart the daemon to apply"))
    return Changes(applied, later)


def _daemon_changes(
    before: config_module.DaemonConfig,
    after: config_module.DaemonConfig,
    applied: list[str],
    later: list[str],
) -> None:
    if before.log_level != after.log_level:
        applied.append(f"[daemon] log_level: {after.log_level}")
    if before.delta_window_ms != after.delta_window_ms:
        applied.append("[daemon] delta_window_ms: from the next streamed answer")
    if before.commit_interval_ms != after.commit_interval_ms:
        later.append("[daemon] commit_interval_ms: restart the daemon to apply")


# -- reading the file again --------------------------------------------------------

Apply = Callable[[Config, Config], Awaitable[None]]
"""Puts a new config in place (old, new); raising leaves the old one in place."""


class ConfigReloader:
    """The user config file, kept loaded: the last good config and what went wrong."""

    def __init__(
        self,
        path: Path,
        config: Config,
        apply: Apply,
        publish: Callable[[ConfigInvalid | ConfigReloaded], None],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.path = path
        self.config = config
        """The config in use: the last one that loaded."""
        self.loaded_at = time.time()
        self.error = ""
        """Why the file's current content does not apply ("" when it does)."""
        self._apply = apply
        self._publish = publish
        self._environ = environ
        self._stamp: _Stamp | None = None
        self._raw: bytes | None = None
        self._seen = path.exists()  # once, at start
        """Whether the file existed while the daemon ran (its absence is then news)."""
        self._lock = asyncio.Lock()

    def stale(self) -> bool:
        """Whether the file changed since it was last read (blocking: one stat)."""
        return self._stamp is None or _stamp(self.path) != self._stamp

    async def refresh(self) -> None:
        """Read the file again if it changed, and apply it (`kfd.policy.rulebook.Freshness`)."""
        await self.reload()

    async def reload(self) -> None:
        """Read the file; apply it if it changed and loads, keep the last good config if not."""
        async with self._lock:
            stamp, raw, problem = await asyncio.to_thread(self._read)
            if stamp == self._stamp:
                return
            self._stamp = stamp
            if problem is None and raw == self._raw:
                return  # touched, not changed
            self._raw = raw
            if stamp == _MISSING and not self._seen:
                return  # no config file yet: the defaults, as at start
            self._seen = self._seen or raw is not None
            if problem is None:
                try:
                    new = await asyncio.to_thread(
                        config_module.parse, raw or b"", self.path, self._environ
                    )
                except ConfigError as exc:
                    problem = str(exc)
            if problem is not None:
                self._fail(problem)
                return
            await self._put(new)

    def _read(self) -> tuple[_Stamp, bytes | None, str | None]:
        """The file's stamp and content once it is quiet (blocking: in a thread).

        A file written in place passes through states that parse (empty, or
        cut after a line): wait until it has not changed for `QUIET_S`
        (`EMPTY_QUIET_S` when empty), and read it again if it changed while
        being read.
        """
        deadline = time.monotonic() + SETTLE_LIMIT_S
        while True:
            stamp = _stamp(self.path)
            if stamp == _MISSING:
                gone = (
                    f"{self.path} is gone; kfd keeps the config it last read "
                    "(an empty file means the defaults)"
                )
                return stamp, None, gone
            age = time.time() - stamp[0] / 1e9
            quiet = EMPTY_QUIET_S if stamp[2] == 0 else QUIET_S
            if 0 <= age < quiet and time.monotonic() < deadline:
                time.sleep(min(quiet - age, QUIET_S))
                continue
            try:
                raw = config_module.read(self.path)
            except ConfigError as exc:
                return stamp, None, str(exc)
            if _stamp(self.path) == stamp or time.monotonic() >= deadline:
                return stamp, raw, None

    async def _put(self, new: Config) -> None:
        old, recovered = self.config, bool(self.error)
        if new == old and not recovered:
            return
        try:
            await self._apply(old, new)
        except Exception as exc:
            log.exception("could not apply the new config")
            self._fail(
                f"{self.path} loads, but applying it failed ({exc}); kfd keeps the last config"
            )
            return
        self.config = new
        self.loaded_at = time.time()
        self.error = ""
        found = changes(old, new)
        log.info("config reloaded: %s", "; ".join(found.applied + found.not_applied) or "fixed")
        self._publish(
            ConfigReloaded(
                session="",
                path=str(self.path),
                applied=found.applied,
                not_applied=found.not_applied,
            )
        )

    def _fail(self, problem: str) -> None:
        if problem == self.error:
            return
        self.error = problem
        log.warning("config not reloaded: %s", problem)
        self._publish(ConfigInvalid(session="", path=str(self.path), message=problem))

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload whenever the file changes, until ``stop`` is set.

        Watches the file's directory (and its target's, for a symlinked
        file); while that directory does not exist, its nearest ancestor.
        When watching fails (no inotify watches left), the check before each
        decision still catches every change.
        """
        try:
            await self.reload()
            while not stop.is_set():
                directories = self._directories()
                wanted = self._wanted()

                def relevant(
                    _change: watchfiles.Change, changed: str, wanted: set[str] = wanted
                ) -> bool:
                    return changed in wanted

                # Every RECHECK_MS with nothing seen, a look at the file's stamp too:
                # a change made while the watch was being set up (or an event the
                # kernel dropped) is found without waiting for a decision.
                async for _ in watchfiles.awatch(
                    *directories,
                    watch_filter=relevant,
                    recursive=False,
                    debounce=150,
                    step=30,
                    stop_event=stop,
                    rust_timeout=RECHECK_MS,
                    yield_on_timeout=True,
                ):
                    await self.reload()
                    if self._directories() != directories:
                        break  # the directory appeared (or moved): watch it instead
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("stopped watching %s; changes apply at the next decision", self.path)

    def _directories(self) -> list[str]:
        found = []
        for target in (self.path, Path(os.path.realpath(self.path))):
            directory = target.parent
            while not directory.is_dir() and directory != directory.parent:
                directory = directory.parent
            if str(directory) not in found:
                found.append(str(directory))
        return found

    def _wanted(self) -> set[str]:
        wanted = {str(self.path), os.path.realpath(self.path)}
        wanted.update(str(parent) for parent in self.path.parents)
        return wanted


def _stamp(path: Path) -> _Stamp:
    try:
        info = os.stat(path)
    except OSError:
        return _MISSING
    return (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)


# -- putting a new config in place -------------------------------------------------


class LiveConfig:
    """Puts a reloaded config in place in a running daemon (`Apply`)."""

    def __init__(self, daemon: DaemonPort) -> None:
        self._daemon = daemon
        self.retired: list[Provider] = []
        """Providers replaced by a reload: requests in flight still use them;
        closed when the daemon stops."""

    async def __call__(self, old: Config, new: Config) -> None:
        from kfd.gateway import make_provider  # the gateway only when the model changes

        daemon = self._daemon
        runtime = daemon.runtime
        provider = runtime.provider
        if new.model != old.model:
            provider = make_provider(new.model)  # first: it may refuse, then nothing changed
        # From here on nothing raises: the new config goes in whole.
        if provider is not runtime.provider:
            self.retired.append(runtime.provider)
            runtime.provider = provider
        runtime.accounting.reconfigure(new, provider)
        runtime.delta_window_s = new.daemon.delta_window_ms / 1000
        if runtime.rule_book is not None and new.permissions != old.permissions:
            runtime.rule_book.set_user(new.permissions)
        if new.daemon.log_level != old.daemon.log_level:
            logging.getLogger().setLevel(new.daemon.log_level.upper())
        runtime.config = new
        daemon.config = new
        if new.triggers != old.triggers and daemon.triggers is not None:
            await daemon.triggers.close()
            await daemon.triggers.start(new.triggers)

    async def close(self) -> None:
        """Close the providers replaced while the daemon ran."""
        for provider in self.retired:
            await provider.aclose()
        self.retired.clear()
