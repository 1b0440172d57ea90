"""The store (a real SQLite file) and the journal: durable before visible."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from kfd.daemon.journal import Journal
from kfd.daemon.outbox import Delivery
from kfd.errors import StoreError
from kfd.protocol import MessageDelta, SessionInfo, SessionStatusChanged
from kfd.store.db import Batch, EventRow, Store
from kfd.store.migrations import MIGRATIONS


async def test_migrations_run_once_and_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kfd.db"
    store = await Store.open(path)
    await store.close()
    store = await Store.open(path)  # reopening runs nothing twice
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer kfd"):
        await Store.open(path)


async def test_a_batch_commits_entirely_or_not_at_all(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "kfd.db")
    info = SessionInfo(id="s1", cwd="/w", created_at=1, updated_at=1)
    await store.commit(Batch(events=[EventRow("s1", 1, "x", 1.0, b"{}")], sessions=[info]))
    duplicate = [EventRow("s1", 2, "x", 1.0, b"{}"), EventRow("s1", 1, "x", 1.0, b"{}")]
    with pytest.raises(StoreError, match="UNIQUE"):
        await store.commit(Batch(events=duplicate))
    assert [seq for seq, _ in await store.events("s1")] == [1]
    assert (await store.session("s1")) == info
    await store.close()


class Recorder:
    def __init__(self) -> None:
        self.published: list[tuple[bytes, bytes]] = []

    def __call__(self, delivery: Delivery) -> None:
        self.published.append((delivery.topic, delivery.body))


async def test_durable_events_are_on_disk_before_they_are_published(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "kfd.db")
    seen_on_disk: list[int] = []

    def publish(delivery: Delivery) -> None:
        # Called synchronously by the journal: check the disk right now.
        with sqlite3.connect(tmp_path / "kfd.db") as db:
            seen_on_disk.append(db.execute("SELECT count(*) FROM events").fetchone()[0])

    journal = Journal(store, publish)
    runner = asyncio.create_task(journal.run())
    futures = [
        journal.append(SessionStatusChanged(session="s1", seq=seq, status="running"))
        for seq in (1, 2, 3)
    ]
    await asyncio.gather(*futures)
    assert seen_on_disk and all(count >= 1 for count in seen_on_disk)
    assert seen_on_disk[-1] == 3
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    await store.close()


async def test_ephemeral_events_wait_behind_pending_durable_ones(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "kfd.db")
    recorder = Recorder()
    journal = Journal(store, recorder)
    journal.publish(MessageDelta(session="s1", seq=0, message_id="m", text="now", ephemeral=True))
    assert len(recorder.published) == 1  # nothing pending: straight out

    runner = asyncio.create_task(journal.run())
    durable = journal.append(SessionStatusChanged(session="s1", seq=1, status="running"))
    journal.publish(MessageDelta(session="s1", seq=1, message_id="m", text="after", ephemeral=True))
    assert len(recorder.published) == 1  # the delta waits for the durable event
    await durable
    await journal.drain()
    bodies = [body for _, body in recorder.published]
    assert b'"session.status"' in bodies[1] and b'"after"' in bodies[2]
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    await store.close()


async def test_a_failed_commit_publishes_nothing_durable(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "kfd.db")
    recorder = Recorder()
    journal = Journal(store, recorder)
    runner = asyncio.create_task(journal.run())
    await journal.append(SessionStatusChanged(session="s1", seq=1, status="running"))
    clash = journal.append(SessionStatusChanged(session="s1", seq=1, status="idle"))
    with pytest.raises(StoreError, match="UNIQUE"):
        await clash
    assert len(recorder.published) == 1
    assert journal.stats.failures
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    await store.close()


async def test_a_locked_database_delays_events_but_never_drops_them(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "kfd.db", busy_timeout_ms=10)
    troubles: list[str | None] = []
    store.on_trouble = troubles.append
    recorder = Recorder()
    journal = Journal(store, recorder)
    runner = asyncio.create_task(journal.run())
    other = sqlite3.connect(tmp_path / "kfd.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the file
    written = journal.append(SessionStatusChanged(session="s1", seq=1, status="running"))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(written), 0.3)
    assert recorder.published == []  # not on disk, so not shown
    assert store.retries >= 1
    assert store.trouble == "the database is locked by another process"
    assert any(s1.startswith("session s1 events 1..1") for s1 in journal.unwritten())
    other.execute("COMMIT")
    other.close()
    await asyncio.wait_for(written, 5)
    assert [seq for seq, _ in await store.events("s1")] == [1]
    assert len(recorder.published) == 1
    assert troubles == ["the database is locked by another process", None]
    assert store.trouble is None
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    await store.close()


async def test_a_cancelled_write_still_ends_its_transaction_and_the_next_one_works(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "kfd.db")
    started = threading.Event()
    release = threading.Event()

    def slow(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO trigger_firings VALUES ('t', 1, 1.0, '[]', 's', 0)")
        started.set()
        release.wait(5)

    writer = asyncio.create_task(store.write(slow, what="slow", durable=True))
    await asyncio.to_thread(started.wait, 5)
    writer.cancel()  # lands mid-transaction, as a SIGTERM during a ledger commit did
    await asyncio.sleep(0)
    assert not writer.done()  # the waiter waits for the transaction to end
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await writer
    # Committed whole, and the connection is outside any transaction again.
    assert await store.read(lambda db: db.in_transaction) is False
    rows = await store.read(lambda db: db.execute("SELECT name FROM trigger_firings").fetchall())
    assert rows == [("t",)]
    await store.write(
        lambda db: db.execute("UPDATE trigger_firings SET fired = 2"), what="next", durable=True
    )
    await store.close()


async def test_a_failed_write_rolls_back_and_leaves_the_connection_usable(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "kfd.db")

    def half(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO trigger_firings VALUES ('t', 1, 1.0, '[]', 's', 0)")
        raise RuntimeError("half way")

    with pytest.raises(RuntimeError, match="half way"):
        await store.write(half, what="half", durable=True)
    assert await store.read(lambda db: db.in_transaction) is False
    count = await store.read(
        lambda db: db.execute("SELECT count(*) FROM trigger_firings").fetchone()
    )
    assert count == (0,)
    await store.write(
        lambda db: db.execute("INSERT INTO trigger_firings VALUES ('u', 1, 1.0, '[]', 's', 0)"),
        what="after",
    )
    await store.close()


async def test_large_events_are_redacted_and_written_in_order_off_the_loop(tmp_path: Path) -> None:
    from kfd.protocol import ToolCompleted

    store = await Store.open(tmp_path / "kfd.db")
    recorder = Recorder()
    journal = Journal(store, recorder)
    runner = asyncio.create_task(journal.run())
    secret = "sk-ant-" + "a1" * 20
    big = ToolCompleted(
        session="s1", seq=1, call_id="c", name="bash", output="x" * 100_000 + " " + secret
    )
    first = journal.append(big, tool_output=("s1", "c", "y" * 200_000 + "\n" + secret))
    second = journal.append(SessionStatusChanged(session="s1", seq=2, status="idle"))
    await asyncio.gather(first, second)
    bodies = [body for _, body in recorder.published]
    assert len(bodies) == 2 and b"tool.completed" in bodies[0]  # in order
    assert secret.encode() not in bodies[0]
    stored = await store.tool_output("s1", "c")
    assert stored is not None and secret not in stored and "[redacted" in stored
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    await store.close()
