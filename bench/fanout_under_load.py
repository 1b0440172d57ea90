"""Fan-out and status latency under load: 0 or 20 busy sessions, 16 or 64 clients.

Every client process attaches to a probe session and to one of the busy
sessions (round-robin); every session streams a model answer at ``RATE``
tokens per second (a fast model; real ones stream 50-150). Measured:

- fan-out: a probe token leaving the model server -> its delta arriving at
  each client (monotonic clock, shared by the processes of the machine);
- status: round trips of ``daemon.status`` from one more client, every
  20 ms, while all of it runs;
- the daemon's CPU time and peak memory over the run.

    .venv/bin/python bench/fanout_under_load.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import daemon, machine, rss_kib, summary, workspace

HERE = Path(__file__).parent
RATE = 200.0
PROBE_TOKENS = 1000
BUSY_TOKENS = 1400


class TaggedStreamServer:
    """`tagged_stream_server.py` in its own process; `sent` once `dump` is called."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "tagged_stream_server.py"),
                str(RATE),
                str(PROBE_TOKENS),
                str(BUSY_TOKENS),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.sent: dict[tuple[int, int], float] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def dump(self) -> None:
        out, _ = self.process.communicate("dump\n", timeout=60)
        raw = json.loads(out)
        for key, when in raw.items():
            request, index = key.split(".")
            self.sent[(int(request), int(index))] = when

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in ticks of 10 ms


async def one_run(busy: int, clients: int) -> str:
    server = TaggedStreamServer()
    kfd = daemon(server.base_url).start()
    try:
        async with await kfd.client(name="bench") as client:
            repo = workspace()
            probe = await client.create_session(repo, title="probe")
            loaded = [await client.create_session(repo, title=f"busy {i}") for i in range(busy)]
            subscribers = []
            for index in range(clients):
                sessions = [probe.id] + ([loaded[index % busy].id] if busy else [])
                subscribers.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            str(HERE / "load_subscriber.py"),
                            str(kfd.runtime_dir),
                            *sessions,
                        ],
                        stdout=subprocess.PIPE,
                        text=True,
                        env=kfd.env | {"PYTHONPATH": str(HERE)},
                    )
                )
            for sub in subscribers:
                assert sub.stdout is not None
                assert sub.stdout.readline().strip() == "ready"
            cpu_before = cpu_seconds(kfd.pid)
            wall_before = time.monotonic()
            for session in loaded:
                await client.send(session.id, "busy work")
            await asyncio.sleep(0.5 if busy else 0)  # the busy streams are under way
            await client.send(probe.id, "probe")
            status_ms: list[float] = []
            deadline = time.monotonic() + PROBE_TOKENS / RATE
            while time.monotonic() < deadline:
                started = time.perf_counter()
                await client.status()
                status_ms.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.02)
            results = [json.loads(sub.communicate(timeout=300)[0]) for sub in subscribers]
            server.dump()
            cpu = cpu_seconds(kfd.pid) - cpu_before
            wall = time.monotonic() - wall_before
            _, peak_kib = rss_kib(kfd.pid)
        latencies = [
            (arrived - server.sent[(request, index)]) * 1000
            for result in results
            for request, index, arrived in result["probe"]
            if (request, index) in server.sent
        ]
        complete = all(len(result["probe"]) == PROBE_TOKENS for result in results)
        load = os.getloadavg()[0]
        return (
            f"{busy:>2} busy sessions, {clients:>2} clients (load average {load:.1f}): "
            f"fan-out {summary(latencies)}; "
            f"status {summary(status_ms)}; every probe token at every client: {complete}; "
            f"daemon CPU {cpu / wall * 100:.0f}%, peak RSS {peak_kib / 1024:.0f} MiB"
        )
    finally:
        kfd.close()
        server.close()


async def main() -> None:
    quick = "--quick" in sys.argv
    print(f"fan-out under load, streams at {RATE:g} tokens/s each ({machine()})", flush=True)
    for clients in (16,) if quick else (16, 64):
        for busy in (0, 20):
            print(await one_run(busy, clients), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
