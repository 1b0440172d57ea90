"""The model server of `fanout_under_load.py`, in a process of its own (its
work must not share a GIL with anything measured).

Prints its port; streams ``r<request>i<index>.`` tokens at ``RATE`` per second
(``PROBE`` tokens when the prompt says "probe", ``BUSY`` otherwise), each token
its own event-stream event in its own HTTP chunk, written and sent on its own,
as providers stream; on a line "dump" on stdin, prints when each token left, as
JSON, and exits.

Each token leaves at once: the socket has ``TCP_NODELAY``, as streaming
servers set it (nginx, uvicorn, asyncio by default). This server used to be
a thread per stream on `http.server`, with Nagle's algorithm on:
a token written while the previous one was not yet acknowledged waited in
this server's kernel for the daemon's (delayed) ACK, and the benchmark
counted that wait, 10-40 ms, as the daemon's fan-out latency. One thread and
one event loop now serve every stream, which also takes less of the two cores
the daemon and its frontends are measured on (21 threads taking turns at the
GIL cost about a fifth of a core for the same bytes at the same times).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

RATE = float(sys.argv[1]) if len(sys.argv) > 1 else 200.0
PROBE = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
BUSY = int(sys.argv[3]) if len(sys.argv) > 3 else 1400

sent: dict[str, float] = {}
requests = 0

HEADERS = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer the requests of one connection (kept alive between them)."""
    global requests
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = json.loads(await reader.readexactly(length))
            count = PROBE if "probe" in str(body["messages"][-1]["content"]) else BUSY
            number = requests
            requests += 1
            writer.write(HEADERS)
            loop = asyncio.get_running_loop()
            start = loop.time()
            for index in range(count):
                wait = start + index / RATE - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                delta = {"choices": [{"index": 0, "delta": {"content": f"r{number}i{index}."}}]}
                writer.write(chunk(f"data: {json.dumps(delta)}\n\n".encode()))
                sent[f"{number}.{index}"] = time.monotonic()
                if writer.transport.get_write_buffer_size():
                    await writer.drain()  # the daemon reads slower than we write
            done = {
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": count},
            }
            writer.write(chunk(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode()))
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass  # the daemon hung up, or the server is stopping
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    # asyncio sets TCP_NODELAY on every connection it accepts (see the docstring).
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "dump":
            break
    print(json.dumps(sent), flush=True)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
