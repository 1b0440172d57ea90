"""kfd_shell: the built-in ``bash`` tool.

A plugin like any other: it imports only `kfd.api` and registers through the
``kfd`` entry-point group. Configured by ``[tools.bash]``::

    [tools.bash]
    default_timeout_s = 120   # a call that names no timeout
    max_timeout_s = 600       # larger requested timeouts are clamped to this
    bwrap = "bwrap"           # the bubblewrap program that confines commands

Commands run confined as the daemon's ``[sandbox]`` says (`kfd.api.Sandbox`,
`kfd.api.confine`), in their session's pod where one can take them
(`kfd.api.enter_pod`), else in a sandbox of their own; when bubblewrap cannot start, the tool raises
`kfd.api.ApprovalNeeded` and runs unconfined only once the user allowed it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kfd.api import close_pods, hookimpl

from .bash import BashArgs, BashSettings, BashTool

if TYPE_CHECKING:
    from collections.abc import Coroutine, Mapping

    from kfd.api import Tool

__all__ = ["BashArgs", "BashSettings", "BashTool", "kfd_shutdown", "kfd_tools"]


@hookimpl
def kfd_tools(config: Mapping[str, Any]) -> list[Tool[Any]]:
    """The bash tool, with its ``[tools.bash]`` settings."""
    return [BashTool(BashSettings.from_config(config.get("bash", {})))]


@hookimpl
def kfd_shutdown() -> Coroutine[Any, Any, None]:
    """Kill the pods the bash tool's commands entered."""
    return close_pods()
