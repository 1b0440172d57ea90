"""``kfd acp``: take over stdin and stdout, answer ``initialize`` at once, then serve.

An editor starts ``kfd acp`` and waits for its answer to ``initialize``
before it shows anything. Importing the ACP library (pydantic models of the
whole schema) costs over a second of CPU, asyncio and the client library
more, and connecting to the daemon may mean starting one; none of it is
needed to say what kfd can do. So the first line is read and, when it is
``initialize``, answered right here with plain blocking I/O from
`kfd_acp.capabilities` (the same data the agent answers from). Only then
are asyncio, the client and the library loaded, while the daemon starts in
another process. Everything after that first answer is the library's, on
`kfd_acp.wire`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from kfd_acp.capabilities import initialize_result


def run(settings: Mapping[str, Any], args: argparse.Namespace) -> int:
    """The ``kfd.frontends`` entry point ``acp``: speak ACP on stdin and stdout.

    ``settings`` is a config table (``kfd acp`` has none). Returns 0 when the
    editor closes the connection.
    """
    # stdout carries JSON-RPC only: keep its descriptor for the wire and
    # point descriptor 1 at stderr, so a stray print can never corrupt it.
    output_fd = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    first, rest = read_first_line(sys.stdin.fileno())
    initialized = answer_initialize(first, output_fd)
    unread = rest if initialized is not None else first + rest
    import asyncio  # only now: the editor has its answer

    _log_to_stderr(verbose=getattr(args, "verbose", False))
    try:
        return asyncio.run(_serve(output_fd, initialized, unread))
    except KeyboardInterrupt:
        return 130


FIRST_LINE_LIMIT = 50 * 1024 * 1024
"""Read no further for the first line (`kfd_acp.wire` refuses longer messages)."""


def read_first_line(fd: int) -> tuple[bytes, bytes]:
    """The first line of ``fd`` (newline included) and whatever came after it.

    A first line past `FIRST_LINE_LIMIT` is returned as read so far: it is no
    ``initialize``, and the wire answers it (and skips the rest of it).
    """
    data = b""
    while b"\n" not in data:
        if len(data) > FIRST_LINE_LIMIT:
            return data, b""
        chunk = os.read(fd, 65536)
        if not chunk:
            return data, b""
        data += chunk
    end = data.index(b"\n") + 1
    return data[:end], data[end:]


def answer_initialize(line: bytes, output_fd: int) -> dict[str, Any] | None:
    """Answer ``line`` if it is an ``initialize`` request; its params, else None."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("method") != "initialize":
        return None
    request_id = message.get("id")
    if type(request_id) not in (int, str):
        return None  # not a request the fast path can answer: the library will
    params = message.get("params")
    params = params if isinstance(params, dict) else {}
    answer = {
        "jsonrpc": "2.0",
        "id": request_id,
        "result": initialize_result(params.get("protocolVersion")),
    }
    data = json.dumps(answer, separators=(",", ":")).encode() + b"\n"
    while data:
        data = data[os.write(output_fd, data) :]
    return params


def _log_to_stderr(*, verbose: bool) -> None:
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("kfd acp: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger("kfd_acp").setLevel(logging.DEBUG if verbose else logging.INFO)


async def _serve(output_fd: int, initialized: dict[str, Any] | None, unread: bytes) -> int:
    """Serve one editor connection until it closes its end (or SIGTERM)."""
    import asyncio
    import contextlib
    import importlib
    import signal

    from kfd.client import ensure_daemon
    from kfd_acp.capabilities import frontend_name
    from kfd_acp.early import answer_new_session
    from kfd_acp.wire import Wire

    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    # The daemon starts in its own process, and the ACP library (over a second
    # of CPU) is imported in a thread, while the first session/new is answered
    # here (`kfd_acp.early`).
    starting = loop.run_in_executor(None, ensure_daemon)
    loading = asyncio.ensure_future(asyncio.to_thread(importlib.import_module, "kfd_acp.agent"))
    wire = await Wire.stdio(output_fd, unread)
    early = None
    with contextlib.suppress(asyncio.CancelledError):
        with contextlib.suppress(Exception):
            await starting  # a failure is reported at the first request that needs the daemon
        if initialized is not None:
            early = await answer_new_session(wire, frontend_name(initialized))
        await loading
        from kfd_acp.agent import serve_editor

        await serve_editor(wire, initialized=initialized, early=early)
    return 0
