"""A full disk under the state directory (a small tmpfs): every frontend is told,
the turn pauses instead of half-recording, and once space returns it finishes
with nothing lost. Needs root (to mount the tmpfs); skipped with a reason elsewhere."""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kfd import protocol as p
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import collect_until, turn_completed
from kfd.testing.fixtures import git_repo


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    where.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


@pytest.fixture
def small_state(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "kfd"
    state = root / "state"
    if not _mount_tmpfs(state, "24m"):
        pytest.skip("needs root and mount(8) to put the state directory on a small tmpfs")
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; the file."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(chunk)
                handle.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler


async def test_a_full_disk_is_told_to_every_frontend_and_the_turn_resumes_whole(
    small_state: Path, tmp_path: Path
) -> None:
    workspace = git_repo(tmp_path / "repo")
    server = ScriptedModelServer(
        [
            Reply(
                text="let me read it " * 30,
                tool_calls=[ScriptedToolCall("read", {"path": "README.md"}, id="call_read")],
                chunk_chars=4,
                chunk_delay_s=0.01,
            ),
            Reply(text="it is a demo"),
        ]
    ).start()
    daemon = KfdDaemon(model=server, root=small_state).start()
    try:
        async with await daemon.client(name="one") as one, await daemon.client(name="two") as two:
            info = await one.create_session(workspace, mode="auto")
            view_one = await one.attach(info.id)
            view_two = await two.attach(info.id)
            await one.send(info.id, "what is in the README?")
            await collect_until(view_one, lambda e: isinstance(e, p.MessageDelta))
            filler = fill(daemon.state_dir)

            told = []
            for view in (view_one, view_two):
                items = await collect_until(
                    view, lambda e: isinstance(e, p.DaemonTrouble) and e.problem != "", timeout=30
                )
                told.append(items[-1])
            for notice in told:
                assert notice.problem == "disk full"
                assert "cannot write to the state directory" in notice.message
                assert "retrying" in notice.message
            status = await two.status()
            assert status.trouble == "disk full"
            # Paused, not half-recorded: the tool has not started on disk, and
            # no second model request went out.
            with sqlite3.connect(daemon.database) as db:
                started = db.execute(
                    "SELECT count(*) FROM events WHERE type = 'tool.started'"
                ).fetchone()
            assert started == (0,)
            assert len(server.requests) == 1

            filler.unlink()
            history = await collect_until(view_one, turn_completed, timeout=60)
            assert history[-1].stop_reason == "end_turn"
            assert any(isinstance(e, p.DaemonTrouble) and e.problem == "" for e in history)
            await view_one.close()
            await view_two.close()

        with sqlite3.connect(daemon.database) as db:
            kinds = [row[0] for row in db.execute("SELECT type FROM events ORDER BY seq")]
            ledger = db.execute("SELECT state FROM ledger").fetchall()
        assert kinds.index("tool.requested") < kinds.index("tool.started")
        assert kinds.index("tool.started") < kinds.index("tool.completed")
        assert kinds.count("tool.completed") == 1
        assert ledger == [("completed",), ("completed",)] == [("completed",)] * len(server.requests)
        assert daemon.stop() == 0
    finally:
        daemon.close()
        server.stop()


async def test_a_stop_on_a_full_disk_exits_by_the_deadline_naming_what_it_could_not_write(
    small_state: Path, tmp_path: Path
) -> None:
    workspace = git_repo(tmp_path / "repo")
    server = ScriptedModelServer(
        [Reply(text="words " * 200, chunk_chars=6, chunk_delay_s=0.005)]
    ).start()
    daemon = KfdDaemon(
        model=server, root=small_state, config="[daemon]\nshutdown_timeout_s = 1\n"
    ).start()
    try:
        async with await daemon.client() as client:
            info = await client.create_session(workspace)
            async with await client.attach(info.id) as view:
                await client.send(info.id, "talk")
                await collect_until(view, lambda e: isinstance(e, p.MessageDelta))
                fill(daemon.state_dir)
                await collect_until(
                    view, lambda e: isinstance(e, p.DaemonTrouble) and e.problem != "", timeout=30
                )
        started = asyncio.get_running_loop().time()
        code = await asyncio.to_thread(daemon.stop, 30.0)
        took = asyncio.get_running_loop().time() - started
        assert code == 75  # EX_TEMPFAIL: stopped with writes unfinished
        assert took < 10
        said = (tmp_path / "kfd" / "daemon.stderr").read_text()
        assert "stopping without writing everything" in said
        assert f"session {info.id} events" in said  # exactly what was lost
        assert "disk full" in said
    finally:
        daemon.close()
        server.stop()
