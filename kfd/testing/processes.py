"""Finding a test's processes from outside, by a marker in their command line.

A command run by ``bash`` lives in the sandbox's own PID namespace: the pid it
sees for itself (``$$``, ``$!``) means nothing on the host. Give the process a
marker instead (``sleep 60.4193``) and look for it here::

    assert await processes_gone("60.4193", within=2.0)
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path


def processes_running(marker: str) -> list[int]:
    """Pids of the live (not zombie) processes whose command line contains ``marker``."""
    found: list[int] = []
    wanted = marker.encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ")
            state = Path(entry.path, "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue  # gone meanwhile
        if wanted in command and state != "Z":
            found.append(int(entry.name))
    return found


async def processes_gone(marker: str, *, within: float) -> bool:
    """Whether every process with ``marker`` is gone, waiting at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while processes_running(marker):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
