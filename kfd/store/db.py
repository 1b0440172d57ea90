"""The store: the one module that speaks SQL.

One SQLite file in WAL mode, opened through aiosqlite so no query blocks the
event loop. Writes arrive as batches from the journal and commit in one
transaction: a batch is durable entirely or not at all, so a crash at any
instant leaves a log without holes.

One connection serves the whole daemon. A transaction spans several awaits,
so a statement from elsewhere could land inside it (and roll back with it):
every write therefore goes through `Store.transaction`, which holds a lock
for the transaction's whole length. Reads use `Store.connection` freely.
The feature tables (memory, triggers, rules, the ledger) live in sibling
modules that use these two doors.

Why one connection: with two, a write transaction on one can fail at once
(SQLITE_BUSY_SNAPSHOT, no busy wait) when a read on it still holds a snapshot
older than the other's last commit. A single writer never races itself; money
gets its durability from ``transaction(durable=True)`` instead of a second
connection with ``synchronous=FULL``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import NamedTuple

import aiosqlite
import msgspec

from kfd.errors import StoreError, StoreUnavailable
from kfd.protocol import SessionInfo
from kfd.store.migrations import MIGRATIONS
from kfd.transcript import Message, message_decoder, message_encoder

_info_encoder = msgspec.json.Encoder()
_info_decoder = msgspec.json.Decoder(SessionInfo)


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


class Store:
    """The database. Open with `Store.open`; close with `close`."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self._write_lock = asyncio.Lock()
        self.path = path

    @property
    def connection(self) -> aiosqlite.Connection:
        """The connection, for reads. Write only inside `transaction`."""
        return self._db

    @asynccontextmanager
    async def transaction(self, *, durable: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """An exclusive write transaction: committed on exit, rolled back on error.

        ``durable``: the commit is synced to disk before it returns
        (``synchronous=FULL``), so not even power loss takes it back: for money.
        """
        async with self._write_lock:
            if durable:
                await self._db.execute("PRAGMA synchronous=FULL")
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    await self._db.execute("ROLLBACK")
                    raise
                await self._db.execute("COMMIT")
            finally:
                if durable:
                    await self._db.execute("PRAGMA synchronous=NORMAL")

    @classmethod
    async def open(cls, path: Path, *, busy_timeout_ms: int = 5000) -> Store:
        """Open (creating if needed) and migrate the database at ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {path}: {exc}") from exc
        store = cls(db, path)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a process crash (kill -9); only power
            # loss may drop the last commits. The ledger asks for FULL itself.
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            await store._migrate()
        except sqlite3.Error as exc:
            await db.close()
            raise StoreError(f"cannot prepare the database {path}: {exc}") from exc
        except BaseException:
            await db.close()
            raise
        path.chmod(0o600)
        return store

    async def _migrate(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the database {self.path} was written by a newer kfd (schema {version}, "
                f"this kfd knows {len(MIGRATIONS)}); upgrade kfd"
            )
        for number in range(version + 1, len(MIGRATIONS) + 1):
            # executescript commits first; user_version is set in the same script
            # so a crash cannot leave a migration applied but unrecorded.
            await self._db.executescript(
                f"BEGIN;\n{MIGRATIONS[number - 1]}\nPRAGMA user_version={number};\nCOMMIT;"
            )

    async def close(self) -> None:
        await self._db.close()

    # -- writes ------------------------------------------------------------

    async def write(self, batch: Batch) -> None:
        """Commit a batch in one transaction.

        Raises `StoreUnavailable` when the write may succeed later (the file is
        locked, the disk failed or is full); nothing of the batch is written.
        """
        try:
            await self._write(batch)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"cannot write to {self.path}: {exc}") from exc

    async def _write(self, batch: Batch) -> None:
        async with self.transaction() as db:
            if batch.events:
                await db.executemany(
                    "INSERT INTO events (session, seq, type, ts, body) VALUES (?, ?, ?, ?, ?)",
                    batch.events,
                )
            if batch.messages:
                await db.executemany(
                    "INSERT OR REPLACE INTO messages (session, idx, seq, body) VALUES (?, ?, ?, ?)",
                    [
                        (m.session, m.idx, m.seq, message_encoder.encode(m.message))
                        for m in batch.messages
                    ],
                )
            if batch.sessions:
                await db.executemany(
                    "INSERT INTO sessions (id, cwd, created_at, updated_at, archived, info)"
                    " VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at,"
                    " archived = excluded.archived, info = excluded.info",
                    [
                        (
                            s.id,
                            s.cwd,
                            s.created_at,
                            s.updated_at,
                            int(s.archived),
                            _info_encoder.encode(s),
                        )
                        for s in batch.sessions
                    ],
                )
            if batch.tool_outputs:
                await db.executemany(
                    "INSERT OR REPLACE INTO tool_outputs (session, call_id, output)"
                    " VALUES (?, ?, ?)",
                    batch.tool_outputs,
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
        async with self._db.execute(query, (*params, limit)) as cursor:
            return [_info_decoder.decode(row[0]) async for row in cursor]

    async def count_sessions(self) -> int:
        async with self._db.execute("SELECT count(*) FROM sessions") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def session_ids_with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        """Ids starting with ``prefix`` (to resolve a short id the user typed)."""
        upper = prefix + "\U0010ffff"
        async with self._db.execute(
            "SELECT id FROM sessions WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
            (prefix, upper, limit),
        ) as cursor:
            return [str(row[0]) async for row in cursor]

    async def session(self, session_id: str) -> SessionInfo | None:
        async with self._db.execute(
            "SELECT info FROM sessions WHERE id = ?", (session_id,)
        ) as cursor:
            row = await cursor.fetchone()
        return _info_decoder.decode(row[0]) if row else None

    async def events(
        self, session_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[tuple[int, bytes]]:
        """(seq, body) of durable events after ``after``, in order."""
        async with self._db.execute(
            "SELECT seq, body FROM events WHERE session = ? AND seq > ? ORDER BY seq LIMIT ?",
            (session_id, after, -1 if limit is None else limit),
        ) as cursor:
            return [(int(row[0]), bytes(row[1])) async for row in cursor]

    async def events_tail(self, session_id: str, count: int) -> list[tuple[int, bytes]]:
        """The last ``count`` durable events, in order."""
        async with self._db.execute(
            "SELECT seq, body FROM events WHERE session = ? ORDER BY seq DESC LIMIT ?",
            (session_id, count),
        ) as cursor:
            rows = [(int(row[0]), bytes(row[1])) async for row in cursor]
        rows.reverse()
        return rows

    async def event_types(self, session_id: str, types: Iterable[str]) -> list[tuple[int, bytes]]:
        """(seq, body) of the session's events of the given types, in order."""
        wanted = list(types)
        marks = ", ".join("?" for _ in wanted)
        async with self._db.execute(
            f"SELECT seq, body FROM events WHERE session = ? AND type IN ({marks}) ORDER BY seq",
            (session_id, *wanted),
        ) as cursor:
            return [(int(row[0]), bytes(row[1])) async for row in cursor]

    async def messages(self, session_id: str) -> list[tuple[int, Message]]:
        """The transcript as (seq, message), in order."""
        async with self._db.execute(
            "SELECT seq, body FROM messages WHERE session = ? ORDER BY idx", (session_id,)
        ) as cursor:
            return [(int(row[0]), message_decoder.decode(row[1])) async for row in cursor]

    async def tool_output(self, session_id: str, call_id: str) -> str | None:
        async with self._db.execute(
            "SELECT output FROM tool_outputs WHERE session = ? AND call_id = ?",
            (session_id, call_id),
        ) as cursor:
            row = await cursor.fetchone()
        return str(row[0]) if row else None
