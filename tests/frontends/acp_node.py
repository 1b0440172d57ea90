"""Test support: the official ACP TypeScript SDK's client driving ``kfd acp``.

``node/acp_editor.mjs`` runs one scenario (see its header) and reports as JSON
lines; `NodeEditor` starts it with Node, against a test daemon, and reads
those lines. Tests are skipped where Node or the SDK (``./test`` installs it
with ``npm ci``) is missing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from kfd.testing.daemon import KfdDaemon

NODE_DIR = Path(__file__).parent / "node"
SCRIPT = NODE_DIR / "acp_editor.mjs"
SDK = NODE_DIR / "node_modules" / "@agentclientprotocol" / "sdk"

needs_node = pytest.mark.skipif(
    shutil.which("node") is None or not SDK.is_dir(),
    reason="needs Node and the ACP SDK (./test runs npm ci in tests/frontends/node)",
)


class NodeEditor:
    """A running scenario: every event it reported so far, and waits for more."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []

    async def next(self, wanted: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> Any:
        """Read events until one ``wanted`` accepts (or one that says the scenario failed)."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            for event in self.events:
                if wanted(event):
                    return event
            while True:
                line = await self.process.stdout.readline()
                assert line, f"the editor exited: {self.events}"
                event = json.loads(line)
                self.events.append(event)
                assert event["event"] != "failed", event["error"]
                if wanted(event):
                    return event

    async def event(self, name: str, timeout: float = 20.0) -> Any:
        return await self.next(lambda e: e["event"] == name, timeout)

    def updates(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [
            e["update"]
            for e in self.events
            if e["event"] == "update" and (kind is None or e["update"]["sessionUpdate"] == kind)
        ]

    def agent_text(self) -> str:
        return "".join(u["content"]["text"] for u in self.updates("agent_message_chunk"))


@asynccontextmanager
async def node_editor(daemon: KfdDaemon, **scenario: Any) -> AsyncIterator[NodeEditor]:
    """Run ``acp_editor.mjs`` with ``scenario`` against ``kfd acp`` on ``daemon``."""
    plan = {"command": [sys.executable, "-m", "kfd", "acp"], "env": daemon.env, **scenario}
    process = await asyncio.create_subprocess_exec(
        "node",
        str(SCRIPT),
        json.dumps(plan),
        cwd=NODE_DIR,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
    )
    editor = NodeEditor(process)
    try:
        yield editor
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
