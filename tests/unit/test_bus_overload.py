"""The bus on real sockets with a stand-in handler: past MAX_IN_FLIGHT requests,
each new one is answered ``overloaded`` with its own id, at once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from kfd.daemon.bus import MAX_IN_FLIGHT, Bus
from kfd.daemon.requests import peek_id


class Stuck:
    """Answers nothing until released: every request stays in flight."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    def decode(self, identity: bytes, body: bytes) -> tuple[Any, bytes | None]:
        return json.loads(body), None

    async def answer(self, identity: bytes, body: bytes, request: Any) -> bytes:
        await self.release.wait()
        return json.dumps({"id": request["id"], "ok": True, "result": {}}).encode()

    def refusal(self, body: bytes, code: str, message: str) -> bytes:
        error = {"code": code, "message": message}
        return json.dumps({"id": peek_id(body), "ok": False, "error": error}).encode()


async def test_requests_past_the_limit_are_refused_overloaded_with_their_ids(
    tmp_path: Path,
) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    bus = Bus(runtime)
    bus.bind()
    handler = Stuck()
    serving = asyncio.create_task(bus.serve(handler))
    context = zmq.asyncio.Context()
    client = context.socket(zmq.DEALER)
    client.setsockopt(zmq.LINGER, 0)
    client.connect(f"ipc://{runtime / 'rpc.sock'}")
    try:
        extra = 40
        for index in range(MAX_IN_FLIGHT + extra):
            await client.send(json.dumps({"id": f"r{index}", "method": "x"}).encode())
        refused = []
        async with asyncio.timeout(10):
            while len(refused) < extra:
                refused.append(json.loads(await client.recv()))
        assert all(r["error"]["code"] == "overloaded" for r in refused)
        assert {r["id"] for r in refused} == {
            f"r{i}" for i in range(MAX_IN_FLIGHT, MAX_IN_FLIGHT + extra)
        }
        handler.release.set()  # the ones in flight are answered too
        answered = []
        async with asyncio.timeout(10):
            while len(answered) < MAX_IN_FLIGHT:
                answered.append(json.loads(await client.recv()))
        assert all(a["ok"] for a in answered)
    finally:
        client.close()
        context.term()
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        await bus.close()
