"""How a frontend shows text that a hostile model or repository may have written.

An approval must show the whole command exactly: what the user allows is
what runs. Text can lie to the eye without any markup: a carriage return or
an ANSI escape overwrites what came before in a terminal, bidi controls
(U+202E, U+2066…) reorder what is shown, zero-width and other format
characters hide words, U+2028 breaks a line where no newline is seen.
`visible` spells every such character out, so the text shown has one
glyph sequence, the one that runs. Markup (HTML, Pango, Markdown) is each
frontend's own business: escape it after this.

Pure, stdlib only (a frontend imports `kfd.protocol` and pays for nothing else).
"""

from __future__ import annotations

import unicodedata

__all__ = ["visible"]

_KEPT = frozenset("\n\t")
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})
"""Control, format (bidi, zero-width), private-use, surrogate, unassigned, and
line/paragraph separators: none of them shows as what it is."""
_NAMED = {"\r": "\\r", "\x1b": "\\e", "\x00": "\\0", "\x7f": "\\x7f"}


_SPACES = frozenset(
    "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u202f\u205f\u3000\u3164\u115f\u1160\uffa0"
)
"""Spaces other than the ASCII one, and Hangul fillers that render blank: a
command with them reads like another command (``rm\u00a0-rf`` is one word)."""


def visible(text: str) -> str:
    """``text`` with every character that would not show as itself spelled out
    (``\\r``, ``\\e``, ``\\u202e``, ``\\U000e0041``…); newlines and tabs stay."""
    if text.isascii() and text.isprintable():
        return text  # the common case: nothing to do, no per-character work
    out: list[str] = []
    for char in text:
        if char in _KEPT:
            out.append(char)
        elif char in _NAMED:
            out.append(_NAMED[char])
        elif unicodedata.category(char) in _HIDDEN_CATEGORIES or char in _SPACES:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x80 else _escape(code))
        else:
            out.append(char)
    return "".join(out)


def _escape(code: int) -> str:
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
