"""Long runs of plain words, given to tree-sitter as one word each.

Part of the shell analyser (`kfd.policy.shell`). tree-sitter-bash costs about a
microsecond per token (its GLR stack, whatever the token), so a loop over a
thousand names or a ``git add`` of four hundred paths, in a line the fast path
(`kfd.policy.shell.fastpath`) cannot read, took 1–2 ms to parse. In the text
tree-sitter parses (the stand-in: `kfd.policy.shell.repair`), `merge_runs`
turns the blanks inside a run of plain words into ``_``, after the run's
first word: tree-sitter reads the rest of the run as one word, at the same
offsets. Bash would read each of those words as an argument of the command the
run is in, or a value of the loop, whatever the command: a reserved word or a
lone ``-`` ends a run, and a run starts and ends at a blank or an operator.

The walker (`kfd.policy.shell.parse`) reads a run's words from the real source,
as it reads any command or loop of many plain words, and checks that each
merged run became one argument of a command made of plain words only, or one
value of a loop whose values are plain words only; where one did not (a run
inside quotes, a here-document, a test), the script is parsed again as
written. A differential test holds it to the analysis of the script parsed
as written (tests/unit/test_shell_runs.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MIN_RUN", "merge_runs"]

MIN_RUN = 16
"""Words merged at the least (after a run's first word): fewer cost tree-sitter little."""
_END = rb"(?=[ \t\n;|)]|&(?!>)|\Z)"
"""After a run's word: a blank, a line's end or an operator (``2>x`` is no word, nor is
``a&>x``'s ``a`` part of a run)."""
_WORD = rb"[A-Za-z0-9_./,+%@^-]++" + _END
_RUN = re.compile(rb"(?<![^ \t\n;&|(])" + _WORD + rb"(?:[ \t]++" + _WORD + rb")*+")
_FIRST_WORD = re.compile(rb"[ \t]*+[^ \t]++[ \t]*+")
_UNDERSCORES = bytes.maketrans(b" \t", b"__")
_ENDS_RUN = (
    b"if|then|elif|else|fi|case|esac|for|select|while|until|do|done|in|function|time|"
    b"coproc|declare|typeset|export|readonly|local|unset|unsetenv|-"
)
"""Words tree-sitter may read as syntax of their own (as `fastpath` declines them)."""
_ENDS_RUN_WORDS = frozenset(_ENDS_RUN.split(b"|"))


def merge_runs(source: bytes) -> tuple[bytes, dict[tuple[int, int], int]]:
    """``source`` with each long run of plain words after its first made one word, and
    those words' spans (start, end) with how many words each holds. Runs that seem to be
    inside quotes or after a here-document's start are left (the walker's check would
    fail on them, costing a second parse)."""
    spans: dict[tuple[int, int], int] = {}
    if len(source) < 2 * MIN_RUN:
        return source, spans
    merged: bytearray | None = None
    singles = doubles = last = 0
    heredoc = False
    for match in _RUN.finditer(source):
        if match.end() - match.start() < 2 * MIN_RUN:
            continue  # too few words (each is a byte and a blank at the least)
        pieces = _pieces(match)
        if not pieces:
            continue
        start = match.start()
        singles += source.count(b"'", last, start)
        doubles += source.count(b'"', last, start)
        heredoc = heredoc or source.find(b"<<", last, start) >= 0
        last = start
        if singles % 2 or doubles % 2 or heredoc:
            continue
        if merged is None:
            merged = bytearray(source)
        for first, end, count in pieces:
            merged[first:end] = source[first:end].translate(_UNDERSCORES)
            spans[(first, end)] = count
    return (bytes(merged) if merged is not None else source), spans


def _pieces(match: re.Match[bytes]) -> list[tuple[int, int, int]]:
    """The spans to merge in one run, each with its word count: the run is cut at the
    words that end it, and each piece long enough is merged after its first word."""
    run = match.group()
    words = run.split()
    hits = _ENDS_RUN_WORDS.intersection(words)
    if not hits:  # most runs: one piece
        first = _FIRST_WORD.match(run)
        if first is None or len(words) <= MIN_RUN:
            return []
        return [(match.start() + first.end(), match.end(), len(words) - 1)]
    bounds = [0]
    for start, end in sorted(_occurrences(run, hits)):
        bounds += [start, end]
    bounds.append(len(run))
    pieces: list[tuple[int, int, int]] = []
    for start, end in zip(bounds[::2], bounds[1::2], strict=True):
        first = _FIRST_WORD.match(run, start, end)
        if first is None:
            continue
        rest = run[first.end() : end].rstrip(b" \t")
        count = len(rest.split())
        if count >= MIN_RUN:
            offset = match.start() + first.end()
            pieces.append((offset, offset + len(rest), count))
    return pieces


def _occurrences(run: bytes, words: Iterable[bytes]) -> list[tuple[int, int]]:
    """Where each of ``words`` stands as a whole word in ``run`` (found with
    `bytes.find`: a regular expression tried at every byte cost more than the parse)."""
    found: list[tuple[int, int]] = []
    for word in words:
        at = run.find(word)
        while at >= 0:
            end = at + len(word)
            if (at == 0 or run[at - 1] in b" \t") and (end == len(run) or run[end] in b" \t"):
                found.append((at, end))
            at = run.find(word, end)
    return found
