"""One frontend of `fanout_under_load.py` (run as a subprocess).

Attaches to the sessions named (the probe first), prints "ready", then one
JSON line once the probe's turn has completed: for every probe token, its
request number, index and arrival time.
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


async def drain(
    view: object, sink: list[tuple[int, int, float]] | None, done: asyncio.Event
) -> None:
    async for item in view:  # type: ignore[attr-defined]
        now = time.monotonic()
        if isinstance(item, p.MessageDelta) and sink is not None:
            sink.extend((int(r), int(i), now) for r, i in TOKEN.findall(item.text))
        elif isinstance(item, p.TurnCompleted) and sink is not None:
            done.set()
            return


async def main(runtime: str, probe: str, *others: str) -> None:
    client = await Client.connect(Path(runtime), name="bench-load")
    async with client:
        views = [await client.attach(session) for session in (probe, *others)]
        received: list[tuple[int, int, float]] = []
        done = asyncio.Event()
        tasks = [asyncio.create_task(drain(views[0], received, done))]
        tasks += [asyncio.create_task(drain(view, None, done)) for view in views[1:]]
        print("ready", flush=True)
        await done.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"probe": received}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
