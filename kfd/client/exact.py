"""Showing text exactly: what a terminal would act on or hide, made visible.

An approval must show the user exactly what they allow. A terminal acts on
escape sequences and carriage returns (``echo safe\\rrm -rf ~`` shows only its
second half), and some characters draw nothing at all (zero-width spaces,
bidi overrides that reorder what follows, blank-looking letters). Stripping
them would hide them too; here each becomes a visible escape (``\\r``,
``\\x1b``, ``<U+202E>``) a frontend can mark, and everything else is kept.
Every frontend that shows a command or a path for a decision uses this (the
REPL, ``kfd run``).

A command can also hide in plain sight: thousands of blank lines or spaces push
what follows off the screen, out of the scrollback, or out of a notification
bubble. `compact` is how every approval shows a command: exactly (hidden
characters escaped) and compactly, each such run of blanks one counted marker
(``⏎×6000``, ``␠×1300``), so that all of what runs fits on the screen.
Pure functions, no I/O.
"""

from __future__ import annotations

import re
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


LINE_BREAKS_COUNTED = 3
"""This many line breaks in a row (blank lines, spaces and tabs on them aside) or
more show as one marker: two blank lines are still drawn as they are."""

SPACES_COUNTED = 17
"""This many spaces in a row or more show as one marker (fewer: indentation)."""

REPEATS_COUNTED = 8
"""This many of one hidden character in a row or more show as one marker."""

LINE_BREAK = "⏎"
SPACE = "␠"

_RUNS = re.compile(
    rf"(?P<lines>\n(?:[ \t]*\n){{{LINE_BREAKS_COUNTED - 1},}})"
    rf"|(?P<spaces> {{{SPACES_COUNTED},}})"
    rf"|(?P<same>(?P<char>.)(?P=char){{{REPEATS_COUNTED - 1},}})",
    re.DOTALL,
)


def compact_segments(text: str, *, one_line: bool = False) -> Iterator[tuple[str, bool]]:
    """``text`` as an approval shows it, as runs of (text, is_marked).

    Hidden characters are escaped as in `segments`. A run of blank lines (three
    line breaks or more, with only spaces and tabs between) is one marker,
    ``⏎×N`` (``⏎×N␠×M`` when the blank lines hold M spaces), followed by one
    line break, so that what follows starts its own line as it does in the
    command. A run of many spaces is ``␠×N``; a run of one hidden character is
    its escape counted (``\\t×40``). With ``one_line`` every line break is a
    ``⏎`` marker and none is kept.
    """
    start = 0
    for match in _RUNS.finditer(text):
        if match.group("lines") is None and match.group("spaces") is None:
            char = match.group("char")
            if not hidden(char):
                continue  # "========": plain text, shown as it is
        yield from _broken(segments(text[start : match.start()]), one_line)
        start = match.end()
        run = match.group(0)
        if match.group("lines") is not None:
            yield _counted_lines(run), True
            if not one_line:
                yield "\n", False
        elif match.group("spaces") is not None:
            yield f"{SPACE}×{len(run)}", True
        else:
            yield f"{escape(run[0])}×{len(run)}", True
    yield from _broken(segments(text[start:]), one_line)


def compact(text: str, *, one_line: bool = False) -> str:
    """``text`` as every approval shows it (see `compact_segments`), unmarked."""
    return "".join(part for part, _ in compact_segments(text, one_line=one_line))


def _counted_lines(run: str) -> str:
    breaks, spaces, tabs = run.count("\n"), run.count(" "), run.count("\t")
    marker = f"{LINE_BREAK}×{breaks}"
    if spaces:
        marker += f"{SPACE}×{spaces}"
    if tabs:
        marker += escape("\t") + f"×{tabs}"
    return marker


def _broken(parts: Iterator[tuple[str, bool]], one_line: bool) -> Iterator[tuple[str, bool]]:
    # Line breaks kept as they are, or (one_line) each shown as a marker.
    for part, escaped in parts:
        if not one_line or escaped or "\n" not in part:
            yield part, escaped
            continue
        first, *rest = part.split("\n")
        if first:
            yield first, False
        for piece in rest:
            yield LINE_BREAK, True
            if piece:
                yield piece, False
