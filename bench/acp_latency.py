"""`kfd acp`: how fast an editor hears from it.

- start -> `initialize` answered: the editor's wait before it shows the agent
  (target: under 300 ms; answered before the ACP library is imported);
- start -> `session/new` answered, with the daemon running (answered while the
  ACP library still loads in a thread, `kfd_acp.early`) and with none running
  (`kfd acp` starts it: a cold start, the daemon's start overlapping the
  library's import);
- the CPU time `kfd acp` had used when it answered (what the wait is on an
  idle machine: a loaded one stretches the wall time, not this);
- the daemon's first model delta of a turn -> the editor reading it as a
  `session/update` (target: p50 under 5 ms). The delta's time is the
  `ts` the daemon stamps on it as it publishes it (a kfd client attached to
  the session reads it); the editor's is when its line arrives on the pipe.

The editor here is a plain pipe reader, so nothing of an editor's own costs
is counted.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import daemon, machine, summary, workspace

from kfd import protocol as p
from kfd.testing import Reply, ScriptedModelServer

STARTS = 15
COLD_STARTS = 5
TURNS = 30


class Editor:
    """`kfd acp` on pipes: write requests, read lines, note when each arrived."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.ids = 0

    @classmethod
    async def start(cls, env: dict[str, str]) -> Editor:
        command = str(Path(sys.executable).parent / "kfd")
        process = await asyncio.create_subprocess_exec(
            command, "acp", env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        return cls(process)

    async def send(self, method: str, params: dict[str, Any]) -> int:
        assert self.process.stdin is not None
        self.ids += 1
        message = {"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params}
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        await self.process.stdin.drain()
        return self.ids

    async def read(self) -> tuple[float, dict[str, Any]]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 60)
        return time.time(), json.loads(line)

    async def answer(self, request_id: int) -> tuple[float, dict[str, Any]]:
        while True:
            at, message = await self.read()
            if message.get("id") == request_id and "method" not in message:
                return at, message

    async def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        await self.process.wait()


def cpu_ms(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


async def start_times(env: dict[str, str], cwd: str) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {"initialized": [], "cpu": [], "created": []}
    for index in range(STARTS + 1):
        started = time.time()
        editor = await Editor.start(env)
        first = await editor.send("initialize", {"protocolVersion": 1})
        at, _ = await editor.answer(first)
        cpu = cpu_ms(editor.process.pid)
        new = await editor.send("session/new", {"cwd": cwd, "mcpServers": []})
        at_new, _ = await editor.answer(new)
        await editor.close()
        if index:  # the first run warms the page cache
            figures["initialized"].append((at - started) * 1000)
            figures["cpu"].append(cpu)
            figures["created"].append((at_new - started) * 1000)
    return figures


async def cold_starts(base_url: str, cwd: str) -> list[float]:
    """start -> session/new answered when no daemon runs: `kfd acp` starts one."""
    from kfd.client import Client

    figures = []
    for _ in range(COLD_STARTS):
        kfd = daemon(base_url)  # not started: kfd acp does it
        try:
            started = time.time()
            editor = await Editor.start(kfd.env)
            await editor.answer(await editor.send("initialize", {"protocolVersion": 1}))
            new = await editor.send("session/new", {"cwd": cwd, "mcpServers": []})
            at_new, answer = await editor.answer(new)
            assert "result" in answer, answer
            figures.append((at_new - started) * 1000)
            await editor.close()
            async with await Client.connect(kfd.runtime_dir, name="bench") as client:
                pid = (await client.status()).pid
                await client.shutdown()
            await wait_gone(pid)
        finally:
            kfd.close()
    return figures


async def wait_gone(pid: int, timeout: float = 30) -> None:
    """Wait until process ``pid`` has exited (its pidfd turns readable)."""
    exited = os.pidfd_open(pid)
    ready = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(exited, ready.set)
    try:
        await asyncio.wait_for(ready.wait(), timeout)
    finally:
        loop.remove_reader(exited)
        os.close(exited)


async def delta_latency(env: dict[str, str], runtime_dir: Path, cwd: str) -> list[float]:
    from kfd.client import Client

    editor = await Editor.start(env)
    await editor.answer(await editor.send("initialize", {"protocolVersion": 1}))
    _, created = await editor.answer(
        await editor.send("session/new", {"cwd": cwd, "mcpServers": []})
    )
    session = created["result"]["sessionId"]
    latencies = []
    async with (
        await Client.connect(runtime_dir, name="bench") as client,
        await client.attach(session) as view,
    ):
        for _ in range(TURNS):
            prompt = await editor.send(
                "session/prompt", {"sessionId": session, "prompt": [{"type": "text", "text": "hi"}]}
            )
            received = None
            while received is None:
                at, message = await editor.read()
                update = message.get("params", {}).get("update", {})
                if update.get("sessionUpdate") == "agent_message_chunk":
                    received = at
            published = None
            while published is None:
                event = await view.next_event(30)
                if isinstance(event, p.MessageDelta) and event.kind == "text":
                    published = event.ts
            latencies.append((received - published) * 1000)
            await editor.answer(prompt)
            while not isinstance(await view.next_event(30), p.TurnCompleted):
                pass
    await editor.close()
    return latencies


async def main() -> None:
    repo = str(workspace())
    replies = [Reply(text="a streamed answer of a few words") for _ in range(STARTS + TURNS + 5)]
    with ScriptedModelServer(replies) as server:
        kfd = daemon(server.base_url).start()
        try:
            starts = await start_times(kfd.env, repo)
            latencies = await delta_latency(kfd.env, kfd.runtime_dir, repo)
        finally:
            kfd.close()
        cold = await cold_starts(server.base_url, repo)
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"kfd acp ({machine()}, load average {load} at the end)")
    print(f"  start -> initialize answered:       {summary(starts['initialized'])}")
    print(f"  CPU used by then (10 ms ticks):     {summary(starts['cpu'])}")
    print(f"  start -> session/new answered:      {summary(starts['created'])}")
    print(f"    the same, no daemon running:      {summary(cold)}")
    print(f"  first model delta -> editor update: {summary(latencies)}")


if __name__ == "__main__":
    asyncio.run(main())
