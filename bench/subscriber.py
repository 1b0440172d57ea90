"""One attached frontend for the fan-out benchmarks (run as a subprocess).

``subscriber.py WHERE SESSION``: WHERE is the daemon's runtime directory (the
local socket), or a ``tcp://`` endpoint (CURVE, its keys and pins under
``$XDG_CONFIG_HOME``; maybe in a network namespace). Prints "ready" once
attached, then one JSON line: for every token received, its index and the
monotonic time it arrived; and the number of bus events.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from kfd import protocol as p
from kfd.client import Client, Remote


async def connect(where: str) -> Client:
    if where.startswith("tcp://"):
        remote = Remote("bench", where, heartbeat_s=1.0)
        return await Client.connect(name="bench-remote", remote=remote)
    return await Client.connect(Path(where), name="bench-subscriber")


async def main(where: str, session: str) -> None:
    client = await connect(where)
    async with client, await client.attach(session) as view:
        print("ready", flush=True)
        received: list[tuple[int, float]] = []
        events = 0
        async for item in view:
            now = time.monotonic()
            events += 1
            if isinstance(item, p.MessageDelta):
                for token in item.text.split(".")[:-1]:
                    received.append((int(token), now))
            elif isinstance(item, p.TurnCompleted):
                break
    print(json.dumps({"received": received, "events": events}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
