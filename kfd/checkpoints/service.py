"""Checkpoints as the turn loop and the bus use them: record, list, diff, undo.

Around every tool call that may change files, the turn loop calls `before`
and `after`. What is recorded depends on what the tool says it writes
(`which_paths`):

- a tool that writes only the paths it names (``write``, ``edit``:
  `kfd.api.Tool.writes_only_paths`) costs a read and a hash of those files,
  before and after (no git runs): the paths' states are kept whether git
  would ignore them or not;
- any other tool that is not read-only (``bash``, an MCP tool, a rename
  across files) gets the workspace synced into the shadow repository before
  (absorbing what changed meanwhile, the user's edits) and after (what
  changed now is the call's): tracked and untracked files, not ignored ones,
  not files outside the workspace, not nested repositories.

Each path keeps its state before the turn first changed it and after the
turn last did (`kfd.store.checkpoints`). The state before is written before
the call runs (its state after marked unknown): a daemon that dies mid-call
still knows what to put back, and asks about the rest.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfd.checkpoints import objects, restore
from kfd.checkpoints.diff import file_diff, is_binary
from kfd.checkpoints.objects import State, unkept
from kfd.checkpoints.plan import Recorded, Step, changed_files, fingerprint, plan, span
from kfd.checkpoints.shadow import GitFailed, ShadowRepo
from kfd.store.checkpoints import CheckpointStore, TurnRow

if TYPE_CHECKING:
    from kfd.config import CheckpointsConfig

log = logging.getLogger(__name__)

UNKNOWN_AFTER = "the call did not finish while kfd watched"

RootOf = Callable[[str], Awaitable[str]]
"""The project root (repository root, else itself) of a workspace."""


@dataclass(frozen=True, slots=True)
class Settings:
    """``[checkpoints]`` as the service reads it, per call."""

    enabled: bool = True
    max_file_bytes: int = 10 * 1024 * 1024
    keep_days: float = 30.0
    max_total_bytes: int = 2 * 1024 * 1024 * 1024


def settings_of(config: CheckpointsConfig) -> Settings:
    """`Settings` from the ``[checkpoints]`` table."""
    megabyte = 1024 * 1024
    return Settings(
        enabled=config.enabled,
        max_file_bytes=int(config.max_file_mb * megabyte),
        keep_days=config.keep_days,
        max_total_bytes=int(config.max_total_mb * megabyte),
    )


@dataclass(slots=True)
class Mark:
    """What `before` found, for `after`."""

    session: str
    turn: int
    repo: ShadowRepo
    paths: tuple[str, ...] | None
    """The paths of a tool that writes only those; None: the whole workspace."""


@dataclass(slots=True)
class _Turn:
    row: TurnRow
    files: dict[str, list[State]] = field(default_factory=dict)
    """Path -> [state before the turn's first change, state after the last]."""


def which_paths(tool: Any, args: Any, workspace: str, root: str) -> tuple[str, ...] | None:
    """The paths (relative to ``root``) a call of ``tool`` may change, or None for
    "anything in the workspace". A read-only tool changes nothing: ``()``."""
    if getattr(tool, "read_only", False):
        return ()
    if not getattr(tool, "writes_only_paths", False):
        return None
    found = []
    for access in tool.paths(args):
        if not access.write:
            continue
        path = os.path.normpath(os.path.join(workspace, os.path.expanduser(access.path)))
        relative = os.path.relpath(path, root)
        if relative != "." and not relative.startswith(".."):  # outside: not ours to keep
            found.append(relative.replace(os.sep, "/"))
    return tuple(dict.fromkeys(found))


class Checkpoints:
    """Every project's shadow repository, and the rows that index it."""

    def __init__(
        self,
        store: CheckpointStore,
        directory: Path,
        root_of: RootOf,
        settings: Callable[[], Settings] = Settings,
    ) -> None:
        self.store = store
        self.directory = directory
        self._root_of = root_of
        self._settings = settings
        self._repos: dict[tuple[str, str], ShadowRepo] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        """One lock per shadow repository, shared by the views of its subdirectories."""
        self._turns: dict[str, _Turn] = {}
        """The running turn of each session (recorded so far)."""
        self.problems: dict[str, str] = {}
        """Why checkpoints fail in a project, by root (shown once, logged)."""

    # -- recording ---------------------------------------------------------------

    async def repo_for(self, workspace: str) -> ShadowRepo:
        """The shadow repository watching ``workspace`` (made on first use)."""
        root = await self._root_of(workspace)
        scope = os.path.relpath(workspace, root).replace(os.sep, "/")
        scope = "" if scope == "." else scope
        key = (root, scope)
        repo = self._repos.get(key)
        settings = self._settings()
        if repo is None or repo.max_file_bytes != settings.max_file_bytes:
            name = hashlib.sha256(root.encode()).hexdigest()[:20]
            git_dir = self.directory / f"{name}.git"
            repo = ShadowRepo(
                git_dir,
                Path(root),
                scope=scope,
                max_file_bytes=settings.max_file_bytes,
                lock=self._locks.setdefault(str(git_dir), asyncio.Lock()),
            )
            self._repos[key] = repo
        return repo

    async def before(
        self, session: str, turn: int, workspace: str, tool: Any, args: Any
    ) -> Mark | None:
        """Note what a call may change, before it runs; None when nothing is to record.

        Never raises: a checkpoint that fails is logged, and the call runs.
        """
        if not self._settings().enabled:
            return None
        try:
            repo = await self.repo_for(workspace)
            paths = which_paths(tool, args, workspace, str(repo.root))
            if paths == ():
                return None
            record = self._turn(session, turn, repo)
            if paths is None:
                await repo.sync(record=False)
            else:
                fresh = [p for p in paths if p not in record.files]
                if fresh:
                    await repo.ensure()
                    states = await asyncio.to_thread(lambda: [repo.state_of(p) for p in fresh])
                    for path, state in zip(fresh, states, strict=True):
                        record.files[path] = [state, unkept(UNKNOWN_AFTER)]
                    await self._persist(record, repo, fresh)
            return Mark(session, turn, repo, paths)
        except (GitFailed, OSError) as exc:
            self._failed(workspace, exc)
            return None

    async def after(self, mark: Mark | None) -> None:
        """Record what the call changed. Never raises."""
        if mark is None:
            return
        repo = mark.repo
        record = self._turns.get(mark.session)
        if record is None or record.row.turn != mark.turn:
            return
        try:
            if mark.paths is None:
                changes = await repo.sync(record=True)
                touched = []
                for change in changes:
                    states = record.files.setdefault(change.path, [change.before, change.after])
                    states[1] = change.after
                    touched.append(change.path)
            else:
                touched = list(mark.paths)
                states_after = await asyncio.to_thread(lambda: [repo.state_of(p) for p in touched])
                for path, state in zip(touched, states_after, strict=True):
                    record.files.setdefault(path, [state, state])[1] = state
            if touched:
                await self._persist(record, repo, touched)
        except (GitFailed, OSError) as exc:
            self._failed(str(repo.root), exc)

    def _turn(self, session: str, turn: int, repo: ShadowRepo) -> _Turn:
        record = self._turns.get(session)
        if record is None or record.row.turn != turn or record.row.root != str(repo.root):
            row = TurnRow(session, turn, str(repo.root), str(repo.git_dir), time.time(), None)
            record = self._turns[session] = _Turn(row)
        return record

    async def _persist(self, record: _Turn, repo: ShadowRepo, paths: Iterable[str]) -> None:
        rows = [Recorded(record.row.turn, p, *record.files[p]) for p in paths]
        await self.store.record(record.row, rows)
        blobs = [s.sha for states in record.files.values() for s in states]
        await repo.keep(_ref(record.row), blobs)

    def end_turn(self, session: str) -> None:
        """The session's turn ended: forget what it kept in memory."""
        self._turns.pop(session, None)

    def _failed(self, where: str, exc: Exception) -> None:
        message = f"checkpoints do not work in {where}: {exc}"
        if self.problems.get(where) != message:
            log.warning("%s", message)
        self.problems[where] = message

    # -- reading ---------------------------------------------------------------

    async def turns(self, session: str) -> list[tuple[TurnRow, list[tuple[str, str]]]]:
        """The session's turns that changed files, each with (path, how) of those files."""
        rows = await self.store.turns(session)
        changed = await self.store.rows(session, [t.turn for t in rows])
        listed = []
        for turn in rows:
            files = changed_files(r for r in changed if r.turn == turn.turn)
            if files:
                listed.append((turn, files))
        return listed

    async def diff(
        self, session: str, turn: int | None
    ) -> tuple[list[int], str, str, list[Recorded]]:
        """(turns, root, unified diff, rows) of one turn, or of the whole session
        (its turns not undone)."""
        turns = await self.store.turns(session)
        if turn is not None:
            chosen = [t for t in turns if t.turn == turn]
        else:
            chosen = [t for t in turns if t.undone_at is None]
        if not chosen:
            return [], "", "", []
        rows = await self.store.rows(session, [t.turn for t in chosen])
        spans = span(rows)
        repo = self._repo_of(chosen[-1])
        blobs = await repo.blobs(s.sha for b, a, _ in spans.values() for s in (b, a))
        text = "".join(file_diff(path, b, a, blobs) for path, (b, a, _) in sorted(spans.items()))
        kept = sorted({r.turn for r in rows if r.path in spans})
        return kept, chosen[-1].root, text, rows

    def _repo_of(self, turn: TurnRow) -> ShadowRepo:
        for repo in self._repos.values():
            if str(repo.git_dir) == turn.shadow:
                return repo
        lock = self._locks.setdefault(turn.shadow, asyncio.Lock())
        return ShadowRepo(Path(turn.shadow), Path(turn.root), lock=lock)

    # -- undoing ---------------------------------------------------------------

    async def undo_plan(
        self, session: str, turn: int | None
    ) -> tuple[list[TurnRow], list[Step], dict[str, State], ShadowRepo | None]:
        """What undoing ``turn`` (and every later turn not undone) would do now."""
        turns = [t for t in await self.store.turns(session) if t.undone_at is None]
        changed = await self.store.rows(session, [t.turn for t in turns])
        with_changes = sorted({r.turn for r in changed if r.path in span([r])})
        if turn is None:
            if not with_changes:
                return [], [], {}, None
            turn = with_changes[-1]
        chosen = [t for t in turns if t.turn >= turn]
        if not chosen:
            return [], [], {}, None
        roots = {t.root for t in chosen}
        repo = self._repo_of(chosen[-1])
        # A session keeps its workspace, so its turns share one root; a path is
        # relative to it.
        rows = [r for r in changed if r.turn >= turn]
        paths = sorted(span(rows))
        root = Path(chosen[-1].root)
        await repo.ensure()

        def now() -> dict[str, State]:
            return {
                p: objects.read_state(root, p, repo.objects, repo.max_file_bytes)[0] for p in paths
            }

        current = await asyncio.to_thread(now)
        if len(roots) > 1:
            log.warning("session %s has turns in several roots: %s", session, sorted(roots))
        return chosen, plan(rows, current), current, repo

    async def undo(
        self, session: str, turn: int | None, choice: str, expect: str, *, dry_run: bool = False
    ) -> Undone:
        """Undo ``turn`` and later turns (see `kfd.checkpoints.plan`)."""
        chosen, steps, current, repo = await self.undo_plan(session, turn)
        if repo is None or not chosen:
            message = "no turn of this session changed files (that is not undone already)"
            return Undone([], [], "", applied=False, message=message)
        shown = fingerprint(current)
        conflicts = [s for s in steps if s.action == "conflict"]
        turns = [t.turn for t in chosen]
        blobs = await repo.blobs(
            s.sha for step in steps for s in (step.target, step.expected, step.current)
        )
        if expect and expect != shown:
            raise UndoConflict(
                "the files changed since the undo was shown; look at it again before answering"
            )
        if dry_run or (conflicts and choice == "ask"):
            shown_steps = [_with_diff(s, blobs) for s in steps]
            return Undone(turns, shown_steps, shown, applied=False, root=str(repo.root))
        done = await self._apply(repo, steps, choice, blobs)
        await self.store.mark_undone(session, turns, time.time())
        return Undone(turns, done, shown, applied=True, root=str(repo.root))

    async def _apply(
        self, repo: ShadowRepo, steps: Sequence[Step], choice: str, blobs: Mapping[str, bytes]
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for step in steps:
            if step.action in ("unchanged", "lost"):
                outcomes.append(Outcome(step, step.action))
                continue
            if step.action == "conflict" and choice == "keep":
                outcomes.append(Outcome(step, "kept"))
                continue
            content = blobs.get(step.target.sha) if step.target.exists else None
            action = "restore" if step.action == "restore" else "overwritten"
            state = step.target
            if step.action == "conflict" and choice == "merge":
                merged = await self._merge(repo, step, blobs)
                if merged is None:
                    outcomes.append(Outcome(step, "kept", "cannot be merged (binary, or gone)"))
                    continue
                content, clean = merged
                state = State("", step.current.mode if step.current.exists else step.target.mode)
                action = "merged" if clean else "merge_conflict"
            try:
                await asyncio.to_thread(restore.put, repo.root, step.path, state, content)
            except restore.RestoreError as exc:
                outcomes.append(Outcome(step, "failed", str(exc)))
                continue
            outcomes.append(Outcome(step, action))
        return outcomes

    async def _merge(
        self, repo: ShadowRepo, step: Step, blobs: Mapping[str, bytes]
    ) -> tuple[bytes, bool] | None:
        """Take the turns' change out of the file as it is now: a three-way merge of
        the file now and the state before the turns, from the state after them."""
        parts = []
        for state in (step.current, step.expected, step.target):
            if not state.exists:
                parts.append(b"")
                continue
            data = blobs.get(state.sha)
            if data is None or not state.kept or is_binary(data):
                return None
            parts.append(data)
        if not step.current.exists or not step.target.exists:
            return None  # a file one side deleted: nothing to merge line by line
        return await repo.merge(*parts)

    # -- pruning -----------------------------------------------------------------

    async def prune(self) -> int:
        """Forget turns older than ``keep_days``, then the oldest until the shadow
        repositories fit ``max_total_bytes``; the number of turns forgotten."""
        settings = self._settings()
        gone = await self.store.prune(time.time() - settings.keep_days * 86400)
        await self._drop(gone)
        count = len(gone)
        while await asyncio.to_thread(self._total_size) > settings.max_total_bytes:
            oldest = await self.store.oldest(20)
            if not oldest:
                break
            await self.store.forget(oldest)
            await self._drop(oldest)
            count += len(oldest)
        return count

    async def _drop(self, turns: Sequence[TurnRow]) -> None:
        by_repo: dict[str, list[TurnRow]] = {}
        for turn in turns:
            by_repo.setdefault(turn.shadow, []).append(turn)
        for shadow, dropped in by_repo.items():
            if not os.path.isdir(shadow):
                continue
            repo = self._repo_of(dropped[0])
            try:
                await repo.drop([_ref(t) for t in dropped])
                await repo.gc()
            except GitFailed as exc:
                log.warning("could not prune %s: %s", shadow, exc)

    def _total_size(self) -> int:
        if not self.directory.is_dir():
            return 0
        return sum(
            ShadowRepo(self.directory / name, self.directory).size()
            for name in os.listdir(self.directory)
        )


def _ref(turn: TurnRow) -> str:
    return f"refs/kfd/{turn.session}/{turn.turn}"


def _with_diff(step: Step, blobs: Mapping[str, bytes]) -> Outcome:
    if step.action != "conflict":
        return Outcome(step, step.action)
    return Outcome(step, "conflict", diff=file_diff(step.path, step.current, step.target, blobs))


class UndoConflict(Exception):
    """An answer to an undo that no longer matches the files; the message says so."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an undo did (or would do) to one path."""

    step: Step
    action: str
    detail: str = ""
    diff: str = ""


@dataclass(frozen=True, slots=True)
class Undone:
    """The result of `Checkpoints.undo`."""

    turns: list[int]
    outcomes: list[Outcome]
    fingerprint: str
    applied: bool
    message: str = ""
    root: str = ""
