"""Running ripgrep: finding the binary, keeping output bounded, stopping on cancel.

The ``rg`` binary comes from the PyPI package ``ripgrep``, installed next to
the interpreter; a system ``rg`` on PATH is the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from kfd.api import ToolError, host_which

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

COMMON_ARGS = ("--no-config", "--color=never", "--hidden", "--glob=!.git")
"""Every call: no user config, plain text, dotfiles included (.github is
useful) but never git's own directory. Ignore files are honoured."""

COUNT_LIMIT = 100_000
"""Lines counted past the kept ones before rg is stopped ("more than N")."""

_STREAM_LIMIT = 8 * 1024 * 1024
_STDERR_KEEP = 8192


class RgOutput(NamedTuple):
    """What one rg run printed, bounded."""

    lines: list[str]
    """The first accepted lines, without line terminators."""
    more: int
    """Accepted lines left out after ``lines``."""
    more_is_lower_bound: bool
    """True if rg was stopped while counting, so there are more than ``more``."""
    returncode: int
    """0: found, 1: nothing found, 2: error (rg's convention)."""
    stderr: str


@functools.cache
def _find_rg() -> str | None:
    beside = Path(sys.executable).parent / "rg"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    # Never from a place a sandboxed command writes (a relative entry, a workspace,
    # a cache home): rg runs on the host (`kfd.api.host_which`).
    return host_which("rg")


def rg_binary() -> str:
    """The path of ``rg``, or a ToolError saying how to install it."""
    found = _find_rg()
    if found is None:
        raise ToolError(
            "ripgrep (rg) is not installed, so this tool cannot run. "
            "Use bash with find or grep instead, and tell the user to install ripgrep."
        )
    return found


async def run_rg(
    args: Sequence[str],
    cwd: Path,
    *,
    keep: int,
    select: Callable[[str], str | None] | None = None,
    separator: bytes = b"\n",
) -> RgOutput:
    """Run ``rg`` with ``args`` in ``cwd``, keeping the first ``keep`` selected lines.

    ``select`` maps each line (record, with ``separator`` b"\\0" for ``--null``
    file lists) to what is kept, or None to drop it. It runs in a worker
    thread, a chunk of output at a time, so filtering a huge listing never
    stalls the event loop, and as output arrives, so it never sits in memory
    whole. Cancellation kills rg and re-raises.
    """
    process = await asyncio.create_subprocess_exec(
        rg_binary(),
        *COMMON_ARGS,
        *args,
        cwd=cwd,
        # Without a path argument rg would search a piped stdin; /dev/null is never searched.
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=_STREAM_LIMIT,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    stderr_task = asyncio.create_task(_drain(process.stderr))
    kept = _Kept(keep, select)
    rest = b""
    try:
        while chunk := await process.stdout.read(_CHUNK):
            records = (rest + chunk).split(separator)
            rest = records.pop()
            if len(rest) > _STREAM_LIMIT:
                rest = rest[:_STREAM_LIMIT]  # a record this long is cut, never held whole
            if records and await asyncio.to_thread(kept.feed, records):
                process.kill()
                break
        else:
            if rest:
                await asyncio.to_thread(kept.feed, [rest])
        stderr = await stderr_task
        returncode = await process.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        stderr_task.cancel()
        await process.wait()
        raise
    return RgOutput(kept.lines, kept.more, kept.stopped, returncode, stderr.strip())


_CHUNK = 64 * 1024


class _Kept:
    """The selected lines, the first ``keep`` of them kept, the rest counted."""

    def __init__(self, keep: int, select: Callable[[str], str | None] | None) -> None:
        self.keep = keep
        self.select = select
        self.lines: list[str] = []
        self.more = 0
        self.stopped = False

    def feed(self, records: list[bytes]) -> bool:
        """Take records; True once enough were counted to stop rg."""
        for raw in records:
            text = raw.decode("utf-8", "replace").removesuffix("\r")
            line = self.select(text) if self.select is not None else text
            if line is None:
                continue
            if len(self.lines) < self.keep:
                self.lines.append(line)
                continue
            self.more += 1
            if self.more >= COUNT_LIMIT:
                self.stopped = True
                return True
        return False


async def _drain(stream: asyncio.StreamReader) -> str:
    # Keep reading to the end so rg never blocks on a full stderr pipe.
    kept = bytearray()
    while chunk := await stream.read(65536):
        if len(kept) < _STDERR_KEEP:
            kept += chunk[: _STDERR_KEEP - len(kept)]
    return kept.decode("utf-8", "replace")
