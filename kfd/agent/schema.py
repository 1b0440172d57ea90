"""The JSON schema a model sees for a tool's arguments: as short as its meaning allows.

Every byte of every tool's schema travels with every model request, so the
schema derived from a tool's ``Args`` Struct keeps what tells the model how to
call the tool (types, enums, descriptions, numeric ranges, defaults that say
something) and drops what does not:

- ``$ref``: inlined, because several providers reject references;
- titles, and the docstrings of the Structs themselves: the tool's
  description and the fields' descriptions speak for them;
- ``additionalProperties: false`` and length bounds (``maxLength``,
  ``minItems``, ...): limits kfd enforces itself when it converts the
  arguments, answering the model with a clear error; no model comes near them;
- defaults that say "nothing" (``""``, ``false``, ``0``, ``null``, empty
  lists), the ``null`` branch of an optional field, an empty ``required``:
  a field left out of ``required`` already says it is optional; and a
  ``minimum`` of 0 on an integer (offsets and counts are never negative).

Schemas a tool supplies itself (`kfd.api.Tool.parameters`: an MCP server's)
are sent as given: they are the server's contract.
"""

from __future__ import annotations

from typing import Any

import msgspec

DROPPED_KEYWORDS = frozenset(
    {"title", "additionalProperties", "maxLength", "minLength", "maxItems", "minItems"}
)
_EMPTY_DEFAULTS: tuple[object, ...] = ("", False, 0, 0.0, None, [], {})


def schema_of(args_type: type[msgspec.Struct]) -> dict[str, Any]:
    """The JSON schema of an arguments Struct, as the model is sent it."""
    (schema,), components = msgspec.json.schema_components([args_type])
    inlined: dict[str, Any] = _inline(schema, components)
    inlined.pop("description", None)
    return inlined


def _inline(node: Any, components: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(item, components) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = dict(components[ref.rsplit("/", 1)[-1]])
        target.pop("description", None)  # the Struct's docstring; the field's own wins
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        return _inline({**target, **siblings}, components)
    inlined: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED_KEYWORDS:
            continue
        if key == "properties" and isinstance(value, dict):
            # Property names are data, not schema keywords: keep them all.
            inlined[key] = {name: _inline(sub, components) for name, sub in value.items()}
        elif key == "anyOf" and isinstance(value, list):
            branches = [b for b in value if b != {"type": "null"}]
            if len(branches) == 1:
                inlined.update(_inline(branches[0], components))
            else:
                inlined[key] = _inline(branches, components)
        elif (key == "default" and _says_nothing(value)) or (key == "required" and not value):
            continue
        elif key == "minimum" and value == 0 and node.get("type") == "integer":
            continue  # offsets and counts are not negative: no model needs telling
        else:
            inlined[key] = _inline(value, components)
    return inlined


def _says_nothing(value: object) -> bool:
    # `False == 0` in Python: compare by type too, so `default: 0.5` or `1` stay.
    return any(type(value) is type(empty) and value == empty for empty in _EMPTY_DEFAULTS)
