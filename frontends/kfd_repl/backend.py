"""Requests found in `kfd.protocol` by name at run time, and the cost figure line.

A request newer than some daemons (``frontend.focus``) is looked up by its
method name, so a REPL installed with an older protocol simply goes without.
"""

from __future__ import annotations

from kfd import protocol as p


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


def cost_line(title: str, row: p.CostRow | None) -> str:
    """One line of a cost figure: requests, tokens, dollars (confirmed + estimated)."""
    if row is None:
        return f"{title:<16} —"
    tokens = row.input_tokens + row.output_tokens
    return (
        f"{title:<16} {row.requests:>5} req {tokens:>10,} tok "
        f"${row.cost_usd:>9.4f}  (${row.confirmed_usd:.4f} + ${row.estimated_usd:.4f})"
    )
