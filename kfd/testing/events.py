"""Reading a session's events in tests: until a condition, with a timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kfd import protocol as p
from kfd.client import Attachment, Client, Item


async def collect_until(
    attachment: Attachment,
    done: Callable[[Item], bool],
    timeout: float = 10.0,
) -> list[Item]:
    """Every item up to and including the first for which ``done`` is true."""
    items: list[Item] = []
    while True:
        item = await attachment.next_event(timeout)
        items.append(item)
        if done(item):
            return items


async def status_until(
    client: Client,
    done: Callable[[p.StatusResult], bool],
    timeout: float = 20.0,
    every_s: float = 0.05,
) -> p.StatusResult:
    """The daemon's status once ``done(status)`` holds, asked every ``every_s`` (for
    what no event announces: an idle session unloaded, servers stopped, a drain
    begun); TimeoutError after ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            status = await client.status()
            if done(status):
                return status
            await asyncio.sleep(every_s)


async def unasked_turn(
    client: Client, session: str, text: str, timeout: float = 60.0
) -> list[Item]:
    """Send ``text`` and read the turn it starts to its end; a turn that asks for
    an approval fails the test (the tests using it expect none)."""
    since = (await client.session(session)).last_seq
    async with await client.attach(session, since_seq=since) as view:
        await client.send(session, text)
        items: list[Item] = []
        while not items or not turn_completed(items[-1]):
            item = await view.next_event(timeout)
            assert not isinstance(item, p.ApprovalRequested), item.reason
            items.append(item)
    return items


def turn_completed(item: Item) -> bool:
    return isinstance(item, p.TurnCompleted)


def of_type(kind: type[Any]) -> Callable[[Item], bool]:
    return lambda item: isinstance(item, kind)


def assembled_text(items: list[Item], message_id: str, kind: str = "text") -> str:
    """The text the deltas of one message add up to (checking offsets line up)."""
    text = ""
    for item in items:
        if isinstance(item, p.MessageDelta) and item.message_id == message_id and item.kind == kind:
            assert item.offset == len(text), f"delta at {item.offset}, text so far {len(text)}"
            text += item.text
    return text
