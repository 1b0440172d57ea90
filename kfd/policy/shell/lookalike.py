"""Characters that make a command line look unlike what bash runs.

Part of the shell analyser (`kfd.policy.shell`): a carriage return or an
escape sequence rewrites what a terminal shows, a zero-width space hides a
word's end, a Cyrillic ``і`` makes ``gіt`` look like ``git``. Each is a
`lookalike` risk: a human must look at the exact bytes.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["plain_text", "suspicious_characters"]

_CONFUSABLE_SCRIPTS = ("CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zs", "Zl", "Zp"})


_PLAIN = re.compile(r"[\t\n\x20-\x7e]*")


def plain_text(text: str) -> bool:
    """Whether ``text`` holds printable ASCII, tabs and newlines only: nothing in it is
    suspicious (`suspicious_characters` finds nothing)."""
    return _PLAIN.fullmatch(text) is not None


def suspicious_characters(text: str) -> list[str]:
    """Describe characters that could make `text` look unlike what bash runs.

    Flags ASCII control characters other than tab and newline (a carriage
    return or escape sequence can rewrite what a terminal shows), invisible,
    format and bidirectional characters, non-ASCII spaces, characters whose
    compatibility form is ASCII (fullwidth `；`, `｜`, ...), and words mixing
    ASCII letters with Cyrillic, Greek or similar letters (`gіt`).
    """
    if plain_text(text):
        return []
    found: list[str] = []
    seen: set[str] = set()
    for c in text:
        if c in seen or c in "\t\n":
            continue
        if c.isascii():
            if c.isprintable():
                continue
            seen.add(c)
            found.append(f"control character U+{ord(c):04X}")
            continue
        seen.add(c)
        name = unicodedata.name(c, "unnamed character")
        if unicodedata.category(c) in _INVISIBLE_CATEGORIES:
            found.append(f"U+{ord(c):04X} {name}")
        elif any(ch.isascii() for ch in unicodedata.normalize("NFKC", c)):
            found.append(f"U+{ord(c):04X} {name} looks like ASCII")
    if not text.isascii():
        for token in text.split():
            if any(ch.isascii() and ch.isalpha() for ch in token):
                mixed = [ch for ch in token if _confusable(ch)]
                if mixed:
                    found.append(f"{token!r} mixes ASCII with look-alike letters")
    return found


def _confusable(c: str) -> bool:
    return (
        not c.isascii() and c.isalpha() and unicodedata.name(c, "").startswith(_CONFUSABLE_SCRIPTS)
    )
