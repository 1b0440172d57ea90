"""The file system's own clock, for tests of answers kept while entries' times hold."""

from __future__ import annotations

from pathlib import Path

__all__ = ["next_tick"]


def next_tick(probe: Path, after: int) -> None:
    """Wait (on the file system's own clock, not a sleep) until an entry changed now
    gets a change time later than ``after`` (nanoseconds): file times tick coarsely,
    and a change in the tick an answer was kept in is what `FRESH_S` guards against,
    not the stamps these tests are about. ``probe`` is a file the test may write."""
    for _ in range(1_000_000):
        probe.write_text("x")
        if probe.stat().st_ctime_ns > after:
            return
    raise AssertionError("the file system's clock did not move")
