"""``kfd acp``: take over stdin and stdout, answer ``initialize`` at once, then serve.

An editor starts ``kfd acp`` and waits for its answer to ``initialize``
before it shows anything. Importing the ACP library (pydantic models of the
whole schema) costs over a second of CPU, and connecting to the daemon may
mean starting one; neither is needed to say what kfd can do. So the first
message, when it is ``initialize``, is answered here from
`kfd_acp.capabilities` (the same data the agent answers from), and only
then is the library imported, while the daemon starts in another process.
Everything after that first answer is the library's, on `kfd_acp.wire`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

from kfd_acp.capabilities import initialize_result
from kfd_acp.wire import Wire

log = logging.getLogger("kfd_acp")


def run(settings: Mapping[str, Any], args: argparse.Namespace) -> int:
    """The ``kfd.frontends`` entry point ``acp``: speak ACP on stdin and stdout.

    ``settings`` is the ``[acp]`` table of the config (nothing is read from
    it yet). Returns 0 when the editor closes the connection.
    """
    # stdout carries JSON-RPC only: keep its descriptor for the wire and
    # point descriptor 1 at stderr, so a stray print can never corrupt it.
    output_fd = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("kfd acp: %(message)s"))
    logging.getLogger().addHandler(handler)
    log.setLevel(logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    try:
        return asyncio.run(serve(output_fd))
    except KeyboardInterrupt:
        return 130


async def serve(output_fd: int) -> int:
    """Serve one editor connection until it closes its end."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    wire = await Wire.stdio(output_fd)
    first = await wire.receive()
    if first is None:
        return 0
    initialized: dict[str, Any] | None = None
    if first.get("method") == "initialize" and "id" in first:
        params = first.get("params")
        initialized = params if isinstance(params, dict) else {}
        result = initialize_result(initialized.get("protocolVersion"))
        await wire.send({"jsonrpc": "2.0", "id": first["id"], "result": result})
        first_left: dict[str, Any] | None = None
    else:
        first_left = first
    from kfd_acp.agent import serve_editor  # the ACP library and the client: only now

    with contextlib.suppress(asyncio.CancelledError):
        await serve_editor(wire, initialized=initialized, pending=first_left)
    return 0
