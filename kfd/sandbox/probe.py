"""Whether bubblewrap can start a sandbox here, and if not, why (for the user)."""

from __future__ import annotations

import asyncio

from kfd.hostpath import which
from kfd.sandbox import seccomp
from kfd.sandbox.mounts import base

PROBE_TIMEOUT_S = 5.0

_working: set[str] = set()
"""bwrap programs that started a sandbox once: not probed again."""


async def probe(bwrap: str, *, network: bool) -> str | None:
    """None if ``bwrap`` can start a sandbox here, else why not."""
    program = which(bwrap)  # never one a sandboxed command could have planted
    if program is None:
        return f"bubblewrap ({bwrap}) is not installed (Debian and Ubuntu: apt install bubblewrap)"
    key = f"{program}\0{network}"
    if key in _working:
        return None
    if (missing := seccomp.problem()) is not None:
        return f"the sandbox cannot keep programs from making hard links: {missing}"
    try:
        process = await asyncio.create_subprocess_exec(
            *seccomp.wrap(program, base(network)),
            "--",
            "true",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        return f"{program} cannot be started: {exc.strerror}"
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            _, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        return f"{program} did not start a sandbox within {PROBE_TIMEOUT_S:g} s"
    if process.returncode != 0:
        said = stderr.decode(errors="replace").strip().splitlines()
        detail = said[-1] if said else f"exit status {process.returncode}"
        return f"{program} cannot start a sandbox here: {detail}"
    _working.add(key)
    return None
