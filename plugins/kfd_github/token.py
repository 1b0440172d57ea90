"""Where the GitHub token comes from: the environment, else the ``gh`` CLI."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping

from kfd.api import host_which, keep_secret

GH_TIMEOUT_S = 5.0


async def find_token(host: str, environ: Mapping[str, str] | None = None) -> str | None:
    """``GITHUB_TOKEN`` or ``GH_TOKEN``, else what ``gh auth token`` prints, else None.

    ``gh`` knows where its own config and keyring entries live, so asking it
    beats reading its files.
    """
    environ = os.environ if environ is None else environ
    for name in ("GITHUB_TOKEN", "GH_TOKEN"):
        if environ.get(name):
            return environ[name].strip()
    gh = host_which("gh", environ)
    if gh is None:
        return None
    try:
        process = await asyncio.create_subprocess_exec(
            gh,
            "auth",
            "token",
            "--hostname",
            host,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=dict(environ),
        )
    except OSError:
        return None
    try:
        async with asyncio.timeout(GH_TIMEOUT_S):
            out, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        return None
    token = out.decode(errors="replace").strip()
    if process.returncode != 0 or not token:
        return None
    keep_secret("gh auth token", token)  # kfd holds it now: never stored, never shown
    return token
