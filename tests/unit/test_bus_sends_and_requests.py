"""The bus on real sockets: requests that arrive while it sends batches of
events are all answered, and the events arrive whole and in order.

The bus reads and writes its request socket without pyzmq's asyncio layer,
watching ZeroMQ's edge-triggered descriptor itself; a send can take the edge
of a request that arrived meanwhile, which must not leave it unread."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from kfd.daemon.bus import EVENTS_FRAME, Bus
from kfd.daemon.outbox import Delivery, Kind
from kfd.daemon.requests import peek_id

TOPIC = b"s" + b"0" * 19


class Echo:
    """Answers every request at once with its id."""

    def decode(self, identity: bytes, body: bytes) -> tuple[Any, bytes | None]:
        return json.loads(body), None

    async def answer(self, identity: bytes, body: bytes, request: Any) -> bytes:
        return json.dumps({"id": request["id"], "ok": True, "result": {}}).encode()

    def refusal(self, body: bytes, code: str, message: str) -> bytes:
        error = {"code": code, "message": message}
        return json.dumps({"id": peek_id(body), "ok": False, "error": error}).encode()


async def test_requests_sent_while_events_stream_out_are_all_answered(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    bus = Bus(runtime)
    bus.bind()
    serving = asyncio.create_task(bus.serve(Echo()))
    context = zmq.asyncio.Context()
    clients = []
    for index in range(4):
        client = context.socket(zmq.DEALER)
        client.setsockopt(zmq.LINGER, 0)
        client.setsockopt(zmq.ROUTING_ID, b"client-%d" % index)
        client.connect(f"ipc://{runtime / 'rpc.sock'}")
        clients.append(client)
    events, requests = 3000, 200
    stop = asyncio.Event()

    async def stream() -> None:
        for seq in range(1, events + 1):
            bus.publish(Delivery(TOPIC, b'{"seq": %d}' % seq, seq, Kind.DELTA))
            if seq % 10 == 0:
                await asyncio.sleep(0)
        stop.set()

    async def talk(client: zmq.asyncio.Socket, name: str) -> tuple[set[str], list[int]]:
        # One request at a time, the next once the last is answered: a request
        # the bus left unread would never be followed by another to wake it.
        answered: set[str] = set()
        seqs: list[int] = []
        waiting = ""
        async with asyncio.timeout(30):
            while len(answered) < requests or len(seqs) < events:
                if not waiting and len(answered) < requests:
                    waiting = f"{name}-{len(answered)}"
                    await client.send(json.dumps({"id": waiting, "method": "x"}).encode())
                frames = await client.recv_multipart()
                if frames[0] == EVENTS_FRAME:
                    seqs += [json.loads(body)["seq"] for body in frames[2::2]]
                else:
                    answered.add(json.loads(frames[0])["id"])
                    waiting = ""
        return answered, seqs

    try:
        for index, client in enumerate(clients):
            await client.send(json.dumps({"id": f"hello-{index}", "method": "x"}).encode())
            assert json.loads(await client.recv())["id"] == f"hello-{index}"
            bus.subscribe(b"client-%d" % index, [TOPIC.decode()], True)
        streaming = asyncio.create_task(stream())
        results = await asyncio.gather(
            *(talk(client, f"c{index}") for index, client in enumerate(clients))
        )
        await streaming
        for index, (answered, seqs) in enumerate(results):
            assert answered == {f"c{index}-{n}" for n in range(requests)}
            assert seqs == list(range(1, events + 1))
        assert stop.is_set()
    finally:
        for client in clients:
            client.close()
        context.term()
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        await bus.close()
