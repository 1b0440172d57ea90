"""The trigger manager: one watcher per trigger, debounce, cool-down, firing.

A burst of saves is one firing: changes gather until the trigger's
``debounce_ms`` passes without another, and a trigger never fires again
within ``cooldown_s`` (changes meanwhile wait and fire together after it).
A firing emits ``trigger.fired`` into the target session (durable) and on the
``global`` topic, then sends the rendered prompt as a user message from the
frontend ``trigger <name>``.

What counts as a change: a file whose content differs from what the trigger
last saw there (or, the first time, from git's index): a ``touch`` or a save
of the same bytes is no change. kfd's own edits never count
(`kfd.triggers.own_edits`). A spent budget stops a trigger before it starts
a session: its own ``budget_usd``, a turn of it that a budget refused, or
the day's or month's ``[budget]``; ``kfd watch`` says which.
"""

from __future__ import annotations

import asyncio
import logging
import os
import string
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import msgspec
import watchfiles

from kfd.config import Config, TriggerConfig
from kfd.errors import ConfigError
from kfd.protocol import (
    GLOBAL_TOPIC,
    ErrorEvent,
    Event,
    FrontendRef,
    Mode,
    ToolRequested,
    TriggerFired,
    TriggerInfo,
    TriggerListResult,
    TriggerSpot,
    TurnCompleted,
    UsageReported,
)
from kfd.store.triggers import TriggerLog
from kfd.triggers.comments import context_lines, marked_comments
from kfd.triggers.files import (
    FileFilter,
    diff_of,
    file_states,
    git_blobs,
    git_ignored,
    read_beneath,
    withheld,
)
from kfd.triggers.own_edits import Claim, OwnEdits, claim_of_paths

if TYPE_CHECKING:
    from kfd.agent.runtime import Runtime
    from kfd.agent.session import Session

log = logging.getLogger(__name__)

TEMPLATE_FIELDS = frozenset({"changed_files", "diff", "trigger"})
MAX_COMMENT_FILE_BYTES = 2 * 1024 * 1024
SPOTS_PER_FIRING = 20

FILES_LISTED = 100
"""Changed files a prompt (and a ``trigger.fired`` event) names; the rest are counted."""

KEPT_VERSIONS = 50_000
"""Files whose last seen content a trigger remembers (to tell a touch from a change)."""

_UNKNOWN = object()


class Sessions(Protocol):
    """What triggers use of the daemon's sessions (`kfd.daemon.sessions.SessionManager`):
    named here so that triggers do not import the daemon that runs them."""

    @property
    def runtime(self) -> Runtime:
        """The services every session shares (the store, the journal)."""
        ...

    @property
    def live(self) -> Mapping[str, Session]:
        """The loaded sessions, by id."""
        ...

    async def get(self, session_id: str) -> Session:
        """A session by id, loading it if needed."""
        ...

    async def create(self, cwd: str, *, title: str = "", mode: Mode = "default") -> Session:
        """A new session in ``cwd``."""
        ...


@dataclass(slots=True)
class _Trigger:
    config: TriggerConfig
    workspace: Path
    filter: FileFilter
    info: TriggerInfo
    pending: set[str] = field(default_factory=set)
    seen_spots: set[tuple[str, str, str]] = field(default_factory=set)
    last_fired: float = float("-inf")
    """time.monotonic() of the last firing, for the cool-down."""
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    watcher: asyncio.Task[None] | None = None
    timer: asyncio.Task[None] | None = None
    firing: bool = False
    versions: OrderedDict[str, str | None] = field(default_factory=OrderedDict)
    """Relative path -> digest of the content last seen there (None: deleted)."""
    stopped: str = ""
    """Why the trigger fires no more until `kfd watch reload` (a budget refused it)."""

    def seen(self, relative: str, digest: str | None) -> object:
        """Remember ``relative``'s content; what was known of it before."""
        before = self.versions.pop(relative, _UNKNOWN)
        self.versions[relative] = digest
        if len(self.versions) > KEPT_VERSIONS:
            self.versions.popitem(last=False)
        return before


class TriggerManager:
    """Runs the ``[[triggers]]`` of the config inside the daemon."""

    def __init__(
        self,
        sessions: Sessions,
        log_store: TriggerLog,
        load_config: Callable[[], Config],
    ) -> None:
        self.sessions = sessions
        self._log = log_store
        self._load_config = load_config
        self._triggers: dict[str, _Trigger] = {}
        self._problems: list[str] = []
        self._runs: dict[str, tuple[str, float]] = {}
        """session id -> (trigger name, session cost already counted)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self.own_edits = OwnEdits(self._claim_of)

    # -- lifecycle -----------------------------------------------------------

    async def start(self, configs: list[TriggerConfig]) -> None:
        """Validate the trigger tables and start a watcher for each good one."""
        firings = await self._log.all()
        self._problems = []
        names: set[str] = set()
        for config in configs:
            problem = _problem(config, names)
            names.add(config.name)
            workspace = Path(os.path.realpath(config.workspace))
            info = TriggerInfo(
                name=config.name,
                workspace=str(workspace),
                paths=list(config.paths),
                mode=config.mode,
                session=config.session,
                debounce_ms=config.debounce_ms,
                cooldown_s=config.cooldown_s,
                budget_usd=config.budget_usd,
                problem=problem,
            )
            last = firings.get(config.name)
            if last is not None:
                info.fired = last.fired
                info.last_fired_at = last.fired_at
                info.last_files = last.files
                info.last_session = last.session
                info.spent_usd = last.spent_usd
            if problem:
                self._problems.append(f"trigger {config.name!r}: {problem}")
                if config.name in self._triggers:
                    continue  # a duplicate: keep the first
            trigger = _Trigger(
                config, workspace, FileFilter(workspace, config.paths, config.ignore), info
            )
            self._triggers[config.name] = trigger
            if not problem:
                trigger.watcher = asyncio.create_task(
                    self._watch(trigger), name=f"trigger {config.name}"
                )
                info.watching = True
        # Let each watcher task run up to its first wait: its inotify watches
        # are in place then, so no change after start() returns is missed.
        for _ in range(3):
            await asyncio.sleep(0)

    async def close(self) -> None:
        for trigger in self._triggers.values():
            trigger.stop.set()
        tasks = [t for tr in self._triggers.values() for t in (tr.watcher, tr.timer) if t]
        for task in [*tasks, *self._tasks]:
            task.cancel()
        await asyncio.gather(*tasks, *self._tasks, return_exceptions=True)
        self._triggers.clear()

    async def reload(self) -> TriggerListResult:
        """Read the config again; on a broken config keep the running triggers."""
        try:
            config = await asyncio.to_thread(self._load_config)
        except ConfigError as exc:
            result = self.listing()
            result.not_reloaded = str(exc)
            return result
        await self.close()
        await self.start(config.triggers)
        return self.listing()

    def listing(self) -> TriggerListResult:
        return TriggerListResult(
            triggers=[msgspec.structs.replace(t.info) for t in self._triggers.values()],
            problems=list(self._problems),
        )

    # -- events of every session -------------------------------------------

    def observe(self, event: Event) -> None:
        """See every event (after it is durable): kfd's own edits, budgets."""
        self.own_edits.observe(event)
        run = self._runs.get(event.session)
        if run is None:
            return
        if isinstance(event, UsageReported):
            self._spend(event, *run)
        elif isinstance(event, ErrorEvent) and event.code == "budget":
            trigger = self._triggers.get(run[0])
            if trigger is not None and not trigger.stopped:
                # Firing again would only start sessions the same budget refuses.
                trigger.stopped = f"stopped: {event.message} Then `kfd watch reload`."
                trigger.info.problem = trigger.stopped
                log.warning("trigger %s %s", run[0], trigger.stopped)
        elif isinstance(event, TurnCompleted):
            self._runs.pop(event.session, None)

    def _spend(self, event: UsageReported, name: str, counted: float) -> None:
        cost = event.total.cost_usd - counted
        self._runs[event.session] = (name, event.total.cost_usd)
        trigger = self._triggers.get(name)
        if trigger is None or cost <= 0:
            return
        trigger.info.spent_usd += cost
        self._spawn(self._log.spend(name, cost))

    def running_sessions(self) -> set[str]:
        """Sessions running a trigger's turn (kept in memory until it ends)."""
        return set(self._runs)

    def _claim_of(self, event: ToolRequested) -> Claim | None:
        """What a requested tool call may write (see `kfd.triggers.own_edits`)."""
        session = self.sessions.live.get(event.session)
        if session is None or not self._triggers:
            return None  # nothing watches: nothing to tell apart
        workspace = os.path.realpath(session.info.cwd)
        registry = session.runtime.tools
        tool = registry.get(event.name, event.session)
        declared: list[str] = []
        if tool is not None:
            try:
                _, args = registry.parse(tool, msgspec.json.encode(event.arguments).decode())
                declared = [access.path for access in tool.paths(args) if access.write]
            except Exception:  # a call that does not parse declares nothing: its words count
                declared = []
        return claim_of_paths(declared, event.arguments, workspace)

    # -- watching --------------------------------------------------------------

    async def _watch(self, trigger: _Trigger) -> None:
        try:
            async for changes in watchfiles.awatch(
                trigger.workspace,
                debounce=max(50, trigger.config.debounce_ms),
                step=30,
                stop_event=trigger.stop,
            ):
                await self._changed(trigger, [path for _, path in changes])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("trigger %s stopped watching", trigger.config.name)
            trigger.info.watching = False
            trigger.info.problem = f"stopped watching: {exc}"

    async def _changed(self, trigger: _Trigger, changed: list[str]) -> None:
        candidates: dict[str, str] = {}
        for path in changed:
            relative = os.path.relpath(path, trigger.workspace)
            if trigger.filter.wanted(relative):
                candidates[relative] = path
        ignored = await git_ignored(trigger.workspace, list(candidates))
        for relative in ignored:
            candidates.pop(relative, None)
        if not candidates:
            return
        now = time.time()
        states = await asyncio.to_thread(file_states, list(candidates.values()))
        unknown = [relative for relative in candidates if relative not in trigger.versions]
        baseline = await git_blobs(trigger.workspace, unknown)
        theirs = []
        for (relative, path), state in zip(candidates.items(), states, strict=True):
            before = trigger.seen(relative, state.digest)
            if before is _UNKNOWN:
                before = baseline.get(relative, _UNKNOWN)
            if before == state.digest:
                continue  # the same bytes as before: a touch, or a save without changes
            if before is _UNKNOWN and state.digest is None:
                continue  # came and went unseen: a temporary file (an atomic save's)
            if self.own_edits.made_by_kfd(path, state.mtime, state.digest, now):
                continue
            theirs.append(relative)
        if not theirs:
            return
        trigger.pending.update(theirs)
        self._schedule(trigger)

    def _schedule(self, trigger: _Trigger) -> None:
        if trigger.firing:
            return  # the firing re-schedules what arrived meanwhile
        if trigger.timer is not None and not trigger.timer.done():
            trigger.timer.cancel()  # debounce: wait for quiet again
        trigger.timer = asyncio.create_task(self._after_quiet(trigger))

    async def _after_quiet(self, trigger: _Trigger) -> None:
        await asyncio.sleep(trigger.config.debounce_ms / 1000)
        wait = trigger.last_fired + trigger.config.cooldown_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        trigger.firing = True
        try:
            files = sorted(trigger.pending)
            trigger.pending.clear()
            await self._fire(trigger, files)
        except Exception as exc:
            log.exception("trigger %s failed to fire", trigger.config.name)
            trigger.info.problem = f"failed to fire: {exc!r}"
        finally:
            trigger.firing = False
        if trigger.pending:
            self._schedule(trigger)

    # -- firing ----------------------------------------------------------------

    async def _fire(self, trigger: _Trigger, files: list[str]) -> None:
        config = trigger.config
        refused = await self._budget_refusal(trigger)
        if refused:
            if trigger.info.problem != refused:
                log.warning("trigger %s: %s", config.name, refused)
            trigger.info.problem = refused
            trigger.info.refused += 1
            return
        # What a read rule keeps from the model (a changed .env) is named, never shown.
        book = self.sessions.runtime.rule_book
        guard = book.read_guard(str(trigger.workspace)) if book is not None else None
        hidden = await asyncio.to_thread(withheld, trigger.workspace, files, guard)
        shown = [relative for relative in files if relative not in hidden]
        spots: list[tuple[TriggerSpot, str]] = []
        if config.ai_comments:
            spots = await asyncio.to_thread(_new_spots, trigger, shown)
        if spots:
            do = [spot for spot in spots if spot[0].kind == "do"]
            ask = [spot for spot in spots if spot[0].kind == "ask"]
            if do:
                await self._start(trigger, "do", files, _comment_prompt(do), do, config.mode)
            if ask:
                # A question is answered, never acted on: its turn changes nothing.
                await self._start(trigger, "ask", files, _comment_prompt(ask), ask, "plan")
        elif config.prompt:
            listed = files[:FILES_LISTED]
            more = len(files) - len(listed)
            names = "\n".join(listed) + (f"\n… and {more} more files" if more else "")
            diff = ""
            if "{diff}" in config.prompt:
                visible = [relative for relative in listed if relative not in hidden]
                diff = await diff_of(trigger.workspace, visible) if visible else ""
                diff += "".join(
                    f"\n--- {relative}: not shown ({why}: kfd keeps its content from the model)"
                    for relative, why in hidden.items()
                    if relative in listed
                )
            prompt = config.prompt.format_map(
                {"changed_files": names, "diff": diff, "trigger": config.name}
            )
            await self._start(trigger, "change", files, prompt, [], config.mode)

    async def _budget_refusal(self, trigger: _Trigger) -> str:
        """Why a budget forbids firing now, or ``""``."""
        if trigger.stopped:
            return trigger.stopped
        budget = trigger.config.budget_usd
        if budget is not None and trigger.info.spent_usd >= budget:
            return (
                f"stopped: its budget is spent (${trigger.info.spent_usd:.4f} of ${budget:g}); "
                "raise budget_usd, then `kfd watch reload`"
            )
        accounting = self.sessions.runtime.accounting
        for state in await accounting.budget_states(None):
            if state.spent_usd >= state.limit_usd:
                period = "today's" if state.budget == "daily" else "this month's"
                key = "daily_usd" if state.budget == "daily" else "monthly_usd"
                return (
                    f"not firing: {period} budget is spent (${state.spent_usd:.4f} of "
                    f"${state.limit_usd:.2f}); raise [budget] {key} to let it fire"
                )
        return ""

    async def _start(
        self,
        trigger: _Trigger,
        kind: Literal["change", "do", "ask"],
        files: list[str],
        prompt: str,
        spots: list[tuple[TriggerSpot, str]],
        mode: Mode,
    ) -> None:
        config = trigger.config
        budget = config.budget_usd
        listed = files[:FILES_LISTED]
        session = await self._target(trigger, files, mode)
        if budget is not None:
            # The session's own limit stops the turn before it overspends (the
            # accounting refuses the request); the trigger's is what remains.
            limit = session.info.usage.cost_usd + budget - trigger.info.spent_usd
            if session.info.budget_usd is None or session.info.budget_usd > limit:
                session.update(budget_usd=round(limit, 6))
        sent = await session.send(prompt, FrontendRef(id="trigger", name=f"trigger {config.name}"))
        fired = TriggerFired(
            session=session.id,
            trigger=config.name,
            kind=kind,
            workspace=str(trigger.workspace),
            files=listed,
            spots=[spot for spot, _ in spots],
            message_id=sent.message_id,
        )
        await session.emit(fired)
        session.runtime.journal.publish_global(GLOBAL_TOPIC.encode(), fired)
        self._runs[session.id] = (config.name, session.info.usage.cost_usd)
        trigger.last_fired = time.monotonic()
        now = time.time()
        info = trigger.info
        info.problem = ""  # it fires: no budget stands in its way any more
        info.fired += 1
        info.last_fired_at = now
        info.last_files = listed
        info.last_session = session.id
        await self._log.record(config.name, now, listed, session.id)

    async def _target(self, trigger: _Trigger, files: list[str], mode: Mode) -> Session:
        """The session a firing goes to: the configured one, or a new one.

        A named session is reused only if its mode is no looser than ``mode``
        asks (a question goes to a ``plan`` session, a new one if need be).
        """
        config = trigger.config
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        title = f"trigger {config.name}: {shown}"
        if config.session != "new":
            store = self.sessions.runtime.store
            for info in await store.sessions(cwd=str(trigger.workspace), limit=1000):
                if info.title == config.session:
                    session = await self.sessions.get(info.id)
                    if mode != "plan" or session.info.mode == "plan":
                        return session
                    break
            else:
                title = config.session
        return await self.sessions.create(str(trigger.workspace), title=title, mode=mode)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _problem(config: TriggerConfig, names: set[str]) -> str:
    """What is wrong with a trigger table, or ``""``."""
    if not config.name.strip() or len(config.name) > 100:
        return "name: 1-100 characters"
    if config.name in names:
        return "another trigger has this name; names must be unique"
    if not os.path.isabs(config.workspace):
        return f"workspace {config.workspace!r} must be an absolute path"
    if not os.path.isdir(config.workspace):
        return f"workspace {config.workspace!r} is not a directory"
    if not config.paths:
        return "paths is empty: give globs such as ['**/*.py']"
    if config.debounce_ms < 0 or config.debounce_ms > 3_600_000:
        return "debounce_ms: 0 to 3600000"
    if config.cooldown_s < 0:
        return "cooldown_s must not be negative"
    if config.budget_usd is not None and config.budget_usd <= 0:
        return "budget_usd must be positive (leave it out for no budget)"
    if not config.session.strip():
        return 'session: "new" or the title of a session to reuse'
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(config.prompt) if name}
    except ValueError as exc:
        return f"prompt is not a valid template ({exc}); write literal braces as {{{{ }}}}"
    unknown = fields - TEMPLATE_FIELDS
    if unknown:
        known = ", ".join(f"{{{name}}}" for name in sorted(TEMPLATE_FIELDS))
        return f"prompt uses unknown fields {sorted(unknown)}; the fields are {known}"
    return ""


def _new_spots(trigger: _Trigger, files: list[str]) -> list[tuple[TriggerSpot, str]]:
    """``AI!`` / ``AI?`` comments in ``files`` that have not fired before."""
    found: list[tuple[TriggerSpot, str]] = []
    for relative in files:
        text = read_beneath(trigger.workspace, relative, MAX_COMMENT_FILE_BYTES)
        if text is None:
            continue  # a link (to ~/.aws/credentials), a FIFO, too large, gone
        for marked in marked_comments(text):
            key = (relative, marked.text, marked.kind)
            if key in trigger.seen_spots:
                continue
            trigger.seen_spots.add(key)
            spot = TriggerSpot(path=relative, line=marked.line, text=marked.text, kind=marked.kind)
            found.append((spot, context_lines(text, marked.line)))
    return found[:SPOTS_PER_FIRING]


def _comment_prompt(spots: list[tuple[TriggerSpot, str]]) -> str:
    parts = [
        "Comments in the workspace's files ask for your help. A comment ending in `AI!` "
        "asks for a change at that spot: make it, then remove the comment. A comment "
        "ending in `AI?` asks a question: answer it, and change no file for it.",
    ]
    for spot, context in spots:
        marker = "AI!" if spot.kind == "do" else "AI?"
        parts.append(f"{spot.path}:{spot.line} ({marker}) {spot.text}\n{context}")
    return "\n\n".join(parts)
