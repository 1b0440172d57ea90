"""Read-only tool calls of one model response run concurrently.

The daemon runs in this process (its real bus, store and turn loop) with a
plugin registered directly, so the test can see inside the tools it runs.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from kfd import protocol as p
from kfd.api import Tool, ToolContext, ToolResult, hookimpl
from kfd.client import Client
from kfd.config import Config, ModelConfig
from kfd.daemon.server import Daemon
from kfd.plugins import PluginHost
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.events import collect_until, turn_completed


class RendezvousArgs(msgspec.Struct):
    name: str


class Rendezvous(Tool[RendezvousArgs]):
    """Finishes only once two calls are running at the same time."""

    name = "rendezvous"
    description = "wait for a partner"
    Args = RendezvousArgs
    read_only = True

    def __init__(self) -> None:
        self.arrived = 0
        self.both = asyncio.Event()

    async def run(self, args: RendezvousArgs, ctx: ToolContext) -> ToolResult:
        self.arrived += 1
        if self.arrived == 2:
            self.both.set()
        await asyncio.wait_for(self.both.wait(), 5)
        return ToolResult(output=f"{args.name} met its partner")


class SlowWrite(Tool[RendezvousArgs]):
    """A mutating tool: must never overlap another call."""

    name = "slow_write"
    description = "write slowly"
    Args = RendezvousArgs

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def run(self, args: RendezvousArgs, ctx: ToolContext) -> ToolResult:
        self.log.append(f"start {args.name}")
        await asyncio.sleep(0)
        self.log.append(f"end {args.name}")
        return ToolResult(output="written")


class Plugin:
    def __init__(self, tools: list[Tool[Any]]) -> None:
        self._tools = tools

    @hookimpl
    def kfd_tools(self, config: Any) -> list[Tool[Any]]:
        return self._tools


@pytest.fixture
async def in_process(
    tmp_path: Path,
) -> AsyncIterator[tuple[Client, ScriptedModelServer, dict[str, Any]]]:
    root = Path(tempfile.mkdtemp(prefix="kfd-"))
    log: list[str] = []
    tools: dict[str, Any] = {"rendezvous": Rendezvous(), "log": log}
    host = PluginHost()
    host.register(Plugin([tools["rendezvous"], SlowWrite(log)]), "test")
    with ScriptedModelServer() as server:
        model = ModelConfig(
            provider="openai", base_url=server.base_url, model="m", retry_base_s=0.01
        )
        config = Config(model=model)
        daemon = Daemon(
            config,
            runtime_dir=root / "run",
            state_dir=root / "state",
            plugins=host,
            discover_plugins=False,
        )
        task = asyncio.create_task(daemon.run())
        client = None
        try:
            client = await Client.connect(root / "run", timeout=10)
            yield client, server, tools
        finally:
            if client is not None:
                await client.close()
            daemon.stop("test over")
            await asyncio.wait_for(task, 10)


async def test_read_only_calls_of_one_response_run_concurrently(in_process, tmp_path: Path) -> None:
    client, server, _ = in_process
    server.add(
        Reply(
            tool_calls=[
                ScriptedToolCall("rendezvous", {"name": "left"}),
                ScriptedToolCall("rendezvous", {"name": "right"}),
            ]
        ),
        Reply(text="both met"),
    )
    info = await client.create_session(tmp_path)
    async with await client.attach(info.id) as view:
        await client.send(info.id, "meet")
        events = await collect_until(view, turn_completed, timeout=10)
    results = [e for e in events if isinstance(e, p.ToolCompleted)]
    assert sorted(e.output for e in results) == ["left met its partner", "right met its partner"]
    assert events[-1].stop_reason == "end_turn"


async def test_mutating_calls_run_one_after_another(in_process, tmp_path: Path) -> None:
    client, server, tools = in_process
    server.add(
        Reply(
            tool_calls=[
                ScriptedToolCall("slow_write", {"name": "a"}),
                ScriptedToolCall("slow_write", {"name": "b"}),
            ]
        ),
        Reply(text="done"),
    )
    info = await client.create_session(tmp_path, mode="auto")
    async with await client.attach(info.id) as view:
        await client.send(info.id, "write")
        await collect_until(view, turn_completed, timeout=10)
    assert tools["log"] == ["start a", "end a", "start b", "end b"]
