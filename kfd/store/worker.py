"""The one thread that owns the SQLite connection.

Every query of the daemon runs here, as one plain function of the
connection (``fn(conn)``), so no statement blocks the event loop and no
transaction spans two hops of a thread: a write is BEGIN, the statements,
COMMIT (or ROLLBACK) inside a single call. Cancelling the coroutine that
waits for a write therefore cannot leave a transaction open: the thread
finishes the call whatever happens to the waiter, and the waiter learns the
outcome before its cancellation goes on (`Worker.write` waits it out).

After any failure the connection is left outside a transaction (rolled back,
or closed and opened again when even that fails), so one bad write never
makes the next one fail ("cannot start a transaction within a transaction").

The thread is a daemon thread: a write stuck on a dead disk cannot keep the
process from exiting once the shutdown deadline has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

Job = Callable[[sqlite3.Connection], Any]

CLOSED = "the database is closed"


class _Stop:
    """Ends the thread's loop."""


class Worker:
    """A thread with one SQLite connection; `read` and `write` run functions on it."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._jobs: queue.SimpleQueue[tuple[Job, asyncio.Future[Any], str] | _Stop] = (
            queue.SimpleQueue()
        )
        self._conn: sqlite3.Connection | None = None
        self._running: dict[int, str] = {}
        """What the calls queued or running are doing, by id (for the shutdown log)."""
        self._thread = threading.Thread(target=self._loop, name="kfd-store", daemon=True)
        self._loop_ref: asyncio.AbstractEventLoop | None = None

    # -- the event loop's side ------------------------------------------------

    async def start(self) -> None:
        self._loop_ref = asyncio.get_running_loop()
        self._thread.start()
        await self.read(lambda _: None, what="open the database")

    async def read(self, fn: Callable[[sqlite3.Connection], T], *, what: str = "read") -> T:
        """Run ``fn(conn)``; cancelling the caller leaves the thread to finish it."""
        result: T = await self._submit(fn, what)
        return result

    async def write(
        self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = False, what: str
    ) -> T:
        """Run ``fn(conn)`` in one write transaction: committed, or rolled back on error.

        ``durable``: synced to disk before it returns (``synchronous=FULL``).
        The transaction always ends, and this returns (or raises) only once it
        has: a cancellation that arrives meanwhile is raised afterwards.
        """

        def transaction(conn: sqlite3.Connection) -> T:
            return self._transaction(conn, fn, durable)

        future = self._submit(transaction, what)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await _outcome(future)
            raise

    def unfinished(self) -> list[str]:
        """What the calls still queued or running were to do."""
        return list(self._running.values())

    async def close(self, timeout: float | None = None) -> bool:
        """Finish what is queued, close the connection; False if it did not end in time."""
        if not self._thread.is_alive():
            return True
        self._jobs.put(_Stop())
        await asyncio.to_thread(self._thread.join, timeout)
        return not self._thread.is_alive()

    def _submit(self, fn: Job, what: str) -> asyncio.Future[Any]:
        loop = self._loop_ref or asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._thread.is_alive():
            future.set_exception(sqlite3.OperationalError(CLOSED))
            return future
        key = id(future)
        self._running[key] = what
        future.add_done_callback(lambda _: self._running.pop(key, None))
        self._jobs.put((fn, future, what))
        return future

    # -- the thread's side -------------------------------------------------------

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if isinstance(job, _Stop):
                break
            fn, future, _ = job
            try:
                conn = self._connection()
                result = fn(conn)
            except BaseException as exc:
                self._settle(future, None, exc)
            else:
                self._settle(future, result, None)
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def _settle(self, future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
        def settle() -> None:
            # Done already: the waiter was cancelled and nobody reads it (reads).
            if future.done():
                return
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)

        loop = self._loop_ref
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode survives a process crash (kill -9); only power
                # loss may drop the last commits. Durable writes ask for FULL.
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _transaction(
        self, conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], durable: bool
    ) -> T:
        if conn.in_transaction:  # never expected: a transaction always ends below
            self._reset(conn)
            conn = self._connection()
        if durable:
            conn.execute("PRAGMA synchronous=FULL")
        try:
            conn.execute("BEGIN IMMEDIATE")
            result = fn(conn)
            conn.execute("COMMIT")
            return result
        except BaseException:
            self._reset(conn)
            raise
        finally:
            if durable and self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("PRAGMA synchronous=NORMAL")

    def _reset(self, conn: sqlite3.Connection) -> None:
        """Leave no transaction open: roll back, or start a fresh connection."""
        if not conn.in_transaction:
            return
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("rollback failed (%s); opening the database again", exc)
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            self._conn = None


async def _outcome(future: asyncio.Future[Any]) -> None:
    """Wait until ``future`` is done, whatever cancellations arrive meanwhile."""
    while not future.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([future])
    with contextlib.suppress(BaseException):
        future.result()
