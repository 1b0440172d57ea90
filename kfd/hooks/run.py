"""Running one shell hook, and reading what it answered.

A hook is ``bash -c COMMAND`` in the session's workspace, with the event as
JSON on its stdin. It runs confined like a ``bash`` call (the daemon hands
in how: `Confine`) unless the user's own config sets ``sandbox = false``; a
hook that should be confined and cannot be does not run (it is reported).
A hook that outlives its ``timeout_s`` is killed with its whole process
group. Output is read up to `OUTPUT_LIMIT` bytes a stream.

What a hook answers (`answer_of`, pure):

- exit 0: stdout is the answer; a JSON object may carry ``decision``
  (``"deny"`` or ``"ask"``, with ``reason``), ``context`` (text the model
  reads with the call's result) and ``note``; other text is the note;
- exit 2: a ``before_tool`` hook denies the call, stderr is the reason; an
  ``after_tool`` hook's stderr becomes the note;
- anything else, a timeout, or no start: the hook failed (reported; the
  call and the turn go on).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kfd.sandbox.pidns import Watch

OUTPUT_LIMIT = 64 * 1024
NOTE_LIMIT = 4000
"""Characters of a hook's note the model reads at most."""

Outcome = Literal["ok", "denied", "failed", "timeout", "unavailable"]


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start a hook: a command prefix (bubblewrap's) and the environment."""

    prefix: tuple[str, ...]
    env: Mapping[str, str]
    finish: Callable[[], Awaitable[list[str]]] | None = None
    """What to do once the hook and its children are gone (the sandbox's sweep)."""


Confine = Callable[[Path, bool], Awaitable[Launch | str]]
"""``(workspace, sandboxed)`` -> how to start a hook there, or why it cannot start."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What a hook said (or why it said nothing)."""

    outcome: Outcome
    decision: Literal["deny", "ask"] | None = None
    reason: str = ""
    context: str = ""
    note: str = ""
    message: str = ""
    """For a failure: what went wrong (exit status, stderr, timeout)."""
    duration_ms: float = 0.0


def answer_of(
    returncode: int, stdout: bytes, stderr: bytes, *, denies: bool, duration_ms: float = 0.0
) -> Answer:
    """What a finished hook answered (``denies``: it is a ``before_tool`` hook)."""
    out = stdout.decode("utf-8", "replace").strip()
    err = stderr.decode("utf-8", "replace").strip()
    if returncode == 2:
        if denies:
            reason = err or out or "a hook denied this call"
            return Answer("denied", "deny", _cut(reason), duration_ms=duration_ms)
        return Answer("ok", note=_cut(err or out), duration_ms=duration_ms)
    if returncode != 0:
        tail = (err or out).splitlines()[-3:]
        message = f"exit status {returncode}" + (f": {' / '.join(tail)}" if tail else "")
        return Answer("failed", message=_cut(message), duration_ms=duration_ms)
    if out.startswith("{"):
        try:
            data = json.loads(out)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return _structured(data, denies, duration_ms)
    return Answer("ok", note=_cut(out), duration_ms=duration_ms)


def _structured(data: dict[str, object], denies: bool, duration_ms: float) -> Answer:
    decision = data.get("decision")
    reason = str(data.get("reason") or "")
    context = str(data.get("context") or "")
    note = str(data.get("note") or "")
    if denies and decision in ("deny", "ask"):
        outcome: Outcome = "denied" if decision == "deny" else "ok"
        chosen: Literal["deny", "ask"] = "deny" if decision == "deny" else "ask"
        return Answer(
            outcome,
            chosen,
            _cut(reason or f"a hook said {decision}"),
            _cut(context),
            _cut(note),
            duration_ms=duration_ms,
        )
    return Answer("ok", None, "", _cut(context), _cut(note), duration_ms=duration_ms)


def _cut(text: str) -> str:
    return text if len(text) <= NOTE_LIMIT else text[:NOTE_LIMIT] + " […]"


async def run_hook(
    command: str,
    payload: bytes,
    workspace: Path,
    launch: Launch,
    timeout_s: float,
    *,
    denies: bool,
) -> Answer:
    """Run one hook to its end (or its timeout) and read its answer."""
    started = time.monotonic()
    # Confined: over only once bubblewrap's PID namespace is empty, not when
    # bubblewrap exits (`kfd.sandbox.pidns`); the sandbox's checks wait for that.
    watch = Watch() if launch.prefix[-1:] == ("--",) else None
    try:
        process = await asyncio.create_subprocess_exec(
            *(watch.wrap(launch.prefix) if watch else launch.prefix),
            "bash",
            "-c",
            command,
            cwd=workspace,
            env=dict(launch.env),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            pass_fds=watch.passed if watch else (),
        )
    except OSError as exc:
        if watch is not None:
            watch.close()
        return Answer("failed", message=f"cannot start: {exc.strerror or exc}")
    finally:
        if watch is not None:
            watch.spawned()
    try:
        return await _follow(process, payload, launch, timeout_s, watch, started, denies=denies)
    finally:
        if watch is not None:
            if process.returncode is None:
                # Failed half-way: bubblewrap goes before its go pipe closes (an init
                # still waiting would take the closing for the go).
                _kill_group(process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await asyncio.shield(process.wait())
            watch.close()


async def _follow(
    process: asyncio.subprocess.Process,
    payload: bytes,
    launch: Launch,
    timeout_s: float,
    watch: Watch | None,
    started: float,
    *,
    denies: bool,
) -> Answer:
    """Feed the started hook, read it to its end, and run the sandbox's checks once
    all of it is gone."""
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None

    async def feed() -> None:
        with contextlib.suppress(OSError):  # a hook that does not read its stdin
            assert process.stdin is not None
            process.stdin.write(payload)
            await process.stdin.drain()
            process.stdin.close()

    async def whole() -> tuple[bytes, bytes, int]:
        assert process.stdout is not None and process.stderr is not None
        if watch is not None and not await watch.start(process.pid):
            _kill_group(process.pid)  # its init is not known for sure: nothing runs
        _, out, err = await asyncio.gather(
            feed(), _read_capped(process.stdout), _read_capped(process.stderr)
        )
        return out, err, await process.wait()

    try:
        async with asyncio.timeout(timeout_s):
            out, err, code = await whole()
    except (TimeoutError, asyncio.CancelledError) as exc:
        _kill_group(process.pid)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await asyncio.shield(process.wait())
        if watch is not None:
            await asyncio.shield(watch.emptied())
        if launch.finish is not None:
            await asyncio.shield(launch.finish())
        if isinstance(exc, asyncio.CancelledError):
            raise
        elapsed = (time.monotonic() - started) * 1000
        return Answer(
            "timeout",
            message=f"did not finish within {timeout_s:g} s: killed",
            duration_ms=elapsed,
        )
    _kill_group(process.pid)  # what the hook left running in the background goes too
    if watch is not None:
        await watch.emptied()
    if launch.finish is not None:
        await launch.finish()
    elapsed = (time.monotonic() - started) * 1000
    return answer_of(code, out, err, denies=denies, duration_ms=elapsed)


async def _read_capped(stream: asyncio.StreamReader) -> bytes:
    """Up to `OUTPUT_LIMIT` bytes of ``stream``; the rest is read and dropped."""
    kept = bytearray()
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return bytes(kept)
        if len(kept) < OUTPUT_LIMIT:
            kept += chunk[: OUTPUT_LIMIT - len(kept)]


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
