"""Fan-out to 16 clients: over the local socket, and over CURVE TCP.

A model chunk leaving the model server -> its delta at each of 16 client
processes (monotonic clock, shared by every process of the machine and by
network namespaces), while the model streams 1,000 chunks a second:

- ``ipc``: clients on the daemon's local socket (the baseline);
- ``curve tcp 127.0.0.1``: the same clients over CURVE-encrypted TCP on
  loopback (what encryption, authentication and TCP cost);
- ``curve tcp, namespaces``: the daemon in one network namespace, the
  clients in another, across a veth pair (as root; skipped otherwise).

    .venv/bin/python bench/remote_fanout.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import daemon, machine, summary, workspace
from stream_server import StreamServer

from kfd.client.remote import pin
from kfd.remote import parse_endpoint
from kfd.testing.netns import NamespacePair, SameHost, why_no_namespaces
from kfd.testing.remote import RemoteWorld

HERE = Path(__file__).parent
CLIENTS = 16
RATE = 1000.0


async def measure(server: StreamServer, session: str, start: Any, spawn: Any) -> str:
    subscribers = [spawn() for _ in range(CLIENTS)]
    for sub in subscribers:
        assert sub.stdout is not None
        line = sub.stdout.readline().strip()
        assert line == "ready", line
    await start()
    results = [json.loads(sub.communicate(timeout=300)[0]) for sub in subscribers]
    latencies = [
        (arrived - server.sent[index]) * 1000
        for result in results
        for index, arrived in result["received"]
    ]
    complete = all(
        sorted(i for i, _ in result["received"]) == list(range(server.chunks)) for result in results
    )
    return f"chunk->client {summary(latencies)}; every chunk at every client once: {complete}"


async def over_ipc(chunks: int) -> str:
    server = StreamServer(chunks, RATE)
    kfd = daemon(server.base_url).start()
    try:
        async with await kfd.client() as client:
            info = await client.create_session(workspace())

            def spawn() -> subprocess.Popen[str]:
                return _subscriber(str(kfd.runtime_dir), info.id, kfd.env)

            async def start() -> None:
                await client.send(info.id, "stream")

            return await measure(server, info.id, start, spawn)
    finally:
        kfd.close()
        server.close()


async def over_tcp(chunks: int, link: Any) -> str:
    server = link.on_daemon_side(lambda: StreamServer(chunks, RATE))
    world = RemoteWorld(link, server, heartbeat_s=1.0).start()
    # Pinned beforehand: sixteen clients need not each ask the key port.
    pin(parse_endpoint(world.endpoint), world.daemon_key(), world.known_daemons)
    try:
        async with await world.daemon.client() as client:  # a local client drives the turn
            info = await client.create_session(workspace())

            def spawn() -> subprocess.Popen[str]:
                return _subscriber(world.endpoint, info.id, world.env, link.client_argv)

            async def start() -> None:
                await client.send(info.id, "stream")

            return await measure(server, info.id, start, spawn)
    finally:
        world.close()
        server.close()


def _subscriber(
    target: str,
    session: str,
    env: dict[str, str],
    wrap: Callable[[list[str]], list[str]] = list,
) -> subprocess.Popen[str]:
    """A ``bench/subscriber.py`` process following ``session`` at ``target`` (a runtime
    directory or a ``tcp://`` endpoint); ``wrap`` runs it elsewhere (a namespace)."""
    argv = wrap([sys.executable, str(HERE / "subscriber.py"), target, session])
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, text=True, env=env | {"PYTHONPATH": str(HERE)}
    )


async def main() -> None:
    chunks = 1000 if "--quick" in sys.argv else 3000
    print(
        f"fan-out to {CLIENTS} clients, {chunks} chunks at {RATE:g}/s ({machine()}, "
        f"load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    print(f"ipc:                    {await over_ipc(chunks)}", flush=True)
    print(f"curve tcp 127.0.0.1:    {await over_tcp(chunks, SameHost())}", flush=True)
    why = why_no_namespaces()
    if why:
        print(f"curve tcp, namespaces:  skipped ({why})")
        return
    pair = NamespacePair()
    try:
        print(f"curve tcp, namespaces:  {await over_tcp(chunks, pair)}", flush=True)
    finally:
        pair.close()


if __name__ == "__main__":
    asyncio.run(main())
