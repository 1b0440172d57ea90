"""Harness overhead per tool step: model reply end -> next model request.

Steps of read, edit and grep on a real file in a real git repo, in auto mode.
"Step" includes the tool run; "overhead" subtracts the tool's own duration
(tool.completed duration_ms), leaving what the harness adds: parsing, policy,
durable events, building the next request.
"""

from __future__ import annotations

import asyncio

from common import daemon, summary, workspace

from kfd import protocol as p
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.events import collect_until, turn_completed

STEPS = 60


def script(path: str) -> list[Reply]:
    replies = [Reply(tool_calls=[ScriptedToolCall("read", {"path": path})])]
    edits = 0
    for step in range(STEPS):
        kind = ("read", "edit", "grep")[step % 3]
        if kind == "read":
            call = ScriptedToolCall("read", {"path": path})
        elif kind == "edit":
            call = ScriptedToolCall(
                "edit",
                {
                    "path": path,
                    "old_string": f"value {edits}\n",
                    "new_string": f"value {edits + 1}\n",
                },
            )
            edits += 1
        else:
            call = ScriptedToolCall("grep", {"pattern": "value", "output_mode": "content"})
        replies.append(Reply(tool_calls=[call], chunk_chars=1000))
    replies.append(Reply(text="done"))
    return replies


async def main() -> None:
    repo = workspace()
    (repo / "data.txt").write_text("".join(f"line {i}\n" for i in range(200)) + "value 0\n")
    with ScriptedModelServer(script("data.txt")) as server:
        kfd = daemon(server.base_url).start()
        try:
            async with await kfd.client() as client:
                info = await client.create_session(repo, mode="auto")
                async with await client.attach(info.id) as view:
                    await client.send(info.id, "work")
                    events = await collect_until(view, turn_completed, timeout=120)
        finally:
            kfd.close()
        requests = server.requests
    completed = [e for e in events if isinstance(e, p.ToolCompleted)]
    assert all(e.status == "ok" for e in completed), [
        e.output for e in completed if e.status != "ok"
    ]
    by_kind: dict[str, tuple[list[float], list[float]]] = {}
    for index in range(1, len(requests)):
        before, after = requests[index - 1], requests[index]
        assert before.finished_at is not None
        step_ms = (after.received_at - before.finished_at) * 1000
        tool = completed[index - 1]
        steps, overheads = by_kind.setdefault(tool.name, ([], []))
        steps.append(step_ms)
        overheads.append(step_ms - tool.duration_ms)
    print(f"tool steps ({STEPS + 1} steps, auto mode)")
    for name, (steps, overheads) in sorted(by_kind.items()):
        print(f"  {name:<5} step {summary(steps)}")
        print(f"  {'':<5} harness overhead {summary(overheads)}")


if __name__ == "__main__":
    asyncio.run(main())
