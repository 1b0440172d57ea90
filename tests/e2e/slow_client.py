"""A frontend as its own process, for the slow-consumer test: attach, print every
item as one JSON line (type, seq, ephemeral), exit after ``turn.completed``."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from kfd import protocol as p
from kfd.client import Client


async def main(runtime: str, session: str) -> None:
    client = await Client.connect(Path(runtime), name="slow-client")
    async with client, await client.attach(session) as view:
        print("ready", flush=True)
        async for item in view:
            if isinstance(item, p.Event):
                kind = type(item).__struct_config__.tag
                line = {"type": kind, "seq": item.seq, "ephemeral": item.ephemeral}
                print(json.dumps(line), flush=True)
                if isinstance(item, p.TurnCompleted):
                    return


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
