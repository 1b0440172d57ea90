"""The model server of `fanout_under_load.py`, in a process of its own (run as a
subprocess: its pacing threads must not share a GIL with anything measured).

Prints its port; streams ``r<request>i<index>.`` tokens at ``RATE`` per second
(``PROBE`` tokens when the prompt says "probe", ``BUSY`` otherwise); on a line
"dump" on stdin, prints when each token left, as JSON, and exits.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RATE = float(sys.argv[1]) if len(sys.argv) > 1 else 200.0
PROBE = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
BUSY = int(sys.argv[3]) if len(sys.argv) > 3 else 1400

sent: dict[str, float] = {}
lock = threading.Lock()
requests = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        global requests
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        count = PROBE if "probe" in str(body["messages"][-1]["content"]) else BUSY
        with lock:
            number = requests
            requests += 1
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        start = time.monotonic()
        for index in range(count):
            wait = start + index / RATE - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            delta = {"choices": [{"index": 0, "delta": {"content": f"r{number}i{index}."}}]}
            self._chunk(f"data: {json.dumps(delta)}\n\n".encode())
            sent[f"{number}.{index}"] = time.monotonic()
        done = {
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": count},
        }
        self._chunk(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    print(httpd.server_address[1], flush=True)
    for line in sys.stdin:
        if line.strip() == "dump":
            print(json.dumps(sent), flush=True)
            break
    httpd.shutdown()
