"""kfd_lsp: language-server tools, and the errors an edit introduced.

Tools: ``lsp`` (a symbol's definition, references or hover; a file's symbols
or the workspace's; a file's diagnostics: read-only) and ``lsp_rename`` (edits
files: asks, and shows the combined diff). They are offered only in a
workspace with files of a language an installed server takes
(`kfd_lsp.availability`). A server starts per workspace on first use (see
`kfd_lsp.servers` for the defaults and ``[tools.lsp]``). After every
``edit`` or ``write`` of a file a server handles, the file's errors are
appended to that tool's result (an `kfd.api.AfterToolHook`), so the model sees
what it broke. Configuration::

    [tools.lsp]
    diagnostics_wait_s = 5
    after_edit = true
    [tools.lsp.servers.python]          # replaces the default for .py
    command = ["pylsp"]
    extensions = [".py", ".pyi"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kfd.api import hookimpl

from .hook import DiagnosticsAfterEdit
from .manager import LspManager
from .tools import LspTool, RenameTool

if TYPE_CHECKING:
    from collections.abc import Coroutine, Mapping

    from kfd.api import AfterToolHook, Tool

__all__ = ["LspManager", "kfd_after_tool_hooks", "kfd_shutdown", "kfd_tools", "tools_for"]

_manager: LspManager | None = None
"""The daemon's language servers (a plugin module is loaded once per daemon)."""


def _the_manager(config: Mapping[str, Any]) -> LspManager:
    global _manager
    if _manager is None:
        _manager = LspManager(config)
    return _manager


def tools_for(manager: LspManager) -> list[Tool[Any]]:
    """The lsp tools on one manager."""
    return [LspTool(manager), RenameTool(manager)]


@hookimpl
def kfd_tools(config: Mapping[str, Any]) -> list[Tool[Any]]:
    """The lsp tools; ``[tools.lsp]`` is read when they run."""
    return tools_for(_the_manager(config))


@hookimpl
def kfd_after_tool_hooks(config: Mapping[str, Any]) -> list[AfterToolHook]:
    """Diagnostics after edits."""
    return [DiagnosticsAfterEdit(_the_manager(config))]


@hookimpl
def kfd_status() -> Mapping[str, Any] | None:
    return _manager.status() if _manager is not None else None


@hookimpl
def kfd_shutdown() -> Coroutine[Any, Any, None] | None:
    """Stop every language server."""
    return _manager.close() if _manager is not None else None
