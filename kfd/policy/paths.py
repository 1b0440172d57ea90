"""Path facts for decisions: where a path really points, and is it ours."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from kfd.api import PathAccess, ResolvedPath


def resolve(workspace: Path, accesses: Sequence[PathAccess]) -> list[ResolvedPath]:
    """Follow symlinks (of every existing component) and compare to the workspace.

    Blocking (it stats the file system): call it through a thread.
    """
    root = os.path.realpath(workspace)
    resolved = []
    for access in accesses:
        joined = os.path.join(workspace, os.path.expanduser(access.path))
        real = os.path.realpath(joined)
        inside = real == root or real.startswith(root.rstrip(os.sep) + os.sep)
        resolved.append(ResolvedPath(access.path, real, access.write, inside))
    return resolved
