"""Garbage, oversize and hostile input on the bus: an error reply, the daemon up."""

from __future__ import annotations

import asyncio
import json

import pytest
import zmq
import zmq.asyncio

from kfd.daemon.bus import HARD_FRAME_BYTES
from kfd.protocol import MAX_REQUEST_BYTES
from kfd.testing.daemon import KfdDaemon


@pytest.fixture
async def raw(daemon: KfdDaemon):
    context = zmq.asyncio.Context()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"ipc://{daemon.runtime_dir / 'rpc.sock'}")

    async def ask(*frames: bytes, timeout: float = 5.0) -> dict:
        await sock.send_multipart(frames)
        if await sock.poll(timeout * 1000) == 0:
            raise TimeoutError("no reply")
        return json.loads(await sock.recv())

    yield ask
    sock.close()
    context.term()


async def assert_serving(daemon: KfdDaemon) -> None:
    async with await daemon.client() as client:
        status = await client.status()
    assert status.pid == daemon.pid


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        (b"not json at all", "one JSON object"),
        (b"[1, 2, 3]", "one JSON object"),
        (b"\xff\xfe\x00garbage", "one JSON object"),
        (b'{"method": "daemon.hello"}', "non-empty string `id`"),
        (b'{"id": 7, "method": "daemon.hello"}', "non-empty string `id`"),
        (b'{"id": "1", "method": "session.teleport"}', "unknown method 'session.teleport'"),
        (b'{"id": "1"}', "unknown method None"),
        (b'{"id": "1", "method": "session.create"}', "missing required field `cwd`"),
        (b'{"id": "1", "method": "session.create", "cwd": 42}', "Expected `str`"),
        (b'{"id": "1", "method": "session.set_mode", "session": "x", "mode": "yolo"}', "mode"),
        (b'{"id": "1", "method": "session.get", "session": "s404"}', "no session"),
        (b'{"id": "1", "method": "session.create", "cwd": "relative/dir"}', "absolute path"),
        (b'{"id": "1", "method": "session.create", "cwd": "/no/such/dir"}', "not a directory"),
        # No system call takes a NUL: refused as the request it is, in every method.
        (b'{"id": "1", "method": "daemon.status", "cwd": "/tmp\\u0000x"}', "`$.cwd`"),
        (b'{"id": "1", "method": "session.list", "cwd": "/tmp\\u0000x"}', "`$.cwd`"),
        (
            b'{"id": "1", "method": "rules.explain", "cwd": "/'
            + b"a" * 5000
            + b'", "command": "ls"}',
            "`$.cwd`",
        ),
        (b'{"id": "1", "method": "message.send", "session": "s1", "text": ""}', "empty"),
        (
            b'{"id": "1", "method": "approval.respond", "session": "s1",'
            b' "approval_id": "a", "decision": "maybe"}',
            "decision",
        ),
    ],
)
async def test_bad_requests_get_a_typed_error_and_the_daemon_serves_on(
    daemon: KfdDaemon, raw, frame: bytes, fragment: str
) -> None:
    reply = await raw(frame)
    assert reply["ok"] is False
    assert reply["error"]["code"] in {"bad_request", "not_found"}
    assert fragment in reply["error"]["message"]
    await assert_serving(daemon)


async def test_an_unknown_session_is_not_found(daemon: KfdDaemon, raw) -> None:
    reply = await raw(b'{"id": "9", "method": "turn.cancel", "session": "s0000000000000000000"}')
    assert reply == {
        "id": "9",
        "ok": False,
        "error": {"code": "not_found", "message": reply["error"]["message"]},
    }


async def test_several_frames_in_one_request_get_an_error(daemon: KfdDaemon, raw) -> None:
    reply = await raw(b'{"id": "1", "method": "daemon.hello"}', b"extra")
    assert reply["ok"] is False and "one frame" in reply["error"]["message"]
    await assert_serving(daemon)


async def test_an_oversized_request_is_refused_with_its_id_and_the_daemon_serves_on(
    daemon: KfdDaemon, raw
) -> None:
    body = b'{"id": "big", "method": "message.send", "session": "s", "text": "'
    body += b"x" * MAX_REQUEST_BYTES + b'"}'
    reply = await raw(body, timeout=20)
    assert (reply["id"], reply["ok"], reply["error"]["code"]) == ("big", False, "too_large")
    assert f"{MAX_REQUEST_BYTES:,}" in reply["error"]["message"]
    await assert_serving(daemon)


async def test_a_frame_past_the_hard_limit_is_dropped_and_the_daemon_serves_on(
    daemon: KfdDaemon, raw
) -> None:
    with pytest.raises(TimeoutError):
        await raw(b"x" * (HARD_FRAME_BYTES + 1), timeout=1)
    await assert_serving(daemon)


@pytest.mark.parametrize(
    "frame",
    [
        b'{"id": "deep", "method": "daemon.hello", "name": ' + b"[" * 1000 + b"]" * 1000 + b"}",
        b'{"id": "deep", "method": "daemon.hello", "x": ' + b'{"a":' * 1000 + b"1" + b"}" * 1001,
        b'{"id": "deep", "method": "daemon.hello", "name": ' + b"[" * 100_000,
    ],
    ids=["arrays", "objects", "unclosed"],
)
async def test_json_nested_a_thousand_deep_gets_a_too_deep_reply_with_its_id(
    daemon: KfdDaemon, raw, frame: bytes
) -> None:
    reply = await raw(frame)
    assert (reply["id"], reply["error"]["code"]) == ("deep", "too_deep")
    await assert_serving(daemon)


async def test_a_garbage_burst_leaves_legitimate_requests_answered(daemon: KfdDaemon) -> None:
    context = zmq.asyncio.Context()
    flooders = []
    for _ in range(4):
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"ipc://{daemon.runtime_dir / 'rpc.sock'}")
        flooders.append(sock)
    garbage = [
        b"\xff\xfe not json",
        b'{"id": "g", "method": 42}',
        b"[" * 5000,
        b'{"id": "g", "method": "session.create"}',
    ]
    stop = asyncio.Event()
    window = 400

    async def flood(sock: zmq.asyncio.Socket) -> tuple[int, int]:
        # Bursts of `window` frames as fast as they go, each burst's refusals
        # read back before the next: a flood that cannot outrun the test.
        sent = answered = 0
        while not stop.is_set():
            for index in range(window):
                await sock.send(garbage[index % len(garbage)])
            sent += window
            for _ in range(window):
                if not await sock.poll(10_000):
                    return sent, answered
                await sock.recv()
                answered += 1
        return sent, answered

    floods = [asyncio.create_task(flood(sock)) for sock in flooders]
    try:
        async with await daemon.client() as client:
            for _ in range(30):  # each must be answered while the flood goes on
                status = await client.status()
                assert status.pid == daemon.pid
    finally:
        stop.set()
        counts = await asyncio.gather(*floods)
        for sock in flooders:
            sock.close()
        context.term()
    sent = sum(s for s, _ in counts)
    answered = sum(a for _, a in counts)
    assert sent >= 4 * window
    assert answered == sent  # every garbage frame got its refusal too
    await assert_serving(daemon)


async def test_a_flood_of_garbage_leaves_the_daemon_answering(daemon: KfdDaemon, raw) -> None:
    for index in range(300):
        reply = await raw(json.dumps({"id": str(index), "method": index}).encode())
        assert reply["id"] == str(index)
    await assert_serving(daemon)


async def test_hostile_subscriptions_do_not_disturb_the_daemon(daemon: KfdDaemon) -> None:
    context = zmq.asyncio.Context()
    sub = context.socket(zmq.XSUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(f"ipc://{daemon.runtime_dir / 'events.sock'}")
    for message in (b"", b"\x05weird", b"\x01" + b"t" * 10_000, b"\x00never-subscribed"):
        await sub.send(message)
    sub.close()
    context.term()
    await assert_serving(daemon)
