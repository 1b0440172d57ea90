"""A stop past its deadline says where it waits (`kfd.daemon.server.awaiting`)."""

from __future__ import annotations

import asyncio

from kfd.daemon.server import awaiting


async def _inner(event: asyncio.Event) -> None:
    await event.wait()


async def _outer(event: asyncio.Event) -> None:
    await _inner(event)


async def test_a_stuck_task_is_shown_down_its_await_chain() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(_outer(event))
    await asyncio.sleep(0)  # it runs up to its wait
    where = awaiting(task)
    event.set()
    await task
    steps = where.split(" -> ")
    assert steps[0].startswith("test_stop_diagnosis.py:") and steps[0].endswith(" _outer")
    assert steps[1].endswith(" _inner") and steps[2].endswith(" wait")
    assert steps[-1] == "a future"


async def _gathers(event: asyncio.Event) -> None:
    worker = asyncio.create_task(_outer(event), name="the worker")
    await asyncio.gather(worker)


async def test_the_chain_goes_on_into_the_tasks_it_gathers() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(_gathers(event))
    for _ in range(3):
        await asyncio.sleep(0)  # both run up to their waits
    where = awaiting(task)
    event.set()
    await task
    steps = where.split(" -> ")
    assert steps[0].endswith(" _gathers")
    assert steps[1:3] == ["gather (1 of 1 pending)", "task 'the worker'"]
    assert steps[3].endswith(" _outer") and steps[4].endswith(" _inner")
    assert steps[-1] == "a future"
