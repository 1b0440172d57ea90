"""What each bash builtin does with its words (``data/builtins.toml``), as values.

The shell analyser (`kfd.policy.shell.evaluation`) reads this to find the
words bash would evaluate as code: names with array subscripts, arithmetic,
callbacks. Pure: the data is read once, on first use.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

__all__ = ["BuiltinSpec", "builtin_for", "builtin_names"]


@dataclass(frozen=True, slots=True)
class BuiltinSpec:
    """One bash builtin (see the header of ``builtins.toml``)."""

    name: str
    flags: frozenset[str] = frozenset()
    valued: frozenset[str] = frozenset()
    names: str = ""
    """Which operands name variables: ``operands`` (all), ``second`` (getopts), or none."""
    name_options: frozenset[str] = frozenset()
    arithmetic: bool = False
    risky: Mapping[str, str] = field(default_factory=dict)
    risk: str = ""
    safe_with: frozenset[str] = frozenset()
    """Options with which its ``risk`` does not apply (``fc -l`` only lists)."""
    safe_alone: bool = False
    """Without operands its ``risk`` does not apply (``enable`` lists the builtins)."""
    allowed: frozenset[str] = frozenset()
    handled: bool = False


def _spec(name: str, table: Mapping[str, Any]) -> BuiltinSpec:
    return BuiltinSpec(
        name=name,
        flags=frozenset(table.get("flags", "")),
        valued=frozenset(table.get("valued", "")),
        names=str(table.get("names", "")),
        name_options=frozenset(table.get("name_options", ())),
        arithmetic=table.get("arithmetic") == "operands",
        risky=dict(table.get("risky", {})),
        risk=str(table.get("risk", "")),
        safe_with=frozenset(table.get("safe_with", ())),
        safe_alone=bool(table.get("safe_alone", False)),
        allowed=frozenset(table.get("allowed", ())),
        handled=bool(table.get("handled", False)),
    )


@functools.cache
def _builtins() -> dict[str, BuiltinSpec]:
    text = resources.files("kfd.policy.programs.data").joinpath("builtins.toml").read_text()
    specs: dict[str, BuiltinSpec] = {}
    for name, table in tomllib.loads(text).items():
        spec = _spec(name, table)
        for alias in (name, *table.get("also", ())):
            specs[alias] = spec
    return specs


def builtin_for(name: str) -> BuiltinSpec | None:
    """The builtin called ``name``, if bash has one."""
    return _builtins().get(name)


def builtin_names() -> frozenset[str]:
    """Every builtin the data describes."""
    return frozenset(_builtins())
