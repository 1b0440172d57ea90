"""`kfd run` against a running daemon: process start -> first model request.

Also the whole wall time of a trivial turn, and the daemon's memory with 10
idle sessions.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from common import daemon, rss_kib, summary, workspace

from kfd.testing import Reply, ScriptedModelServer

RUNS = 15


def main() -> None:
    repo = workspace()
    kfd_command = [str(Path(sys.executable).parent / "kfd")]
    with ScriptedModelServer([Reply(text="ok") for _ in range(RUNS + 1)]) as server:
        kfd = daemon(server.base_url).start()
        try:
            first_request, wall = [], []
            for index in range(RUNS + 1):
                started = time.monotonic()
                result = subprocess.run(
                    [*kfd_command, "run", "hi", "--cwd", str(repo)],
                    env=kfd.env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                ended = time.monotonic()
                assert result.returncode == 0, result.stderr
                if index == 0:
                    continue  # warm the page cache
                request = server.requests[index]
                first_request.append((request.received_at - started) * 1000)
                wall.append((ended - started) * 1000)
            current, peak = rss_kib(kfd.pid)
        finally:
            kfd.close()
    print("kfd run (trivial turn, daemon running)")
    print(f"  process start -> first model request: {summary(first_request)}")
    print(f"  whole run wall time:                  {summary(wall)}")
    print(
        f"  daemon RSS after {RUNS + 1} sessions: "
        f"{current / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB"
    )


if __name__ == "__main__":
    main()
