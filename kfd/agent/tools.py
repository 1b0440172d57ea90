"""The tool registry: schemas for the model, validated arguments for the tools."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from kfd.api import Tool
from kfd.gateway.types import ToolSpec

_decoder = msgspec.json.Decoder(dict[str, Any])


class InvalidArguments(Exception):
    """The model's arguments do not fit the tool; the message is for the model."""


class ToolRegistry:
    """The tools of the daemon, by name, with their schemas computed once."""

    def __init__(self, tools: Iterable[Tool[Any]]) -> None:
        self._tools = {tool.name: tool for tool in tools}
        self.specs = [
            ToolSpec(name=t.name, description=t.description.strip(), parameters=schema_of(t.Args))
            for t in self._tools.values()
        ]

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def get(self, name: str) -> Tool[Any] | None:
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self._tools)

    def parse(self, tool: Tool[Any], arguments: str) -> tuple[dict[str, Any], msgspec.Struct]:
        """Decode the model's JSON arguments and convert them to ``tool.Args``."""
        try:
            raw = _decoder.decode(arguments or "{}")
        except msgspec.DecodeError as exc:
            raise InvalidArguments(
                f"the arguments are not a valid JSON object ({exc}); send one JSON object "
                f"matching the `{tool.name}` schema"
            ) from None
        try:
            args = msgspec.convert(raw, tool.Args)
        except msgspec.ValidationError as exc:
            raise InvalidArguments(f"invalid arguments for `{tool.name}`: {exc}") from None
        return raw, args


def schema_of(args_type: type[msgspec.Struct]) -> dict[str, Any]:
    """The JSON schema of a Struct, with references inlined and titles dropped.

    Inlined because several providers reject ``$ref``; titles dropped because
    they cost tokens and tell the model nothing the names do not.
    """
    (schema,), components = msgspec.json.schema_components([args_type])
    inlined: dict[str, Any] = _inline(schema, components)
    return inlined


def _inline(node: Any, components: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            return _inline(components[ref.rsplit("/", 1)[-1]], components)
        inlined = {}
        for key, value in node.items():
            if key == "title":
                continue
            if key == "properties" and isinstance(value, dict):
                # Property names are data, not schema keywords: keep them all.
                inlined[key] = {name: _inline(sub, components) for name, sub in value.items()}
            else:
                inlined[key] = _inline(value, components)
        return inlined
    if isinstance(node, list):
        return [_inline(item, components) for item in node]
    return node
