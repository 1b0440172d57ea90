"""What exact token counts cost the daemon: memory, and the first request's wait.

Two daemons run one turn each: one on a model kfd has no tokenizer for (the
estimate: nothing is loaded), one on ``gpt-4o`` (o200k_base, loaded in a
thread the first time a session on such a model asks the model). Printed:
the daemon's memory after the turn, and the time from sending the message to
the model's first request (the load happens in between, once per daemon).

    .venv/bin/python bench/token_counting.py
"""

from __future__ import annotations

import asyncio
import time

from common import daemon, rss_kib, workspace

from kfd.testing import Reply, ScriptedModelServer
from kfd.testing.events import collect_until, turn_completed


async def one_turn(model: str) -> tuple[float, float, float]:
    repo = workspace()
    with ScriptedModelServer([Reply(text="hello"), Reply(text="again")]) as server:
        kfd = daemon(server.base_url)
        kfd.env["KFD_MODEL"] = model
        kfd.start()
        try:
            start_rss, _ = rss_kib(kfd.pid)
            async with await kfd.client() as client:
                info = await client.create_session(repo)
                async with await client.attach(info.id) as view:
                    sent = time.monotonic()
                    await client.send(info.id, "hi")
                    first = await server.wait_for_request_async(0, timeout=60)
                    await collect_until(view, turn_completed)
                    wait_ms = (first.received_at - sent) * 1000
                    await client.send(info.id, "again")
                    await collect_until(view, turn_completed)
            current, _ = rss_kib(kfd.pid)
        finally:
            kfd.close()
    return start_rss / 1024, current / 1024, wait_ms


async def main() -> None:
    print("daemon memory and first-request wait, by how tokens are counted")
    for label, model in (
        ("estimate (scripted-model)", "scripted-model"),
        ("o200k (gpt-4o)", "gpt-4o"),
    ):
        start, after, wait = await one_turn(model)
        print(
            f"  {label:<26} {start:6.1f} MiB at start, {after:6.1f} MiB after two turns; "
            f"message to first model request {wait:7.1f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
