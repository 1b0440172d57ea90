"""Bytes sent for a small edit task: six model requests, every built-in plugin loaded.

The scripted model fixes an off-by-one in a real Python project: it greps for
the function, reads the file, edits it, runs the tests with bash, looks at
the diff and answers. Six requests; each carries the system prompt, the tool
schemas and the transcript so far. The figure is the sum of the request
bodies as they left kfd (OpenAI chat-completions JSON), and the bodies are
written to a directory (printed) so what repeats between requests can be read.

Budget (issue 15): at most 90,000 bytes.

    .venv/bin/python bench/edit_task.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from common import daemon, workspace

from kfd import protocol as p
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.events import collect_until, turn_completed

BUDGET_BYTES = 90_000

CALC = '''\
"""Arithmetic on lists of numbers."""


def total(values: list[float]) -> float:
    """The sum of the values."""
    result = 0.0
    for index in range(len(values) - 1):
        result += values[index]
    return result


def mean(values: list[float]) -> float:
    """The arithmetic mean; 0 for no values."""
    return total(values) / len(values) if values else 0.0
'''

TESTS = """\
from calc import mean, total


def test_total() -> None:
    assert total([1, 2, 3]) == 6


def test_mean() -> None:
    assert mean([2, 4]) == 3
"""


def script() -> list[Reply]:
    return [
        Reply(
            text="I'll find the function first.",
            tool_calls=[
                ScriptedToolCall("grep", {"pattern": "def total", "output_mode": "content"})
            ],
        ),
        Reply(tool_calls=[ScriptedToolCall("read", {"path": "calc.py"})]),
        Reply(
            text="The loop stops one element early.",
            tool_calls=[
                ScriptedToolCall(
                    "edit",
                    {
                        "path": "calc.py",
                        "old_string": "    for index in range(len(values) - 1):\n",
                        "new_string": "    for index in range(len(values)):\n",
                    },
                )
            ],
        ),
        Reply(
            tool_calls=[
                ScriptedToolCall(
                    "bash",
                    {
                        "command": f"{sys.executable} -c 'import test_calc as t; "
                        't.test_total(); t.test_mean(); print("2 passed")\'',
                        "description": "run the tests",
                    },
                )
            ]
        ),
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "git diff --stat"})]),
        Reply(text="Fixed `total`: the loop skipped the last value. Both tests pass."),
    ]


async def run(config: str = "") -> list[bytes]:
    repo = workspace()
    (repo / "calc.py").write_text(CALC)
    (repo / "test_calc.py").write_text(TESTS)
    with ScriptedModelServer(script()) as server:
        kfd = daemon(server.base_url, config).start()
        try:
            async with await kfd.client() as client:
                info = await client.create_session(repo, mode="auto")
                async with await client.attach(info.id) as view:
                    await client.send(info.id, "total() in calc.py gives wrong sums; fix it")
                    events = await collect_until(view, turn_completed, timeout=120)
        finally:
            kfd.close()
        bodies = [request.raw_body for request in server.requests]
    failed = [e for e in events if isinstance(e, p.ToolCompleted) and e.status != "ok"]
    assert not failed, [(e.name, e.output) for e in failed]
    assert "return result" in (repo / "calc.py").read_text()
    return bodies


def report(bodies: list[bytes]) -> int:
    logs = Path(tempfile.mkdtemp(prefix="kfd-bench-edit-"))
    print(f"edit task: {len(bodies)} requests (OpenAI wire JSON); bodies in {logs}")
    total = 0
    for index, body in enumerate(bodies, 1):
        (logs / f"request-{index}.json").write_bytes(body)
        parsed = json.loads(body)
        tools = len(json.dumps(parsed.get("tools", []), separators=(",", ":")).encode())
        total += len(body)
        print(
            f"  request {index}: {len(body):>7,} bytes ({len(parsed.get('tools', []))} tools: "
            f"{tools:,} bytes; {len(parsed['messages'])} messages)"
        )
    verdict = "within" if total <= BUDGET_BYTES else "OVER"
    print(f"  total    {total:>8,} bytes; budget {BUDGET_BYTES:,}: {verdict}")
    return 0 if total <= BUDGET_BYTES else 1


if __name__ == "__main__":
    sys.exit(report(asyncio.run(run())))
