"""Many crash trials (`kfd.testing.crash`): kill -9 and SIGTERM at random points,
at a stream's last byte and right after an acknowledgement; prints how often
every invariant held and what the ledger saw.

    .venv/bin/python bench/crash_loop.py [TRIALS]
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

from kfd.testing.crash import CrashLab, Moment, Signal

KINDS: list[tuple[Signal, Moment]] = [
    ("kill", "random"),
    ("kill", "last_byte"),
    ("kill", "acked"),
    ("term", "random"),
    ("term", "last_byte"),
    ("term", "acked"),
]


async def main(trials: int) -> None:
    rng = random.Random(2024)
    failed: list[str] = []
    started = time.monotonic()
    async with CrashLab(Path(tempfile.mkdtemp(prefix="kfd-crash-"))) as lab:
        for number in range(trials):
            signal, moment = KINDS[number % len(KINDS)]
            await lab.trial(signal, moment, rng)
            problems = await lab.check()
            if problems:
                failed.append(f"trial {number + 1} ({signal}/{moment}): {problems[:3]}")
                print(failed[-1], flush=True)
    tally = lab.tally
    took = time.monotonic() - started
    kinds = ", ".join(f"{kind} {count}" for kind, count in tally.by_moment.items())
    lost = any("acknowledged" in failure for failure in failed)
    terms = sum(count for kind, count in tally.by_moment.items() if kind.startswith("term"))
    print(
        f"{tally.trials} trials in {took:.0f} s ({kinds}):\n"
        f"  trials with every invariant holding: {tally.trials - len(failed)} of {tally.trials}\n"
        f"  requests the model server received: {tally.requests}; ledger rows: {tally.rows}; "
        f"rows whose request never left (a kill between row and first byte): {tally.unsent_rows}\n"
        f"  acknowledged messages: {tally.acknowledged}, all in their logs: {not lost}\n"
        f"  SIGTERM stops clean and within the deadline: {tally.clean_stops} of {terms}"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 120))
