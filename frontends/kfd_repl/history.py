"""Input history, one file per project, under ``$XDG_STATE_HOME/kfd/history/``.

A project is the git work tree around the directory (or the directory
itself), so Up recalls what was typed for this codebase from any of its
subdirectories. History stays out of the repository, and private (mode 0600):
what people type to an agent can include things they would not commit.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from prompt_toolkit.history import FileHistory, History, InMemoryHistory, ThreadedHistory


def state_home() -> Path:
    """``$XDG_STATE_HOME``, or its default when unset or relative (as the spec says)."""
    value = os.environ.get("XDG_STATE_HOME", "")
    return Path(value) if os.path.isabs(value) else Path.home() / ".local" / "state"


def project_root(directory: str) -> Path:
    """The git work tree containing ``directory``, or ``directory`` itself."""
    start = Path(directory).resolve()
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    return start


def history_path(directory: str) -> Path:
    """Where the input history of ``directory``'s project is kept."""
    root = project_root(directory)
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", root.name)[:40] or "root"
    return state_home() / "kfd" / "history" / f"{name}-{digest}"


def open_history(directory: str) -> History:
    """The project's history, loaded in a thread; in memory if the file cannot be made."""
    path = history_path(directory)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
        os.close(fd)
    except OSError:
        return InMemoryHistory()
    return ThreadedHistory(FileHistory(str(path)))
