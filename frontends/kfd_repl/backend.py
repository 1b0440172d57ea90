"""Requests the daemon may or may not offer yet, found in `kfd.protocol` at run time.

Some slash commands (``/cost``, ``/compact``, ``/memory``, ``/context``)
need daemon features that arrive after the REPL. Rather than
pretend, the REPL looks for a matching request type in the protocol it was
installed with; when there is one it fills the fields it can (the session,
the workspace, the command's argument) and shows the result as it comes; when
there is none it says plainly that the feature is not available yet.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from kfd import protocol as p

FEATURES: dict[str, re.Pattern[str]] = {
    "cost": re.compile(r"^(cost|ledger)\.|^session\.cost$"),
    "compact": re.compile(r"^(session|context)\.compact$"),
    "memory": re.compile(r"^memory\.(list|search)$"),
    "context": re.compile(r"^context\.(show|get)$|^session\.context$"),
}
"""Which request methods serve which command, by name."""

TEXT_FIELDS = ("query", "instructions", "text", "prompt")
"""Fields that take the command's argument."""


class Unsupported(Exception):
    """The daemon has the request, but this REPL cannot fill a required field."""


def find(feature: str) -> type[p.Request] | None:
    """The request type serving ``feature``, or None if the protocol has none."""
    pattern = FEATURES[feature]
    return next((t for method, t in _requests() if pattern.search(method)), None)


def by_method(method: str) -> type[p.Request] | None:
    """The request type of ``method`` (``"frontend.focus"``), or None."""
    return next((t for name, t in _requests() if name == method), None)


def _requests() -> list[tuple[str, type[p.Request]]]:
    found: list[tuple[str, type[p.Request]]] = []
    for request_type in p.AnyRequest.__args__:
        tag = request_type.__struct_config__.tag
        if isinstance(tag, str):
            found.append((tag, request_type))
    return found


def build(request_type: type[p.Request], *, session: str, cwd: str, argument: str) -> p.Request:
    """An instance of ``request_type`` with the fields this REPL knows how to fill."""
    values: dict[str, Any] = {"id": ""}
    missing = []
    for field in msgspec.structs.fields(request_type):
        if field.name == "id":
            continue
        if field.name in ("session", "session_id"):
            values[field.name] = session
        elif field.name in ("cwd", "workspace"):
            values[field.name] = cwd
        elif field.name in TEXT_FIELDS and argument:
            values[field.name] = argument
        elif field.required:
            missing.append(field.name)
    if missing:
        method = request_type.__struct_config__.tag
        raise Unsupported(f"{method} needs {', '.join(missing)}, which this REPL cannot fill")
    return request_type(**values)


def describe(result: Any) -> list[str]:
    """Lines showing any decoded result: fields, nested records and lists."""
    return _lines(msgspec.to_builtins(result), "")


def _lines(value: Any, indent: str) -> list[str]:
    if isinstance(value, dict):
        out: list[str] = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                out.append(f"{indent}{key}:")
                out.extend(_lines(item, indent + "  "))
            else:
                out.append(f"{indent}{key}: {_scalar(item)}")
        return out
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, dict):
                rows = _lines(item, indent + "  ")
                if rows:
                    out.append(f"{indent}- {rows[0].lstrip()}")
                    out.extend(rows[1:])
            else:
                out.append(f"{indent}- {_scalar(item)}")
        return out or [f"{indent}(none)"]
    return [f"{indent}{_scalar(value)}"]


def cost_line(title: str, row: Any) -> str:
    """One line of a cost figure: requests, tokens, dollars (confirmed + estimated)."""
    if row is None:
        return f"{title:<16} —"
    get = getattr
    tokens = get(row, "input_tokens", 0) + get(row, "output_tokens", 0)
    confirmed, estimated = get(row, "confirmed_usd", 0.0), get(row, "estimated_usd", 0.0)
    return (
        f"{title:<16} {get(row, 'requests', 0):>5} req {tokens:>10,} tok "
        f"${get(row, 'cost_usd', 0.0):>9.4f}  (${confirmed:.4f} + ${estimated:.4f})"
    )


def _scalar(value: Any) -> str:
    if value is None or value == [] or value == {}:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
