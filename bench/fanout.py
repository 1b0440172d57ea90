"""Event fan-out: model chunk leaving the model server -> delta at each client.

1, 4 and 16 attached client processes; the model streams 1,000 chunks per
second. Run with and without delta coalescing (``[daemon] delta_window_ms``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from common import daemon, machine, summary, workspace
from stream_server import StreamServer

HERE = Path(__file__).parent
CHUNKS = 3000
RATE = 1000.0


async def one_run(clients: int, window_ms: float) -> str:
    server = StreamServer(CHUNKS, RATE)
    kfd = daemon(server.base_url, f"[daemon]\ndelta_window_ms = {window_ms}\n").start()
    try:
        async with await kfd.client() as client:
            info = await client.create_session(workspace())
            subscribers = [
                subprocess.Popen(
                    [sys.executable, str(HERE / "subscriber.py"), str(kfd.runtime_dir), info.id],
                    stdout=subprocess.PIPE,
                    text=True,
                    env=kfd.env | {"PYTHONPATH": str(HERE)},
                )
                for _ in range(clients)
            ]
            for sub in subscribers:
                assert sub.stdout is not None
                assert sub.stdout.readline().strip() == "ready"
            await client.send(info.id, "stream")
            results = [json.loads(sub.communicate(timeout=120)[0]) for sub in subscribers]
        latencies = [
            (arrived - server.sent[index]) * 1000
            for result in results
            for index, arrived in result["received"]
        ]
        seconds = CHUNKS / RATE
        events = sum(result["events"] for result in results) / len(results) / seconds
        complete = all(sorted(i for i, _ in r["received"]) == list(range(CHUNKS)) for r in results)
        return (
            f"{clients:>2} clients, window {window_ms:g} ms: {events:,.0f} events/s per client; "
            f"chunk->client latency {summary(latencies)}; every chunk exactly once: {complete}"
        )
    finally:
        kfd.close()
        server.close()


async def main() -> None:
    print(f"fan-out, {CHUNKS} chunks at {RATE:g}/s ({machine()})")
    for window in (0.0, 4.0):
        for clients in (1, 4, 16):
            print(await one_run(clients, window), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
