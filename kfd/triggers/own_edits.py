"""Which file changes kfd made itself, so they never fire a trigger.

Every tool that may change files (not read-only) runs between its
``tool.started`` and ``tool.completed`` events. A changed file whose mtime
falls in such a window, for a session whose workspace holds the file, was
changed by kfd; a deleted file (no mtime left) is kfd's if its deletion is
seen while such a tool runs or shortly after. A user's edit made while a
kfd command runs in the same workspace is taken for kfd's: that is the price
of never re-triggering on our own work.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from kfd.protocol import Event, ToolCompleted, ToolRequested, ToolStarted

CLOCK_MARGIN_S = 0.02
"""File mtimes come from the kernel's coarse clock, up to a tick (1-10 ms)
behind time.time(): a write just after a tool started may look earlier. No
margin is needed after the end, as a coarse mtime is never ahead."""

DELETION_SETTLE_S = 3.0
"""How long after a tool ends a deletion it made may still be reported."""

KEPT_WINDOWS = 1000


@dataclass(slots=True)
class _Window:
    workspace: str
    start: float
    end: float | None = None


class OwnEdits:
    """Feed it every event (`observe`); ask it about a changed file (`made_by_kfd`)."""

    def __init__(self, workspace_of: Callable[[str], str | None]) -> None:
        self._workspace_of = workspace_of
        self._read_only: dict[str, bool] = {}
        self._open: dict[str, _Window] = {}
        self._closed: deque[_Window] = deque(maxlen=KEPT_WINDOWS)

    def observe(self, event: Event) -> None:
        if isinstance(event, ToolRequested):
            self._read_only[event.call_id] = event.read_only
        elif isinstance(event, ToolStarted):
            if self._read_only.pop(event.call_id, False):
                return
            workspace = self._workspace_of(event.session)
            if workspace is not None:
                self._open[event.call_id] = _Window(workspace, event.ts or time.time())
        elif isinstance(event, ToolCompleted):
            self._read_only.pop(event.call_id, None)
            window = self._open.pop(event.call_id, None)
            if window is not None:
                window.end = event.ts or time.time()
                self._closed.append(window)

    def made_by_kfd(self, path: str, mtime: float | None, now: float | None = None) -> bool:
        """True if kfd's own tools changed ``path`` (its mtime, None if deleted)."""
        now = time.time() if now is None else now
        for window in [*self._open.values(), *self._closed]:
            if not _inside(path, window.workspace):
                continue
            end = window.end
            if mtime is None:
                if end is None or now - end <= DELETION_SETTLE_S:
                    return True
            elif window.start - CLOCK_MARGIN_S <= mtime and (end is None or mtime <= end):
                return True
        return False


def _inside(path: str, workspace: str) -> bool:
    return path == workspace or path.startswith(workspace.rstrip(os.sep) + os.sep)
