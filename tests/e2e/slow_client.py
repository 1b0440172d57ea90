"""A frontend as its own process, for the slow-consumer tests: attach, print every
item as one JSON line (type, seq, ephemeral), exit after ``turn.completed``.

``slow_client.py RUNTIME_DIR SESSION`` attaches over the local socket;
``slow_client.py - SESSION ENDPOINT`` over CURVE TCP (keys and pins under
``$XDG_CONFIG_HOME``), with a small receive buffer so that a stopped client
backs up into the daemon's queue rather than the kernel's.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import zmq

from kfd import protocol as p
from kfd.client import Client, Remote


class SmallBuffers(Client):
    """A client whose event socket's kernel buffer is 64 KiB (no autotuning)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._sub.setsockopt(zmq.RCVBUF, 64 * 1024)


async def main(runtime: str, session: str, endpoint: str = "") -> None:
    if endpoint:
        # Heartbeats far apart: stopped, it stays connected (slow, not dead).
        remote = Remote("slow", endpoint, heartbeat_s=20.0)
        client = await SmallBuffers.connect(name="slow-client", remote=remote)
    else:
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
    asyncio.run(main(*sys.argv[1:]))
