"""Daemon memory with 10 idle sessions (each has had one turn)."""

from __future__ import annotations

import asyncio

from common import daemon, rss_kib, workspace

from kfd.testing import Reply, ScriptedModelServer
from kfd.testing.events import collect_until, turn_completed

SESSIONS = 10


async def main() -> None:
    repo = workspace()
    with ScriptedModelServer([Reply(text="hello " * 50) for _ in range(SESSIONS)]) as server:
        kfd = daemon(server.base_url).start()
        try:
            start_rss, _ = rss_kib(kfd.pid)
            async with await kfd.client() as client:
                for _ in range(SESSIONS):
                    info = await client.create_session(repo)
                    async with await client.attach(info.id) as view:
                        await client.send(info.id, "hi")
                        await collect_until(view, turn_completed)
            current, peak = rss_kib(kfd.pid)
        finally:
            kfd.close()
    print(
        f"daemon memory: {start_rss / 1024:.1f} MiB at start; with {SESSIONS} idle sessions "
        f"{current / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB"
    )


if __name__ == "__main__":
    asyncio.run(main())
