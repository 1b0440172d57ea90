"""Showing text exactly: what a terminal would act on or hide, made visible.

An approval must show the user exactly what they allow. A terminal acts on
escape sequences and carriage returns (``echo safe\\rrm -rf ~`` shows only its
second half), and some characters draw nothing at all (zero-width spaces,
bidi overrides that reorder what follows, blank-looking letters). Stripping
them would hide them too; here each becomes a visible escape (``\\r``,
``\\x1b``, ``<U+202E>``) a frontend can mark, and everything else is kept.
Every frontend that shows a command or a path for a decision uses this (the
REPL, ``kfd run``). Pure functions, no I/O.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})
"""Controls, formatting (bidi, zero-width), surrogates, private and unassigned
code points, line and paragraph separators, and spaces (the plain space aside)."""

BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5")
"""Letters and marks that fonts draw as nothing (Hangul fillers, the braille
blank, ...): in a command they pass for a space or for nothing."""

NAMED = {"\r": "\\r", "\t": "\\t"}


def hidden(char: str) -> bool:
    """Whether a terminal would not show ``char`` as itself."""
    if char in (" ", "\n"):
        return False
    return unicodedata.category(char) in HIDDEN_CATEGORIES or char in BLANK_LOOKING


def escape(char: str) -> str:
    """The visible form of a hidden character."""
    named = NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"<U+{code:04X}>"


def segments(text: str, *, keep_tabs: bool = False) -> Iterator[tuple[str, bool]]:
    """``text`` as runs of (text, is_escape): plain runs as they are, each hidden
    character as its escape. ``keep_tabs`` leaves tabs alone (file content), and
    a carriage return that ends a line (CRLF files) then too: it hides nothing."""
    if text.isprintable() and BLANK_LOOKING.isdisjoint(text):
        # Nothing hidden (the common case, fast): Python's "printable" leaves out
        # exactly the categories above, and the plain space is printable.
        if text:
            yield text, False
        return
    plain: list[str] = []
    last = len(text) - 1
    for index, char in enumerate(text):
        keep = not hidden(char) or (
            keep_tabs
            and (char == "\t" or (char == "\r" and (index == last or text[index + 1] == "\n")))
        )
        if keep:
            if char != "\r":  # a kept line-ending CR: not drawn at all
                plain.append(char)
            continue
        if plain:
            yield "".join(plain), False
            plain = []
        yield escape(char), True
    if plain:
        yield "".join(plain), False


def visible(text: str, *, keep_tabs: bool = False) -> str:
    """``text`` with every hidden character escaped (one string, unmarked)."""
    return "".join(part for part, _ in segments(text, keep_tabs=keep_tabs))
