"""One remote frontend for `remote_fanout.py` (run as a subprocess, maybe in a namespace).

Connects over CURVE TCP (its keys and pins under ``$XDG_CONFIG_HOME``),
attaches, prints "ready", then one JSON line: every token's index and the
monotonic time it arrived, and the number of events.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from kfd import protocol as p
from kfd.client import Client, Remote


async def main(endpoint: str, session: str) -> None:
    remote = Remote("bench", endpoint, heartbeat_s=1.0)
    client = await Client.connect(name="bench-remote", remote=remote)
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
