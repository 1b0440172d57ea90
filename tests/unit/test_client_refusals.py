"""The client library against a stand-in daemon on a real ROUTER socket: what
it does with refusals it cannot match, and with ``overloaded``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import zmq
import zmq.asyncio

from kfd import protocol as p
from kfd.client import Client, RequestFailed

Answer = Callable[[dict], bytes | None]


class StandIn:
    """A ROUTER on rpc.sock and an XPUB on events.sock that answer as told."""

    def __init__(self, directory: Path) -> None:
        self.context = zmq.asyncio.Context()
        self.rpc = self.context.socket(zmq.ROUTER)
        self.rpc.bind(f"ipc://{directory / 'rpc.sock'}")
        self.events = self.context.socket(zmq.XPUB)
        self.events.setsockopt(zmq.XPUB_VERBOSER, 1)
        self.events.bind(f"ipc://{directory / 'events.sock'}")
        self.answers: list[Answer] = []
        self.seen: list[dict] = []
        self._tasks = [
            asyncio.create_task(self._serve()),
            asyncio.create_task(self._presence()),
        ]

    async def _serve(self) -> None:
        while True:
            identity, body = await self.rpc.recv_multipart()
            request = json.loads(body)
            self.seen.append(request)
            if request["method"] == "daemon.hello":
                result = {
                    "protocol": 1,
                    "version": "x",
                    "daemon_id": "d",
                    "pid": 1,
                    "frontend_id": "f",
                }
                reply = json.dumps({"id": request["id"], "ok": True, "result": result}).encode()
            else:
                reply = self.answers.pop(0)(request) if self.answers else None
            if reply is not None:
                await self.rpc.send_multipart([identity, reply])

    async def _presence(self) -> None:
        while True:
            message = await self.events.recv()
            if message[:1] == b"\x01" and message[1:].startswith(b"~sync."):
                await self.events.send_multipart([message[1:], b"{}"])

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.rpc.close(0)
        self.events.close(0)
        self.context.term()


@pytest.fixture
async def stand_in(tmp_path: Path) -> AsyncIterator[StandIn]:
    daemon = StandIn(tmp_path)
    yield daemon
    await daemon.close()


def refuse(code: str, *, with_id: bool) -> Answer:
    def answer(request: dict) -> bytes:
        return json.dumps(
            {
                "id": request["id"] if with_id else "",
                "ok": False,
                "error": {"code": code, "message": code},
            }
        ).encode()

    return answer


def ok(request: dict) -> bytes:
    return json.dumps({"id": request["id"], "ok": True, "result": {}}).encode()


async def test_an_id_less_refusal_fails_the_oldest_waiting_request_at_once(
    stand_in: StandIn, tmp_path: Path
) -> None:
    stand_in.answers = [refuse("bad_request", with_id=False)]
    async with await Client.connect(tmp_path, timeout=5) as client:
        started = asyncio.get_running_loop().time()
        with pytest.raises(RequestFailed) as failed:
            await client.request(p.Shutdown(id=""), timeout=20)
        assert failed.value.code == "bad_request"
        assert asyncio.get_running_loop().time() - started < 5  # not the 20 s timeout


async def test_overloaded_requests_are_retried_with_backoff_until_answered(
    stand_in: StandIn, tmp_path: Path
) -> None:
    stand_in.answers = [
        refuse("overloaded", with_id=True),
        refuse("overloaded", with_id=False),
        ok,
    ]
    async with await Client.connect(tmp_path, timeout=5) as client:
        await client.request(p.Shutdown(id=""), timeout=20)
    shutdowns = [r for r in stand_in.seen if r["method"] == "daemon.shutdown"]
    assert len(shutdowns) == 3
    assert len({r["id"] for r in shutdowns}) == 3  # each attempt under its own id


async def test_other_refusals_are_not_retried(stand_in: StandIn, tmp_path: Path) -> None:
    stand_in.answers = [refuse("conflict", with_id=True), ok]
    async with await Client.connect(tmp_path, timeout=5) as client:
        with pytest.raises(RequestFailed, match="conflict"):
            await client.request(p.Shutdown(id=""), timeout=5)
    assert [r["method"] for r in stand_in.seen].count("daemon.shutdown") == 1


async def test_a_request_too_large_to_send_is_refused_by_the_client(
    stand_in: StandIn, tmp_path: Path
) -> None:
    async with await Client.connect(tmp_path, timeout=5) as client:
        with pytest.raises(RequestFailed) as failed:
            await client.send("s1", "x" * (p.MAX_REQUEST_BYTES + 10))
    assert failed.value.code == "too_large"
    assert all(r["method"] != "message.send" for r in stand_in.seen)
