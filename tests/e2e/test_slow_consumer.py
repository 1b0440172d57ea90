"""A frontend that stops reading (a REPL in a suspended terminal) is told what it
missed, re-syncs by itself, never loses a lifecycle event, and costs the daemon a
bounded amount of memory meanwhile."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from kfd.daemon.outbox import ITEM_OVERHEAD
from kfd.testing import Reply, ScriptedModelServer
from kfd.testing.events import collect_until, turn_completed

HERE = Path(__file__).parent
QUEUE_KIB = 256


async def test_a_suspended_frontend_is_told_what_it_missed_and_catches_up(
    make_daemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    # In FAST_RETRIES' [model]: an answer of 3 MB, past 2x the default output limit.
    long_answers = "max_output_tokens = 4_000_000\n"
    daemon = make_daemon(f"{long_answers}[daemon]\nclient_queue_kib = {QUEUE_KIB}\n")
    model_server.add(Reply(text="y" * 3_000_000, chunk_chars=4096))
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        slow = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "slow_client.py"),
            str(daemon.runtime_dir),
            info.id,
            env=daemon.env,
            stdout=asyncio.subprocess.PIPE,
        )
        assert slow.stdout is not None
        assert (await asyncio.wait_for(slow.stdout.readline(), 20)).strip() == b"ready"
        slow.send_signal(signal.SIGSTOP)  # Ctrl-Z in its terminal
        try:
            async with await client.attach(info.id) as view:
                await client.send(info.id, "say a lot")
                history = await collect_until(view, turn_completed, timeout=60)
            assert history[-1].stop_reason == "end_turn"
            status = await client.status()
            [behind] = [f for f in status.frontends if f.name == "slow-client"]
            assert behind.shed_events > 0
            # Bounded: the queue never held much more than its limit, although
            # the turn produced over 6 MB of events for it (deltas and message).
            assert behind.peak_queued_bytes <= QUEUE_KIB * 1024 + 64 * ITEM_OVERHEAD
        finally:
            slow.send_signal(signal.SIGCONT)
        out, _ = await asyncio.wait_for(slow.communicate(), 60)
    items = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    kinds = [item["type"] for item in items]
    assert "events.dropped" in kinds  # told, not silently starved
    assert kinds[-1] == "turn.completed"  # and it learned that the turn ended
    durable = [item["seq"] for item in items if not item["ephemeral"]]
    assert durable == list(range(durable[0], durable[-1] + 1))  # each once, in order
    assert {"message.user", "turn.started", "message.completed"} <= set(kinds)
    assert slow.returncode == 0
