"""The store: the one module that speaks SQL.

One SQLite file in WAL mode. Every query runs on the store's own thread
(`kfd.store.worker`), as one function of the connection, so no query blocks
the event loop and every write is one whole transaction that ends (commits or
rolls back) whatever interrupts the coroutine waiting for it. Writes arrive
as batches from the journal and commit in one transaction: a batch is durable
entirely or not at all, so a crash at any instant leaves a log without holes.

The feature tables (memory, triggers, rules, the ledger) live in sibling
modules that use the two doors here: `Store.read` and `Store.write`.

Why one connection: with two, a write transaction on one can fail at once
(SQLITE_BUSY_SNAPSHOT, no busy wait) when a read on it still holds a snapshot
older than the other's last commit. A single writer never races itself; money
gets its durability from ``write(durable=True)`` (``synchronous=FULL``).

Disk trouble (full, I/O errors, locked by another process) raises
`StoreUnavailable`; with ``retry=True`` a write waits it out instead, with
backoff, and `Store.trouble` says what is wrong meanwhile (the daemon tells
every frontend; `on_trouble` is called when it starts and when it ends).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NamedTuple, TypeVar

import msgspec

from kfd.errors import StoreError, StoreUnavailable
from kfd.protocol import SessionInfo
from kfd.store.migrations import LEDGER_STATES, MIGRATIONS
from kfd.store.worker import CLOSED, Worker
from kfd.transcript import Message, message_decoder, message_encoder

log = logging.getLogger(__name__)

T = TypeVar("T")

_info_encoder = msgspec.json.Encoder()
_info_decoder = msgspec.json.Decoder(SessionInfo)

_TRANSIENT = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN")
_TRANSIENT_NAMES = (*_TRANSIENT, "SQLITE_READONLY", "SQLITE_PROTOCOL", "SQLITE_NOMEM")

RETRY_FIRST_S = 0.01
RETRY_MAX_S = 2.0


class EventRow(NamedTuple):
    session: str
    seq: int
    type: str
    ts: float
    body: bytes


class MessageRow(NamedTuple):
    session: str
    idx: int
    seq: int
    message: Message


class Batch(NamedTuple):
    """Everything one group commit writes."""

    events: Sequence[EventRow] = ()
    messages: Sequence[MessageRow] = ()
    sessions: Sequence[SessionInfo] = ()
    tool_outputs: Sequence[tuple[str, str, str]] = ()


def trouble_text(exc: BaseException) -> str:
    """What is wrong with the disk, in a few words, for the user."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return "disk full"
    if name.startswith("SQLITE_IOERR") or "I/O error" in text:
        return f"I/O error ({text})"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return "the database is locked by another process"
    if name.startswith("SQLITE_READONLY"):
        return "the database is read-only"
    return text


def _transient(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name:
        return name.startswith(_TRANSIENT_NAMES)
    if str(exc) == CLOSED:
        return False  # the store was closed: waiting will not help
    # No code: an old SQLite module.
    return isinstance(exc, sqlite3.OperationalError)


class Store:
    """The database. Open with `Store.open`; close with `close`."""

    def __init__(self, worker: Worker, path: Path) -> None:
        self._worker = worker
        self.path = path
        self.trouble: str | None = None
        """What keeps writes from succeeding right now ("disk full"), or None."""
        self.on_trouble: Callable[[str | None], None] | None = None
        """Called with `trouble` when it starts, changes, and ends (None)."""
        self.retries = 0
        self._waiting: dict[int, str] = {}
        """Writes waiting out disk trouble, by id: what they were to write."""

    @classmethod
    async def open(cls, path: Path, *, busy_timeout_ms: int = 5000) -> Store:
        """Open (creating if needed) and migrate the database at ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        worker = Worker(path, busy_timeout_ms=busy_timeout_ms)
        try:
            await worker.start()
        except sqlite3.Error as exc:
            await worker.close(1.0)
            raise StoreError(f"cannot open the database {path}: {exc}") from exc
        store = cls(worker, path)
        try:
            await worker.read(store._migrate, what="migrate the schema")
        except sqlite3.Error as exc:
            await worker.close(1.0)
            raise StoreError(f"cannot prepare the database {path}: {exc}") from exc
        except BaseException:
            await worker.close(1.0)
            raise
        path.chmod(0o600)
        return store

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the database {self.path} was written by a newer kfd (schema {version}, "
                f"this kfd knows {len(MIGRATIONS)}); upgrade kfd"
            )
        for number in range(version + 1, len(MIGRATIONS) + 1):
            # user_version is set in the same transaction, so a crash cannot
            # leave a migration applied but unrecorded.
            db.executescript(
                f"BEGIN;\n{MIGRATIONS[number - 1]}\nPRAGMA user_version={number};\nCOMMIT;"
            )
        columns = {row[1] for row in db.execute("PRAGMA table_info(ledger)")}
        if "state" not in columns:  # took slot 6 while it was reserved and empty
            db.executescript(f"BEGIN;\n{LEDGER_STATES}\nCOMMIT;")

    async def close(self, timeout: float | None = None) -> bool:
        """Finish the queued calls and close; False if they did not end within ``timeout``."""
        return await self._worker.close(timeout)

    # -- the two doors ---------------------------------------------------------

    async def read(self, fn: Callable[[sqlite3.Connection], T], *, what: str = "read") -> T:
        """Run ``fn(connection)`` on the store's thread (queries only)."""
        try:
            return await self._worker.read(fn, what=what)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path} ({what}): {exc}") from exc

    async def write(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        what: str,
        durable: bool = False,
        retry: bool = False,
    ) -> T:
        """Run ``fn(connection)`` in one write transaction; its result.

        The transaction commits, or rolls back if ``fn`` raises, and always
        ends before this returns, even when the caller is cancelled.
        ``durable``: synced to disk first (``synchronous=FULL``): for money and
        for what a client is told is saved. Raises `StoreUnavailable` when the
        disk is in trouble (full, failing, locked), unless ``retry``: then the
        write is tried again with backoff until it succeeds or the caller is
        cancelled, and `trouble` says why meanwhile. Other database errors
        raise `StoreError`.
        """
        delay = RETRY_FIRST_S
        attempt = 0
        key = object()
        try:
            while True:
                try:
                    result = await self._worker.write(fn, durable=durable, what=what)
                except sqlite3.Error as exc:
                    if not _transient(exc):
                        raise StoreError(f"cannot write {what} to {self.path}: {exc}") from exc
                    problem = trouble_text(exc)
                    if not retry:
                        raise StoreUnavailable(
                            f"cannot write {what} to {self.path}: {problem}"
                        ) from exc
                    attempt += 1
                    self.retries += 1
                    self._waiting[id(key)] = what
                    self._set_trouble(problem)
                    if attempt == 1 or attempt % 20 == 0:
                        log.warning(
                            "cannot write %s to %s: %s; retrying (attempt %d)",
                            what,
                            self.path,
                            problem,
                            attempt,
                        )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
                    continue
                if attempt:
                    log.info("wrote %s after %d failed attempts", what, attempt)
                if self.trouble is not None:
                    self._set_trouble(None)
                return result
        finally:
            self._waiting.pop(id(key), None)

    def _set_trouble(self, problem: str | None) -> None:
        if problem == self.trouble:
            return
        self.trouble = problem
        if self.on_trouble is not None:
            try:
                self.on_trouble(problem)
            except Exception:
                log.exception("a disk trouble observer failed")

    def unwritten(self) -> list[str]:
        """What writes still queued, running or waiting out disk trouble were to write."""
        return [*self._waiting.values(), *self._worker.unfinished()]

    # -- the journal's batches ---------------------------------------------------

    async def commit(self, batch: Batch, *, durable: bool = False, retry: bool = False) -> None:
        """Commit a batch in one transaction (see `write` for ``durable`` and ``retry``)."""
        first = batch.events[0] if batch.events else None
        what = (
            f"{len(batch.events)} events (session {first.session}, seq {first.seq}..)"
            if first is not None
            else "session records"
        )
        await self.write(
            lambda db: _write_batch(db, batch), what=what, durable=durable, retry=retry
        )

    # -- reads -------------------------------------------------------------

    async def sessions(
        self,
        *,
        cwd: str | None = None,
        include_archived: bool = False,
        limit: int = 100,
    ) -> list[SessionInfo]:
        """Sessions, most recently active first."""
        clauses, params = [], []
        if cwd is not None:
            clauses.append("cwd = ?")
            params.append(cwd)
        if not include_archived:
            clauses.append("archived = 0")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT info FROM sessions {where} ORDER BY updated_at DESC LIMIT ?"
        rows = await self.read(lambda db: db.execute(query, (*params, limit)).fetchall())
        return [_info_decoder.decode(row[0]) for row in rows]

    async def count_sessions(self) -> int:
        row = await self.read(lambda db: db.execute("SELECT count(*) FROM sessions").fetchone())
        return int(row[0]) if row else 0

    async def session_ids_with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        """Ids starting with ``prefix`` (to resolve a short id the user typed)."""
        upper = prefix + "\U0010ffff"
        rows = await self.read(
            lambda db: db.execute(
                "SELECT id FROM sessions WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
                (prefix, upper, limit),
            ).fetchall()
        )
        return [str(row[0]) for row in rows]

    async def session(self, session_id: str) -> SessionInfo | None:
        row = await self.read(
            lambda db: db.execute(
                "SELECT info FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
        )
        return _info_decoder.decode(row[0]) if row else None

    async def events(
        self, session_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[tuple[int, bytes]]:
        """(seq, body) of durable events after ``after``, in order."""
        rows = await self.read(
            lambda db: db.execute(
                "SELECT seq, body FROM events WHERE session = ? AND seq > ? ORDER BY seq LIMIT ?",
                (session_id, after, -1 if limit is None else limit),
            ).fetchall(),
            what="read events",
        )
        return [(int(row[0]), bytes(row[1])) for row in rows]

    async def events_tail(self, session_id: str, count: int) -> list[tuple[int, bytes]]:
        """The last ``count`` durable events, in order."""
        rows = await self.read(
            lambda db: db.execute(
                "SELECT seq, body FROM events WHERE session = ? ORDER BY seq DESC LIMIT ?",
                (session_id, count),
            ).fetchall()
        )
        found = [(int(row[0]), bytes(row[1])) for row in rows]
        found.reverse()
        return found

    async def event_types(self, session_id: str, types: Iterable[str]) -> list[tuple[int, bytes]]:
        """(seq, body) of the session's events of the given types, in order."""
        wanted = list(types)
        marks = ", ".join("?" for _ in wanted)
        rows = await self.read(
            lambda db: db.execute(
                f"SELECT seq, body FROM events WHERE session = ? AND type IN ({marks})"
                " ORDER BY seq",
                (session_id, *wanted),
            ).fetchall()
        )
        return [(int(row[0]), bytes(row[1])) for row in rows]

    async def messages(self, session_id: str) -> list[tuple[int, Message]]:
        """The transcript as (seq, message), in order."""
        rows = await self.read(
            lambda db: db.execute(
                "SELECT seq, body FROM messages WHERE session = ? ORDER BY idx", (session_id,)
            ).fetchall()
        )
        return [(int(row[0]), message_decoder.decode(row[1])) for row in rows]

    async def tool_output(self, session_id: str, call_id: str) -> str | None:
        row = await self.read(
            lambda db: db.execute(
                "SELECT output FROM tool_outputs WHERE session = ? AND call_id = ?",
                (session_id, call_id),
            ).fetchone()
        )
        return str(row[0]) if row else None


def _write_batch(db: sqlite3.Connection, batch: Batch) -> None:
    if batch.events:
        db.executemany(
            "INSERT INTO events (session, seq, type, ts, body) VALUES (?, ?, ?, ?, ?)",
            batch.events,
        )
    if batch.messages:
        db.executemany(
            "INSERT OR REPLACE INTO messages (session, idx, seq, body) VALUES (?, ?, ?, ?)",
            [(m.session, m.idx, m.seq, message_encoder.encode(m.message)) for m in batch.messages],
        )
    if batch.sessions:
        db.executemany(
            "INSERT INTO sessions (id, cwd, created_at, updated_at, archived, info)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at,"
            " archived = excluded.archived, info = excluded.info",
            [
                (s.id, s.cwd, s.created_at, s.updated_at, int(s.archived), _info_encoder.encode(s))
                for s in batch.sessions
            ],
        )
    if batch.tool_outputs:
        db.executemany(
            "INSERT OR REPLACE INTO tool_outputs (session, call_id, output) VALUES (?, ?, ?)",
            batch.tool_outputs,
        )
