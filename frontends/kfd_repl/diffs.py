"""How a unified diff looks: line numbers, a coloured change mark, highlighted code.

Each row is ``OLD NEW │±code``: the line's number before and after the change
(blank on the side it is missing from), ``-`` or ``+`` in red or green, and
the code highlighted by pygments for the file's language (guessed from its
name in the ``+++`` header). Each side of a hunk is highlighted as one piece,
so a string or comment spanning lines keeps its colour.

Diff text is file content, not terminal input: characters a terminal would
act on or hide are escaped (`kfd.client.exact`) and marked, tabs are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rich.syntax import Syntax
from rich.text import Text

from kfd.client.exact import segments

CODE_THEME = "ansi_dark"
"""Pygments colours through the terminal's own palette, so any theme fits."""

HIGHLIGHTED_LINES = 1000
"""Longer diffs are shown whole but not highlighted (pygments would take seconds)."""

_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")
_PATH = re.compile(r"^(?:\+\+\+|---) (?:[ab]/)?(.+?)(?:\t.*)?$")


@dataclass(slots=True)
class _Row:
    kind: str
    """``+``, ``-``, `` `` (context), ``@`` (hunk header), ``h`` (file header), ``\\``, ``…``."""
    text: str
    old: int | None = None
    new: int | None = None


def diff_text(diff: str, width: int, *, limit: int | None = None, crop: bool = True) -> Text:
    """A unified diff as terminal text.

    ``limit`` cuts it after that many lines (saying how many more there are);
    ``crop`` keeps each row to one terminal line (an ellipsis ends longer ones),
    otherwise long rows wrap and everything shows (what an approval needs).
    """
    lines = diff.rstrip("\n").split("\n")
    more = 0
    if limit is not None and len(lines) > limit:
        more = len(lines) - limit
        lines = lines[:limit]
    rows, path = _rows(lines)
    if more:
        rows.append(_Row("…", f"… {more} more lines of diff"))
    codes = _highlighted(rows, path)
    digits = max([len(str(n)) for row in rows for n in (row.old, row.new) if n is not None] or [1])
    out = []
    for index, row in enumerate(rows):
        line = _row(row, codes.get(index), digits)
        line.overflow = "ellipsis" if crop else "fold"
        line.no_wrap = crop
        if crop:
            line.truncate(width, overflow="ellipsis")
        out.append(line)
    return Text("\n").join(out)


def _rows(lines: list[str]) -> tuple[list[_Row], str]:
    rows: list[_Row] = []
    path = ""
    old = new = 0
    in_hunk = False
    for line in lines:
        hunk = _HUNK.match(line)
        if hunk is not None:
            old, new = int(hunk.group(1)), int(hunk.group(2))
            in_hunk = True
            rows.append(_Row("@", line))
            continue
        if not in_hunk:
            named = _PATH.match(line)
            if named is not None and named.group(1) != "/dev/null":
                path = named.group(1)
            rows.append(_Row("h", line))
            continue
        mark, code = line[:1], line[1:]
        if mark == "+":
            rows.append(_Row("+", code, new=new))
            new += 1
        elif mark == "-":
            rows.append(_Row("-", code, old=old))
            old += 1
        elif mark == "\\":
            rows.append(_Row("\\", line))
        elif line.startswith("diff ") or mark not in (" ", ""):
            in_hunk = False  # the next file's headers
            rows.append(_Row("h", line))
        else:
            rows.append(_Row(" ", code, old=old, new=new))
            old += 1
            new += 1
    return rows, path


def _highlighted(rows: list[_Row], path: str) -> dict[int, Text]:
    """The code of each change or context row, highlighted, by row index."""
    lexer = Syntax.guess_lexer(path) if path and len(rows) <= HIGHLIGHTED_LINES else "default"
    found: dict[int, Text] = {}
    for side in ("-", "+"):
        indexes = [i for i, row in enumerate(rows) if row.kind in (side, " ")]
        if not indexes:
            continue
        marked = [_escaped(rows[i].text) for i in indexes]
        if lexer == "default":
            texts = [Text(shown) for shown, _ in marked]
        else:
            joined = "\n".join(shown for shown, _ in marked)
            whole = Syntax(joined, lexer, theme=CODE_THEME).highlight(joined)
            if whole.plain.endswith("\n"):
                whole.right_crop(1)  # pygments ends the last line; the rows do not
            texts = list(whole.split("\n", allow_blank=True))
        for index, text, (_, spans) in zip(indexes, texts, marked, strict=False):
            for start, end in spans:
                text.stylize("reverse", start, end)
            found.setdefault(index, text)
    return found


def _escaped(code: str) -> tuple[str, list[tuple[int, int]]]:
    """``code`` with hidden characters escaped, and where the escapes are."""
    parts, spans, at = [], [], 0
    for part, escaped in segments(code, keep_tabs=True):
        if escaped:
            spans.append((at, at + len(part)))
        parts.append(part)
        at += len(part)
    return "".join(parts), spans


def _row(row: _Row, code: Text | None, digits: int) -> Text:
    if row.kind in ("h", "@", "\\", "…"):
        style = {"h": "bold", "@": "cyan", "\\": "dim", "…": "dim"}[row.kind]
        shown, spans = _escaped(row.text)
        text = Text("  " + shown, style=style)
        for start, end in spans:
            text.stylize("reverse", start + 2, end + 2)
        return text
    colour = {"+": "green", "-": "red", " ": "dim"}[row.kind]
    old = "" if row.old is None else str(row.old)
    new = "" if row.new is None else str(row.new)
    gutter = Text()
    gutter.append(
        f"  {old:>{digits}} {new:>{digits}} │", style="dim" if row.kind == " " else colour
    )
    gutter.append(row.kind, style=f"bold {colour}")
    if code is None:  # never expected: highlighting keeps the line count
        code = Text(_escaped(row.text)[0])
    gutter.append_text(code)
    return gutter
