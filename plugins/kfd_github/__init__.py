"""kfd_github: ``github_read``, read-only access to GitHub's REST API.

The token comes from ``GITHUB_TOKEN`` or ``GH_TOKEN``, else from the ``gh``
CLI when it is logged in (``gh auth token``); without one, public data is
read at the unauthenticated rate limit. Rate-limit answers are reported with
the time the limit resets. Configuration (optional)::

    [tools.github_read]
    api_url = "https://api.github.com"   # GitHub Enterprise: "https://HOST/api/v3"
    timeout_s = 20
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kfd.api import hookimpl

from .read import GitHubReadTool

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kfd.api import Tool

__all__ = ["GitHubReadTool", "kfd_tools"]


@hookimpl
def kfd_tools(config: Mapping[str, Any]) -> list[Tool[Any]]:
    """The GitHub tool; it reads ``[tools.github_read]`` when it runs."""
    return [GitHubReadTool()]
