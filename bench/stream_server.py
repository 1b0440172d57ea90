"""A minimal OpenAI-style streaming server that records when each chunk left.

The scripted model server of kfd.testing is for tests; this one exists so a
benchmark can match every chunk to its send time (monotonic clock, which all
processes of the machine share).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StreamServer:
    """Streams ``chunks`` tokens ``00042.`` at ``rate`` per second per request."""

    def __init__(self, chunks: int, rate: float) -> None:
        self.chunks = chunks
        self.interval = 1.0 / rate
        self.sent: dict[int, float] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                start = time.monotonic()
                for index in range(owner.chunks):
                    due = start + index * owner.interval
                    while (wait := due - time.monotonic()) > 0:
                        time.sleep(min(wait, 0.0005))
                    delta = {"choices": [{"index": 0, "delta": {"content": f"{index:05d}."}}]}
                    self._chunk(f"data: {json.dumps(delta)}\n\n".encode())
                    owner.sent[index] = time.monotonic()
                done = {
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": owner.chunks},
                }
                self._chunk(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
