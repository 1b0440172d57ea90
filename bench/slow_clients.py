"""Memory held for frontends that stop reading (suspended terminals).

0, 1, 4 and 16 client processes attach to a session and are SIGSTOPped; the
session then streams a 12 MB answer. Printed: the daemon's peak RSS over the
idle baseline, what the daemon queued for each stopped client (its peak) and
how many events it shed, and whether every client, once resumed, caught up
to the end of the turn (via ``events.dropped`` and a re-sync from the log).

    .venv/bin/python bench/slow_clients.py
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

from common import daemon, machine, rss_kib, workspace

from kfd.testing import Reply, ScriptedModelServer

HERE = Path(__file__).parent
ANSWER_BYTES = 12_000_000


async def one_run(stopped: int) -> str:
    server = ScriptedModelServer([Reply(text="y" * ANSWER_BYTES, chunk_chars=8192)]).start()
    kfd = daemon(server.base_url, "[daemon]\nclient_queue_kib = 4096\n").start()
    try:
        async with await kfd.client(name="bench") as client:
            info = await client.create_session(workspace())
            baseline, _ = rss_kib(kfd.pid)
            clients = [
                subprocess.Popen(
                    [
                        sys.executable,
                        str(HERE / "load_subscriber.py"),
                        str(kfd.runtime_dir),
                        info.id,
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                    env=kfd.env | {"PYTHONPATH": str(HERE)},
                )
                for _ in range(stopped)
            ]
            for each in clients:
                assert each.stdout is not None
                assert each.stdout.readline().strip() == "ready"
                each.send_signal(signal.SIGSTOP)
            async with await client.attach(info.id) as view:
                await client.send(info.id, "probe: a long answer")
                async for item in view:
                    if type(item).__name__ == "TurnCompleted":
                        break
            status = await client.status()
            _, peak = rss_kib(kfd.pid)
            behind = [f for f in status.frontends if f.name == "bench-load"]
            for each in clients:
                each.send_signal(signal.SIGCONT)
            outputs = [each.communicate(timeout=300)[0] for each in clients]
            caught_up = all(
                each.returncode == 0 and "probe" in json.loads(out)
                for each, out in zip(clients, outputs, strict=True)
            )
        queued = max((f.peak_queued_bytes for f in behind), default=0)
        shed = sum(f.shed_events for f in behind)
        return (
            f"{stopped:>2} stopped clients: daemon peak RSS +{(peak - baseline) / 1024:.0f} MiB "
            f"over idle; most queued for one client {queued / 1024:.0f} KiB "
            f"(limit 4096 KiB); events shed {shed}; all caught up after resuming: {caught_up}"
        )
    finally:
        kfd.close()
        server.stop()


async def main() -> None:
    print(f"slow clients, one {ANSWER_BYTES / 1e6:.0f} MB answer ({machine()})", flush=True)
    for stopped in (0, 1, 4, 16):
        print(await one_run(stopped), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
