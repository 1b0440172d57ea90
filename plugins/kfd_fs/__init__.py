"""kfd_fs: the built-in file tools -- read, write, edit, glob and grep.

A plugin like any other: it imports only `kfd.api` and registers through the
``kfd`` entry-point group. The tools share one piece of session state, the
stamps (content hash and mtime) of the files the model has read: write and
edit refuse to change a file the model has not read, or that changed since.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kfd.api import hookimpl

from .edit import EditTool
from .read import ReadTool
from .search import GlobTool, GrepTool
from .write import WriteTool

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kfd.api import Tool

__all__ = ["EditTool", "GlobTool", "GrepTool", "ReadTool", "WriteTool", "kfd_tools"]


@hookimpl
def kfd_tools(config: Mapping[str, Any]) -> list[Tool[Any]]:
    """The file tools. They take no configuration yet."""
    return [ReadTool(), WriteTool(), EditTool(), GlobTool(), GrepTool()]
