"""A FIFO wherever the daemon reads a file the workspace controls never holds it:
the model can ``mkfifo AGENTS.md`` in auto mode, and a plain ``open`` of it waits
for a writer that never comes, a worker thread lost each time, until every
session and decision hangs and SIGTERM no longer stops the daemon.

A real daemon, real FIFOs; every request is bounded by a timeout, so the old
behaviour fails instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from conversation import conversation_daemon, system_of

from kfd.testing import Reply
from kfd.testing.events import collect_until, turn_completed
from kfd.testing.fixtures import git_repo

SESSIONS = 6
"""More sessions than it took the old daemon to run out of threads."""


async def test_fifos_as_instruction_files_and_project_config_hold_nothing_up(
    tmp_path: Path,
) -> None:
    repo = git_repo(tmp_path / "repo")
    os.mkfifo(repo / "AGENTS.md")
    os.mkfifo(tmp_path / "planted")
    (repo / "CLAUDE.md").symlink_to(tmp_path / "planted")
    (repo / "KFD.md").write_text("KFD-OK: run make check.\n")
    (repo / ".kfd").mkdir()
    (repo / ".kfd" / "config.toml").symlink_to(tmp_path / "planted")

    with conversation_daemon() as (model, daemon):
        model.add(*[Reply(text="ok") for _ in range(SESSIONS)])
        async with await daemon.client() as client:
            async with asyncio.timeout(60):
                for _ in range(SESSIONS):
                    info = await client.create_session(repo)
                    async with await client.attach(info.id) as session:
                        await client.send(info.id, "hi")
                        await collect_until(session, turn_completed, timeout=30)
                explained = await client.explain("make check", cwd=repo)
                trust = await client.trust(repo)
            assert (await client.session(info.id)).status == "idle"
        assert daemon.stop(timeout=15) == 0, "SIGTERM did not stop the daemon"

    assert len(model.turn_requests()) == SESSIONS
    system = system_of(model.requests[0])
    assert "KFD-OK" in system
    assert "[AGENTS.md is left out, its content not shown: it is a FIFO" in system
    assert "[CLAUDE.md is left out, its content not shown: it is a FIFO" in system
    assert explained.decision == "ask"
    assert "FIFO" in trust.problem and str(repo / ".kfd" / "config.toml") in trust.problem


async def test_a_fifo_for_gits_index_or_a_trusted_file_is_unread_not_waited_on(
    tmp_path: Path,
) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / ".kfd").mkdir()
    config = repo / ".kfd" / "config.toml"
    config.write_text('[permissions]\nallow = ["bash(make *)"]\n')
    with conversation_daemon() as (_, daemon):
        async with await daemon.client() as client, asyncio.timeout(60):
            await client.set_trust(repo, (await client.trust(repo)).sha256)
            config.unlink()
            os.mkfifo(config)
            listing = await client.trusted_files()
            (repo / ".git" / "index").unlink(missing_ok=True)
            os.mkfifo(repo / ".git" / "index")
            explained = await client.explain("git grep TOKEN", cwd=repo)
            again = await client.trust(repo)
        assert daemon.stop(timeout=15) == 0, "SIGTERM did not stop the daemon"
    assert listing.changed == [str(config)]
    # Whichever reader meets the FIFO first (the submodules' search, the index's
    # tracked files), the index is unread and the command asks.
    assert explained.decision == "ask" and "read" in explained.reason
    assert "index" in explained.reason
    assert not again.trusted and "it is a FIFO (named pipe), not a regular file" in again.problem
