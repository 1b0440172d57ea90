"""Programs that run another program (``data/wrappers.toml``), as values.

The shell analyser (`kfd.policy.shell.unwrap`) follows each wrapper to the
command doing the work. A wrapper's options come from its generated table
(``options-gnu.json``) and the wrapper's own lines; they end at the first
operand. Pure: the data is read once, on first use.
"""

from __future__ import annotations

import dataclasses
import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from kfd.policy.programs.spec import OptionSpec, ProgramSpec, parse_option, spec_for

__all__ = ["WrapperSpec", "wrapper_for", "wrapper_names"]


@dataclass(frozen=True, slots=True)
class WrapperSpec:
    """One wrapper (see the header of ``wrappers.toml``)."""

    name: str
    program: ProgramSpec
    """Its options, read in the ``plain`` style (they end at the first operand)."""
    before: int = 0
    command: Literal["argv", "joined", "none"] = "argv"
    optional: bool = False
    scripts: frozenset[str] = frozenset()
    argv_options: frozenset[str] = frozenset()
    terminal: frozenset[str] = frozenset()
    chdir: frozenset[str] = frozenset()
    privilege: bool = False
    assignments: str = ""
    split: frozenset[str] = frozenset()
    applet: bool = False
    writes: frozenset[str] = frozenset()
    writes_operand: str = ""
    """The wrapper writes the file its operand names (this one without): ``script``."""
    runs: frozenset[str] = frozenset()
    """Options whose value is a program it runs or a library it loads (``fakeroot
    --faked``, ``dbus-run-session --dbus-daemon``): they ask."""
    creates_before: bool = False
    """Its operands before the command are files it creates: ``flock FILE``."""
    unsets: frozenset[str] = frozenset()
    clears: frozenset[str] = frozenset()


def _spec(name: str, table: Mapping[str, Any]) -> WrapperSpec:
    base = spec_for(name)
    options: dict[str, OptionSpec] = dict(base.options) if base is not None else {}
    for line in table.get("options", ()):
        option = parse_option(line)
        for spelling in option.spellings:
            options[spelling] = option
    program = ProgramSpec(
        name=name,
        style="plain",
        options=options,
        long_spellings=tuple(sorted(s for s in options if s.startswith("--"))),
        numeric=bool(table.get("numeric", False)),
        source=base.source if base is not None else "wrappers.toml",
    )
    return WrapperSpec(
        name=name,
        program=program,
        before=int(table.get("before", 0)),
        command=table.get("command", "argv"),
        optional=bool(table.get("optional", False)),
        scripts=frozenset(table.get("scripts", ())),
        argv_options=frozenset(table.get("argv_options", ())),
        terminal=frozenset(table.get("terminal", ())),
        chdir=frozenset(table.get("chdir", ())),
        privilege=bool(table.get("privilege", False)),
        assignments=str(table.get("assignments", "")),
        split=frozenset(table.get("split", ())),
        applet=bool(table.get("applet", False)),
        writes=frozenset(table.get("writes", ())),
        writes_operand=str(table.get("writes_operand", "")),
        creates_before=bool(table.get("creates_before", False)),
        runs=frozenset(table.get("runs", ())),
        unsets=frozenset(table.get("unsets", ())),
        clears=frozenset(table.get("clears", ())),
    )


@functools.cache
def _wrappers() -> dict[str, WrapperSpec]:
    text = resources.files("kfd.policy.programs.data").joinpath("wrappers.toml").read_text()
    specs: dict[str, WrapperSpec] = {}
    for name, table in tomllib.loads(text).items():
        spec = _spec(name, table)
        specs[name] = spec
        for alias in table.get("also", ()):
            specs[alias] = dataclasses.replace(spec, name=alias)
    return specs


def wrapper_for(name: str) -> WrapperSpec | None:
    """The wrapper called ``name`` (a bare program name), if kfd knows it."""
    return _wrappers().get(name)


def wrapper_names() -> frozenset[str]:
    """Every wrapper kfd follows."""
    return frozenset(_wrappers())
