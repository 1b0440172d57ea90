"""Which files an lsp answer may quote: the rules of the model's own ``read``.

A language server names files the model did not: a definition in
``secrets/prod.py``, a reference in a directory a project's
``pyrightconfig.json`` points at outside the workspace. No permission
decision saw those files, so what an answer shows of them meets the rules a
``read`` of each would: a file a read rule denies or asks about
(`kfd.api.ToolContext.read_denied`, under its name and where it really is)
is left out, text and name; a file outside the workspace is named by path
and line only (reading it asks). The answer says how many were left out and
why, as ``grep`` does. A type checker also carries a constant's value into
the types of code that uses it (``Literal['sk-…']``): hovers and diagnostics
show only the string values the file asked about holds itself
(`scrub_literals`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from kfd.api import ToolContext

Shown = Literal["text", "path", "nothing"]
"""How much of a file an answer may show: its lines, its path only, or nothing."""


class Withheld:
    """Judges the files an answer names, and counts what it kept back."""

    def __init__(self, ctx: ToolContext) -> None:
        self._ctx = ctx
        self._workspace = ctx.workspace
        self._judged: dict[Path, Shown] = {}
        self.restricted: set[Path] = set()
        self.rules: set[str] = set()
        self.outside: set[Path] = set()

    def judge(self, path: Path) -> Shown:
        """How much of ``path`` (absolute, normalised) may be shown (blocking: it
        resolves symbolic links)."""
        known = self._judged.get(path)
        if known is not None:
            return known
        rule = self.rule_for(path)
        shown: Shown
        if rule is not None:
            self.restricted.add(path)
            self.rules.add(rule)
            shown = "nothing"
        elif not _inside(path, self._workspace):
            self.outside.add(path)
            shown = "path"
        else:
            shown = "text"
        self._judged[path] = shown
        return shown

    def rule_for(self, path: Path) -> str | None:
        """The read rule that denies or asks before reading ``path`` under its name
        or where it really is, or None (blocking)."""
        rule = self._ctx.read_denied(str(path))
        if rule is None:
            real = os.path.realpath(path)
            if real != str(path):
                rule = self._ctx.read_denied(real)
        return rule

    def note(self, what: str, *, outside_shown: bool = True) -> str:
        """The lines that say what was kept back ("" when nothing was).

        ``outside_shown``: the answer named the places outside the workspace (by
        path only); else it left them out too.
        """
        notes = ""
        if self.restricted:
            count = len(self.restricted)
            rules = ", ".join(sorted(self.rules)[:5]) + (" ..." if len(self.rules) > 5 else "")
            files = "file" if count == 1 else "files"
            notes += (
                f"\n[{what} in {count} {files} left out by read rules ({rules}): their "
                "content is not shown to you; do not try to read them another way]"
            )
        if self.outside:
            count = len(self.outside)
            files = "a file" if count == 1 else f"{count} files"
            shown = "shown without their text" if outside_shown else "left out"
            notes += (
                f"\n[{what} in {files} outside the workspace {shown}: read them with the "
                "read tool (reading outside the workspace asks the user)]"
            )
        return notes


def _inside(path: Path, workspace: Path) -> bool:
    """Whether ``path`` lies in the workspace, where it really is too."""
    if not path.is_relative_to(workspace):
        return False
    real = Path(os.path.realpath(path))
    return real.is_relative_to(os.path.realpath(workspace))


_LITERAL = re.compile(r"Literal\[")
_QUOTED = re.compile(r"""b?('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")

LITERALS_NOTE = (
    "[string values of Literal types that are not in this file are shown as '…': they "
    "may come from files you may not read]"
)


def scrub_literals(text: str, known: str) -> tuple[str, bool]:
    """``text`` (a hover, a diagnostic) with each string in a ``Literal[...]`` type
    that does not occur in ``known`` (the text of the file asked about) replaced by
    ``'…'``, and whether one was.

    A type checker infers a constant's value into the types of whatever uses it
    (``x = API_TOKEN`` is ``x: Literal['sk-…']``): a value from a file the model
    may not read would show in a file it may. Values of the file itself stay.
    Pyright's spelling (``Literal['a', "b"]``); a value it cut short ends in ``…``.
    """
    parts: list[str] = []
    scrubbed = False
    position = 0
    for opening in _LITERAL.finditer(text):
        if opening.start() < position:
            continue
        parts.append(text[position : opening.end()])
        position = opening.end()
        depth = 1
        while position < len(text) and depth:
            quoted = _QUOTED.match(text, position)
            if quoted is not None:
                value = quoted.group(1)[1:-1].removesuffix("…")
                if value in known:
                    parts.append(quoted.group(0))
                else:
                    parts.append("'…'")
                    scrubbed = True
                position = quoted.end()
                continue
            character = text[position]
            depth += {"[": 1, "]": -1}.get(character, 0)
            parts.append(character)
            position += 1
    parts.append(text[position:])
    return "".join(parts), scrubbed
