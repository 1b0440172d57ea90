"""Directories nested deeper than a path or a recursion reaches, for tests.

A hostile command can nest directories past ``PATH_MAX`` and past Python's
recursion limit; tests of what kfd does with such trees make them by
descriptor (`nest`) and remove them without a recursion (`unnest`), since
pytest's own clean-up recurses and fails on them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from kfd.sandbox.sweep import remove

__all__ = ["nest", "unnest"]


def nest(directory: Path, name: str, levels: int) -> int:
    """``name/name/…`` made ``levels`` deep in ``directory``, one level at a time by
    descriptor; a descriptor of the deepest, for the caller to use and close."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(levels):
        os.mkdir(name, dir_fd=fd)
        inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    return fd


def unnest(directories: Iterable[Path], name: str) -> None:
    """``name`` removed from each of ``directories`` however deep it goes (and where
    it is missing, nothing), without a recursion (`kfd.sandbox.sweep.remove`)."""
    for directory in directories:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with contextlib.suppress(FileNotFoundError):
                remove(fd, name)
        finally:
            os.close(fd)
