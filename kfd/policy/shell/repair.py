"""Parsing a script with tree-sitter-bash, its known misreadings worked around.

Part of the shell analyser (`kfd.policy.shell`). tree-sitter-bash reads
``! { a; }`` as the negation of a command named ``{``, ``! ! a`` as the
negation of a command named ``!`` and ``time { a; }`` as a command named
``time``; 4-byte UTF-8 after a ``{`` can crash it (tree-sitter/tree-sitter-bash#337).
`parse_script` parses a stand-in of the same length (node offsets hold), so
every word is still read from the real source. Any other misreading surfaces
as a parse error or unparsed text, which the analyser turns into risks. The
stand-in may also hold long runs of plain words as one word each
(`kfd.policy.shell.runs`), which costs tree-sitter far less.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import tree_sitter
import tree_sitter_bash

from kfd.policy.shell.runs import merge_runs
from kfd.policy.shell.words import walk

if TYPE_CHECKING:
    from collections.abc import Callable

    from tree_sitter import Node, Tree

__all__ = ["comments", "flatten_list", "parse_script"]

_LANGUAGE = tree_sitter.Language(tree_sitter_bash.language())
_MAX_REPAIRS = 8
# 4-byte UTF-8 sequences (and encoded lone surrogates) after a `{` can crash
# tree-sitter-bash 0.25 with SIGSEGV (tree-sitter/tree-sitter-bash#337). They are
# never shell syntax, so the parser sees plain word characters in their place.
_CRASHY_SEQUENCES = re.compile(rb"[\xf0-\xf7][\x80-\xbf]{0,3}|\xed[\xa0-\xbf][\x80-\xbf]")
_GROUP_OPENERS = (b"{", b"(")


def parse_script(
    source: bytes, *, runs: bool = False
) -> tuple[Tree, bytes, dict[tuple[int, int], int]]:
    """The syntax tree of ``source``, the stand-in it was parsed from, and (``runs``)
    the runs of plain words the stand-in holds as one word (`merge_runs`)."""
    stand_in = _shield(source)
    merged: dict[tuple[int, int], int] = {}
    if runs:
        stand_in, merged = merge_runs(stand_in)
    parser = tree_sitter.Parser(_LANGUAGE)
    tree = parser.parse(stand_in)
    for _ in range(_MAX_REPAIRS):
        keywords = (
            _misread_keywords(tree.root_node, stand_in)
            if b"!" in stand_in or b"time" in stand_in
            else []
        )
        if not keywords:
            break
        # Blanking `!` or `time` before a group changes its exit status or timing
        # report, never which commands run; tree-sitter then reads the group right.
        patched = bytearray(stand_in)
        for node in keywords:
            patched[node.start_byte : node.end_byte] = b" " * (node.end_byte - node.start_byte)
        stand_in = bytes(patched)
        tree = parser.parse(stand_in)
    return tree, stand_in, merged


def _shield(source: bytes) -> bytes:
    """`source` with every byte sequence that can crash the parser replaced by `x`s."""
    if source.isascii() or not _CRASHY_SEQUENCES.search(source):  # (the search: 100 us a 4 KB)
        return source
    return _CRASHY_SEQUENCES.sub(lambda match: b"x" * len(match.group()), source)


def _misread_keywords(root: Node, source: bytes) -> list[Node]:
    """`!` and `time` keywords tree-sitter misreads before a `{ …; }` or `( … )` group."""
    found: list[Node] = []
    for node in walk(root):
        if node.type != "command":
            continue
        name = node.child_by_field_name("name")
        if name is None:
            continue
        word = source[name.start_byte : name.end_byte]
        parent = node.parent
        if (
            (word == b"!" or word.startswith(_GROUP_OPENERS))
            and parent is not None
            and parent.type == "negated_command"
        ):
            found.extend(c for c in parent.children if c.type == "!")
            if word == b"!":
                found.append(name)
        elif word == b"time" and source[name.end_byte :].lstrip(b" \t").startswith(_GROUP_OPENERS):
            found.append(name)
    return found


def flatten_list(node: Node, inner: Callable[[Node], None] | None = None) -> list[Node]:
    """The operands of a chain of `&&`/`||` lists, without recursion (chains can be long);
    ``inner`` is called with each list nested in ``node`` (its gaps are to be checked
    as ``node``'s are: `a \\  && b && c` hides the escaped blank in an inner one)."""
    operands: list[Node] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if current.type == "list":
            if inner is not None and current != node:
                inner(current)
            stack.extend(reversed(current.children))
        else:
            operands.append(current)
    return operands


_COMMENTS = tree_sitter.Query(_LANGUAGE, "(comment) @comment")


def comments(root: Node) -> list[Node]:
    """Every comment tree-sitter found under ``root`` (a query: no walk in Python)."""
    return tree_sitter.QueryCursor(_COMMENTS).captures(root).get("comment", [])
