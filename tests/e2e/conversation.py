"""A scripted model that also answers compaction requests, wherever they fall.

Compaction makes an extra model request at a point the test does not script
by position; `Conversation` answers every summary request with `SUMMARY` and
every other request with the next reply of its queue.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any

from kfd.testing import Reply, ScriptedModelServer
from kfd.testing.daemon import FAST_RETRIES, KfdDaemon
from kfd.testing.model_server import RecordedRequest

SUMMARY = (
    "## Goal\nKeep notes on the numbered files.\n## Decisions\nRead each file once.\n"
    "## Files touched\nnotes_*.txt (read only)\n## Open tasks\nnone\n## Next steps\ncontinue"
)
SUMMARY_PREFIX = "[Summary of the earlier conversation"


def is_summary_request(request: RecordedRequest) -> bool:
    last = request.body["messages"][-1]
    return last["role"] == "user" and str(last["content"]).startswith("[kfd: compaction]")


class Conversation:
    """The responder: summaries for summary requests, the queue for the rest."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.server: ScriptedModelServer

    def add(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def __call__(self, request: RecordedRequest) -> Reply:
        if is_summary_request(request):
            return Reply(text=SUMMARY)
        return self.replies.popleft()

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.server.requests

    def summary_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if is_summary_request(r)]

    def turn_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if not is_summary_request(r)]


@contextmanager
def conversation_daemon(
    model: str = "", config: str = ""
) -> Iterator[tuple[Conversation, KfdDaemon]]:
    """A daemon whose model is a `Conversation`, with only the built-in plugins
    (so the fixed prompt size, and the compaction thresholds, are known).

    ``model`` holds more ``[model]`` keys; ``config`` whole other tables.
    """
    others = [e.name for e in entry_points(group="kfd") if e.name not in ("fs", "shell")]
    plugins = f"[plugins]\ndisable = {json.dumps(others)}\n"
    conversation = Conversation()
    with ScriptedModelServer(responder=conversation) as server:
        conversation.server = server
        text = FAST_RETRIES + model + "\n" + config + "\n" + plugins
        with KfdDaemon(model=server, config=text) as daemon:
            yield conversation, daemon


def system_of(request: RecordedRequest) -> str:
    first = request.body["messages"][0]
    assert first["role"] == "system"
    return str(first["content"])


def assert_tool_pairs_intact(messages: list[dict[str, Any]]) -> None:
    """Every tool call has exactly one result right after its message, and
    every result answers a call of the assistant message before it."""
    open_calls: set[str] = set()
    for message in messages:
        if message["role"] == "tool":
            assert message["tool_call_id"] in open_calls, f"orphan result {message}"
            open_calls.remove(message["tool_call_id"])
            continue
        assert not open_calls, f"calls without results before {message['role']}: {open_calls}"
        if message["role"] == "assistant":
            open_calls = {call["id"] for call in message.get("tool_calls") or []}
    assert not open_calls
