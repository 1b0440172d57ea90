"""Reading a tool's ``[tools.<name>]`` table: typed values with defaults, clear errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

from kfd.api import ToolError

T = TypeVar("T", bound=msgspec.Struct)


def settings(tool: str, config: Mapping[str, Any], kind: type[T]) -> T:
    """``config`` (the tool's table) converted to ``kind``; a mistake is a ToolError."""
    try:
        return msgspec.convert(dict(config), kind)
    except msgspec.ValidationError as exc:
        raise ToolError(f"[tools.{tool}] in the kfd config: {exc}; fix the config") from None
