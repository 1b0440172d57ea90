"""One frontend of `fanout_under_load.py` (run as a subprocess).

Attaches to the sessions named (the probe first), prints "ready", then one
JSON line once the probe's turn has completed: for every probe token, its
request number, index and arrival time; the deltas and drop markers it met;
the CPU seconds this process spent from "ready" on.

The probe's text is put together by offset, as a frontend shows it: the
daemon may cut a delta anywhere (it coalesces tokens, and holds back the end
of a chunk that could begin a secret), so a token can arrive in two pieces;
it counts as arrived when its last piece does.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path

from kfd import protocol as p
from kfd.client import Client

TOKEN = re.compile(r"r(\d+)i(\d+)\.")


class Probe:
    """The probe's streamed text, and when each token completed."""

    def __init__(self) -> None:
        self.text: dict[str, str] = {}
        self.scanned: dict[str, int] = {}
        self.arrived: list[tuple[int, int, float]] = []
        self.misplaced = 0
        self.dropped = 0
        self.deltas = 0

    def take(self, delta: p.MessageDelta, now: float) -> None:
        self.deltas += 1
        text = self.text.get(delta.message_id, "")
        if delta.offset != len(text):
            self.misplaced += 1  # the attachment hands over text in order, once
            return
        text += delta.text
        self.text[delta.message_id] = text
        start = self.scanned.get(delta.message_id, 0)
        end = start
        for match in TOKEN.finditer(text, start):
            self.arrived.append((int(match[1]), int(match[2]), now))
            end = match.end()
        self.scanned[delta.message_id] = end


async def drain(view: object, probe: Probe | None, done: asyncio.Event) -> None:
    async for item in view:  # type: ignore[attr-defined]
        if probe is None:
            continue
        if isinstance(item, p.MessageDelta) and item.kind == "text":
            probe.take(item, time.monotonic())
        elif isinstance(item, p.EventsDropped):
            probe.dropped += 1
        elif isinstance(item, p.TurnCompleted):
            done.set()
            return


async def main(runtime: str, probe_id: str, *others: str) -> None:
    client = await Client.connect(Path(runtime), name="bench-load")
    async with client:
        views = [await client.attach(session) for session in (probe_id, *others)]
        probe = Probe()
        done = asyncio.Event()
        tasks = [asyncio.create_task(drain(views[0], probe, done))]
        tasks += [asyncio.create_task(drain(view, None, done)) for view in views[1:]]
        print("ready", flush=True)
        cpu_at_ready = time.process_time()
        await done.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(
        json.dumps(
            {
                "probe": probe.arrived,
                "misplaced": probe.misplaced,
                "dropped": probe.dropped,
                "deltas": probe.deltas,
                "cpu": time.process_time() - cpu_at_ready,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
