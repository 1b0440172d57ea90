"""Shell words: quote removal, static evaluation, and what bash would evaluate in them.

Part of the shell analyzer (see `kfd.policy.shell`). A *word* is what bash
hands to a program as one argv entry. This module turns the tree-sitter nodes
that make up a word into a `Word`: its value after quote removal when bash
would produce exactly that string whatever the environment, or no value (and a
reason) when it would not — variable, command, arithmetic, tilde or brace
expansion, a glob pattern, a locale-translated string, or syntax this module
does not understand. Unknown syntax never yields a value: fail closed.

Evaluation also collects what the caller must look at: command and process
substitutions (to analyze the commands inside), parse errors, expansions that
make bash evaluate code from data (arithmetic on names, array subscripts,
indirection: `kfd.policy.shell.evaluation`), and node types it does not know.
"""

from __future__ import annotations

import glob as globbing
import itertools
import re
import string
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING, Literal

import msgspec

from kfd.policy.shell.evaluation import expansion_evaluates, literal_arithmetic_node

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from tree_sitter import Node

__all__ = [
    "Scan",
    "Word",
    "WordContext",
    "decode",
    "decode_ansi_c",
    "evaluate_word",
    "hides_code",
    "joined_in_word",
    "merge_adjacent",
    "plain_run",
    "plain_word",
    "scan_node",
    "walk",
]


WordContext = Literal["argument", "assignment", "test", "pattern"]
"""Where a word stands, which decides the expansions bash applies to it.

`argument`: command words and redirection targets (globs, braces and tildes
expand). `assignment`: the value of `NAME=value` (tildes only). `test`: inside
`[[ … ]]` (tildes only). `pattern`: `case` patterns (value unused).
"""


class Word(msgspec.Struct, frozen=True):
    """One shell word: its value after quote removal, or why it has none.

    A struct: made by the thousand for a long command, faster than a dataclass, and
    hashable (the words are the key of `kfd.policy.shell.unwrap.unwrap`'s memory)."""

    source: str
    """The word as written."""
    value: str | None
    """The exact string bash would produce, or None when that is not static."""
    reason: str = ""
    """Why the word is not static (empty when it is)."""
    pattern: str | None = None
    """For a word that is only a glob (``*.py``, ``'my dir'/*``): the pattern as
    Python's `glob` reads it, quoted metacharacters escaped; else None."""

    @property
    def static(self) -> bool:
        """True when `value` is exactly what bash would produce."""
        return self.value is not None

    @property
    def text(self) -> str:
        """The value when static, else the source text."""
        return self.value if self.value is not None else self.source


@dataclass(slots=True)
class Scan:
    """What word evaluation found that the analyzer must act on."""

    substitutions: list[Node] = field(default_factory=list)
    """`command_substitution` and `process_substitution` nodes, outermost only."""
    errors: list[Node] = field(default_factory=list)
    """ERROR and MISSING nodes."""
    unparsed: list[Node] = field(default_factory=list)
    """Nodes of a type the evaluator does not understand."""
    arithmetic: list[Node] = field(default_factory=list)
    """Arithmetic that is not literal (it names a variable, or holds an expansion)."""
    evaluating: list[tuple[Node, str]] = field(default_factory=list)
    """Parameter expansions that evaluate a value as code, with why
    (`kfd.policy.shell.evaluation`)."""
    hidden: list[Node] = field(default_factory=list)
    """Nodes tree-sitter read as plain text where bash runs substitutions in them
    (`hides_code`): ``${x:-`cmd`}``, ``[[ x =~ `cmd` ]]``, a here-document's body."""


_SUBSTITUTIONS = frozenset({"command_substitution", "process_substitution"})
# Leaves whose text bash never expands: single quotes, $'…', comments, and the
# delimiters of here-documents (a here-document's body is `hides_code`'s business).
_LITERAL_LEAVES = frozenset(
    {"raw_string", "ansi_c_string", "comment", "heredoc_start", "heredoc_end"}
    | {"heredoc_body", "heredoc_content"}
)
_QUOTES = frozenset({"raw_string", "ansi_c_string"})
_DOUBLE_QUOTING = frozenset({"string", "heredoc_body"})
"""Nodes inside which `_QUOTES` are plain characters to bash."""
# Characters that end or change a word when unquoted; tree-sitter never leaves
# them unescaped inside a plain word, so meeting one means we misread the tree.
_UNQUOTED_META = frozenset(" \t\n;&|<>()`'\"$")
_GLOB = frozenset("*?[")
# A word without these characters is its own value (no quotes, escapes, expansions).
_PLAIN_WORD_SPECIAL = frozenset("\\*?[]{}~#$`'\"=:!") | _UNQUOTED_META
_PLAIN_BYTES = re.compile(rb"[^\\*?\[\]{}~#$`'\"=:! \t\n;&|<>()\x80-\xff]+")
"""The bytes of a plain ASCII word (`_PLAIN_WORD_SPECIAL`), matched without decoding."""
_PLAIN_RUN = re.compile(rb"[^\\*?\[\]{}~#$`'\"=:!\n;&|<>()\x80-\xff]*")
"""Plain ASCII words separated by spaces and tabs."""
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Operators tree-sitter lexes as tokens even where bash sees plain argument words.
_OPERATOR_WORDS = frozenset({"==", "=~", "!="})
_LINE_CONTINUATION = b"\\\n"


def decode(data: bytes) -> str:
    """Source bytes as text; never raises (tree-sitter may cut through invalid UTF-8)."""
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return data.decode("utf-8", "backslashreplace")


def merge_adjacent(nodes: Sequence[Node], source: bytes) -> list[list[Node]]:
    """Group nodes that bash reads as one word.

    tree-sitter sometimes splits one bash word into sibling nodes (`a\\<newline>b`,
    `$"…"`); siblings separated by nothing or only by line continuations are
    one word.
    """
    groups: list[list[Node]] = []
    previous = -1
    for node in nodes:
        start = node.start_byte
        # Most gaps are blanks: only a gap that starts with a backslash may join.
        if groups and (
            start == previous or (source[previous] == 0x5C and _joined(source[previous:start]))
        ):
            groups[-1].append(node)
        else:
            groups.append([node])
        previous = node.end_byte
    return groups


def _joined(gap: bytes) -> bool:
    return not gap.replace(_LINE_CONTINUATION, b"")


def walk(node: Node) -> Iterator[Node]:
    """Every descendant of `node` (itself included), depth first, without recursion."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def scan_node(node: Node, scan: Scan) -> None:
    """Collect substitutions, parse errors, and what evaluates code from data under `node`."""
    # Below a double-quoted string (`"${x:-'$(cmd)'}"`, the body of a here-document),
    # single quotes are characters, not quoting: bash runs the `$(cmd)` they hold.
    stack = [(node, False)]
    while stack:
        current, quoted = stack.pop()
        kind = current.type
        if kind in _SUBSTITUTIONS:
            scan.substitutions.append(current)
            continue
        if current.is_error or current.is_missing:
            scan.errors.append(current)
            continue
        if (
            current.is_named
            and current.child_count == 0
            and (kind not in _LITERAL_LEAVES or (quoted and kind in _QUOTES))
            and hides_code(_node_text(current))
        ):
            scan.hidden.append(current)
            continue
        if kind == "arithmetic_expansion" and not literal_arithmetic_node(current):
            scan.arithmetic.append(current)
        elif kind == "simple_expansion" and _apart(current.children):
            # `$⏎name` is one expansion to tree-sitter; bash ends the word at the `$`
            # and runs `name` as the next command (round 23).
            scan.unparsed.append(current)
        elif kind == "expansion":
            why = expansion_evaluates(_node_text(current))
            if why is not None:
                scan.evaluating.append((current, why))
        inner = quoted or kind in _DOUBLE_QUOTING
        stack.extend((child, inner) for child in current.children)


def _apart(children: list[Node]) -> bool:
    """Whether anything lies between two of ``children`` (a name's parts are never apart)."""
    return any(a.end_byte != b.start_byte for a, b in itertools.pairwise(children))


def hides_code(text: str) -> bool:
    """Whether bash would run a substitution in ``text`` where tree-sitter saw plain text.

    tree-sitter-bash leaves some words unparsed: the operand of ``${x:-…}``,
    ``${x#…}`` and ``${x/…}``, the right side of ``[[ … =~ … ]]``, extended glob
    patterns, the body of a here-document. Bash expands each of them, so an
    unescaped backquote, ``$(``, ``$[``, ``${`` or ``<(``/``>(`` in such text is
    code the analyser has not read (a backslash escapes the next character).
    """
    if "`" not in text and "$" not in text and "(" not in text:
        return False
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        following = text[index + 1 : index + 2]
        if char == "`" or (char == "$" and following in ("(", "[", "{")):
            return True
        if char in "<>" and following == "(":
            return True
        index += 1
    return False


def joined_in_word(text: str) -> str:
    """Two pieces of text a backslash-newline joins into one word, as ``a\\⏎b``
    shows them; ``""`` when every one stands between words.

    Bash removes each unescaped backslash-newline before it reads the words
    (outside single quotes, quoted here-document bodies and comments), and
    tree-sitter does not: ``$\\⏎(cmd)`` is a command substitution to bash and
    text to the tree; ``EO\\⏎F`` ends a here-document bash's way only. After a
    blank (or at a line's start) the removal leaves the words as they were: the
    common multi-line command. Anywhere else it is reported, whatever the
    quoting (fail closed: a literal one inside single quotes asks too); and
    anywhere in a line with a here-document, whose body's lines it joins: a
    line `` \\⏎`` then ``EOF`` is `` EOF`` to bash, no terminator."""
    heredoc = "<<" in text
    start = 0
    while (at := text.find("\\\n", start)) >= 0:
        start = at + 2
        backslashes = len(text[: at + 1]) - len(text[: at + 1].rstrip("\\"))
        if backslashes % 2 == 0:
            continue  # an escaped backslash, then a newline
        before = text[at - backslashes] if at - backslashes >= 0 else "\n"
        if heredoc or before not in " \t\n":
            head = text[max(0, at - backslashes - 8) : at].rsplit("\n", 1)[-1]
            tail = text[at + 2 : at + 10].split("\n", 1)[0]
            return f"{head}\\⏎{tail}"
    return ""


def _node_text(node: Node) -> str:
    raw = node.text
    return raw.decode("utf-8", "replace") if raw is not None else ""


class _Builder:
    """Accumulates a word's characters, each marked quoted or not."""

    __slots__ = ("chars", "plain", "reasons", "unparsed")

    def __init__(self) -> None:
        self.chars: list[tuple[str, bool]] = []
        self.plain: list[str] = []
        """The unquoted characters, for quick checks (globs, braces, tildes)."""
        self.reasons: list[str] = []
        self.unparsed = False

    def quoted(self, text: str) -> None:
        self.chars.extend(zip(text, repeat(True)))

    def dynamic(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)

    def unquoted(self, text: str) -> None:
        i = 0
        while i < len(text):
            c = text[i]
            if c == "\\" and i + 1 < len(text):
                if text[i + 1] != "\n":
                    self.chars.append((text[i + 1], True))
                i += 2
                continue
            if c in _UNQUOTED_META:
                self.unparsed = True
            self.chars.append((c, c == "\\"))
            if c != "\\":
                self.plain.append(c)
            i += 1

    def double_quoted(self, text: str) -> None:
        if "\\" not in text and "$" not in text and "`" not in text:
            self.quoted(text)
            return
        i = 0
        while i < len(text):
            c = text[i]
            if c == "\\" and i + 1 < len(text) and text[i + 1] in '$`"\\\n':
                if text[i + 1] != "\n":
                    self.chars.append((text[i + 1], True))
                i += 2
                continue
            if c in "$`":
                self.unparsed = True
            self.chars.append((c, True))
            i += 1


def plain_word(node: Node, source: bytes) -> bool:
    """Whether ``node`` is one plain ASCII word: its own value, nothing to remove or
    expand, nothing bash evaluates (checked on the bytes, for words by the thousand)."""
    return (
        node.type == "word"
        and node.child_count == 0
        and _PLAIN_BYTES.fullmatch(source, node.start_byte, node.end_byte) is not None
    )


def plain_run(source: bytes, start: int, end: int) -> bool:
    """Whether ``source[start:end]`` holds only plain ASCII words and blanks."""
    return _PLAIN_RUN.fullmatch(source, start, end) is not None


def evaluate_word(
    nodes: Sequence[Node], source: bytes, scan: Scan, context: WordContext = "argument"
) -> Word:
    """Evaluate the nodes of one word (see `merge_adjacent`) into a `Word`."""
    start, end = nodes[0].start_byte, nodes[-1].end_byte
    text = decode(source[start:end])
    node = nodes[0]
    plain = len(nodes) == 1 and node.type == "word" and node.child_count == 0
    if plain and context != "pattern" and not _PLAIN_WORD_SPECIAL & set(text):
        return Word(text, text)  # most words: nothing to remove, nothing to expand
    for node in nodes:
        scan_node(node, scan)
    builder = _Builder()
    _sequence(nodes, source, builder, scan)
    if builder.unparsed:
        builder.dynamic("syntax the analyzer does not understand")
        scan.unparsed.append(nodes[0])
    if context == "argument":
        _expansions(builder)
    elif context == "assignment" and "~" in builder.plain:
        _tilde(builder, value=True)
    elif context == "test" and "~" in builder.plain:
        _tilde(builder)
    if builder.reasons:
        pattern = _glob_pattern(builder.chars) if builder.reasons == ["glob pattern"] else None
        return Word(text, None, ", ".join(builder.reasons), pattern)
    return Word(text, "".join(c for c, _ in builder.chars))


def _glob_pattern(chars: list[tuple[str, bool]]) -> str | None:
    """The pattern Python's `glob` reads as bash reads this word, or None if unsure.

    Quoted metacharacters are literal; bash's ``[^...]`` is ``[!...]``; POSIX
    classes (``[[:alpha:]]``), escapes and quoted characters inside brackets are
    left to the caller's unknowns (None): inside a bracket expression a quoted
    ``]`` does not close it and a quoted ``!`` does not negate it in bash, while
    Python's glob reads both otherwise (``cat .e[']n[']v`` printed ``.env``
    while its pattern matched nothing).
    """
    out: list[str] = []
    opened = -1  # where the bracket expression being read started, if one is
    for index, (char, quoted) in enumerate(chars):
        if opened >= 0:
            if quoted:
                return None
            if char == "[" and index + 1 < len(chars) and chars[index + 1][0] in ":=.":
                return None  # a class anywhere in the brackets (`[![:digit:]]`: round 24)
            first = index == opened + 1 or (index == opened + 2 and chars[index - 1][0] in "!^")
            if char == "]" and not first:
                opened = -1
        elif char == "[" and not quoted:
            opened = index
        if quoted:
            out.append(globbing.escape(char) if char in "*?[]" else char)
        elif char == "^" and index > 0 and chars[index - 1] == ("[", False):
            out.append("!")
        else:
            out.append(char)
    return "".join(out)


def _sequence(nodes: Sequence[Node], source: bytes, builder: _Builder, scan: Scan) -> None:
    previous: Node | None = None
    for node in nodes:
        if previous is not None and previous.end_byte < node.start_byte:
            # Only line continuations separate nodes of one word: they vanish.
            gap = source[previous.end_byte : node.start_byte]
            builder.unquoted(decode(gap))
        if previous is not None and previous.type == "$" and node.type == "string":
            builder.dynamic('locale translation ($"…")')
        _node(node, source, builder, scan)
        previous = node


def _node(node: Node, source: bytes, builder: _Builder, scan: Scan) -> None:
    kind = node.type
    text = decode(source[node.start_byte : node.end_byte])
    if kind in ("word", "number"):
        if "$" in text and _expands_inside(source, node.start_byte, node.end_byte):
            builder.dynamic("a `$` bash expands")
        elif _SPLITS.search(text):
            builder.dynamic("a character that ends a word in bash")
        else:
            builder.unquoted(text)
    elif kind == "$":
        if text != "$" or _expanded_after(source, node.end_byte, quoted=False):
            builder.dynamic("a `$` bash expands")
        else:
            builder.quoted("$")
    elif kind in _OPERATOR_WORDS and not node.is_named:
        builder.unquoted(text)
    elif kind == "raw_string":
        builder.quoted(text[1:-1])
    elif kind == "ansi_c_string":
        decoded = decode_ansi_c(text[2:-1])
        if decoded is None:
            builder.dynamic("ANSI-C string the analyzer cannot decode")
        else:
            builder.quoted(decoded)
    elif kind == "string":
        _double_quoted(node, source, builder, scan)
    elif kind == "concatenation":
        children = node.children
        if (
            not children
            or children[0].start_byte != node.start_byte
            or children[-1].end_byte != node.end_byte
        ):
            # Text of the word in no part of it (`x$$`: a word `x$`, the last `$` in
            # none): how bash reads it is not known here.
            builder.dynamic("a word tree-sitter reads only in part")
        _sequence(children, source, builder, scan)
    elif kind in ("regex", "extglob_pattern", "test_operator", "variable_name"):
        parent = node.parent
        if (parent is None or parent.type not in _TEST_PARTS) and _SPLITS.search(text):
            # Outside a test, tree-sitter's reading of `==` (a test operator followed
            # by a "regex") is not bash's: `x ==;y` ends the command at `;` (round 23).
            builder.dynamic("a character that ends a word in bash")
        else:
            builder.quoted(text)
    elif kind in ("simple_expansion", "expansion"):
        builder.dynamic("variable expansion")
    elif kind == "command_substitution":
        builder.dynamic("command substitution")
    elif kind == "process_substitution":
        builder.dynamic("process substitution")
    elif kind == "arithmetic_expansion":
        builder.dynamic("arithmetic expansion")
    elif kind == "brace_expression":
        builder.dynamic("brace expansion")
    elif kind == "translated_string":
        builder.dynamic('locale translation ($"…")')
    elif node.is_error or node.is_missing:
        builder.dynamic("parse error")
    else:
        builder.dynamic(f"unknown syntax ({kind})")
        scan.unparsed.append(node)


_EXPANSION_STARTS = frozenset((string.ascii_letters + string.digits + "_{([$!#?*@-").encode())
"""What makes bash expand a ``$`` before it: a name, a digit, a special parameter
(``$$``, ``$!``, ``$#``...), ``${``, ``$(``, ``$[`` (old arithmetic)."""


def _expanded_after(source: bytes, end: int, *, quoted: bool) -> bool:
    """Whether bash expands a ``$`` tree-sitter gave as a literal one, by the byte after
    it (round 23: ``cat $".env"''`` was read as ``$.env``; bash passes ``.env``, the
    ``$"…"`` a locale translation). Outside double quotes a quote after it is one too:
    ``$"…"`` translated, ``$'…'`` decoded. Unsure means expanded: the word is not static."""
    after = source[end : end + 1]
    if not after:
        return False
    return after[0] in _EXPANSION_STARTS or (not quoted and after in (b'"', b"'"))


_SPLITS = re.compile(r"(?:^|[^\\])(?:\\\\)*[ \t\n;&|()<>]")
"""An unescaped character bash ends a word at (an even run of backslashes before it)."""
_TEST_PARTS = frozenset({"binary_expression", "unary_expression", "test_command", "case_item"})
"""Where tree-sitter's test operators, regexes and patterns are bash's too."""


def _expands_inside(source: bytes, start: int, end: int) -> bool:
    """Whether a ``$`` tree-sitter left inside a word from ``start`` to ``end`` is one
    bash expands (`_expanded_after`)."""
    at = source.find(b"$", start, end)
    while at != -1:
        if _expanded_after(source, at + 1, quoted=False):
            return True
        at = source.find(b"$", at + 1, end)
    return False


def _double_quoted(node: Node, source: bytes, builder: _Builder, scan: Scan) -> None:
    # tree-sitter puts blanks before a token inside the token (`" "` is an opening quote
    # and a closing one spanning ` "`; `" $"` holds a `$` spanning ` $`): those blanks
    # are the string's content, so the closing quote is the node's last byte.
    children = node.children
    closing = node.end_byte - 1
    if (
        len(children) < 2
        or children[0].type != '"'
        or children[-1].type != '"'
        or children[-1].is_missing
        or source[closing : closing + 1] != b'"'
    ):
        builder.dynamic("malformed double-quoted string")
        return
    position = children[0].end_byte
    for child in children[1:-1]:
        if position < child.start_byte:
            builder.double_quoted(decode(source[position : child.start_byte]))
        if child.type == "string_content":
            content = source[child.start_byte : child.end_byte]
            builder.double_quoted(decode(content))
        elif child.type == "$":
            builder.double_quoted(decode(source[child.start_byte : child.end_byte - 1]))
            if source[child.end_byte - 1 : child.end_byte] != b"$" or _expanded_after(
                source, child.end_byte, quoted=True
            ):
                builder.dynamic("a `$` bash expands")
            else:
                builder.quoted("$")
        else:
            _node(child, source, builder, scan)
        position = child.end_byte
    if position < closing:
        builder.double_quoted(decode(source[position:closing]))


def _expansions(builder: _Builder) -> None:
    """Mark globs, brace expansion and tilde expansion in unquoted characters."""
    plain = set(builder.plain)
    if plain & _GLOB:
        builder.dynamic("glob pattern")
    if "{" in plain and _has_brace_expansion(builder.chars):
        builder.dynamic("brace expansion")
    if builder.chars and builder.chars[0] == ("#", False):
        builder.dynamic("syntax the analyzer does not understand")
    if "~" in plain:
        _tilde(builder)


def _has_brace_expansion(chars: list[tuple[str, bool]]) -> bool:
    opened: list[int] = []
    for i, (c, quoted) in enumerate(chars):
        if quoted:
            continue
        if c == "{":
            opened.append(i)
        elif c == "}" and opened:
            start = opened.pop()
            inner = chars[start + 1 : i]
            if any(ch == "," and not q for ch, q in inner):
                return True
            flat = "".join(ch if not q else "\0" for ch, q in inner)
            if ".." in flat:
                return True
    return False


def _tilde(builder: _Builder, *, value: bool = False) -> None:
    """Mark tilde expansion: at the start of a word, and after `:` (or the first `=`)
    in an assignment value or an assignment-like argument (`a=~/x`)."""
    chars = builder.chars
    separators: tuple[tuple[str, bool], ...] = ((":", False),)
    start = 0
    if not value:
        equals = next((i for i, (c, q) in enumerate(chars) if c == "=" and not q), -1)
        prefix = "".join(c for c, q in chars[:equals] if not q)
        if equals > 0 and len(prefix) == equals and _IDENTIFIER.fullmatch(prefix):
            separators, start = ((":", False), ("=", False)), equals
        else:
            separators = ()
    for i, (c, quoted) in enumerate(chars):
        if c == "~" and not quoted and (i == 0 or (i > start and chars[i - 1] in separators)):
            builder.dynamic("tilde expansion")
            return


_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}
_HEX = frozenset("0123456789abcdefABCDEF")
_NUMERIC_ESCAPES = {"x": 2, "u": 4, "U": 8}


_BYTE_ESCAPES = frozenset("x01234567")
"""What follows a backslash in `$'…'` for a byte (not a character)."""


def decode_ansi_c(body: str) -> str | None:
    """Decode the inside of `$'…'` as bash does, or None if unsure.

    Bash stops the string at a NUL character, so the result does too.
    """
    out: list[str] = []
    raw = bytearray()  # bytes `\xHH` and `\NNN` give, as bash passes them (not characters)
    i = 0
    while i < len(body):
        c = body[i]
        if raw and not (c == "\\" and body[i + 1 : i + 2] in _BYTE_ESCAPES):
            # Bytes as a name on disk is read: UTF-8, and any other byte that very
            # byte (`$'\xc3'` names the one byte C3, not the two of "Ã").
            out.append(raw.decode("utf-8", "surrogateescape"))
            raw.clear()
        if c != "\\" or i + 1 >= len(body):
            out.append(c)
            i += 1
            continue
        escape = body[i + 1]
        i += 2
        if escape in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[escape])
        elif escape in "01234567":
            digits = escape
            while len(digits) < 3 and i < len(body) and body[i] in "01234567":
                digits += body[i]
                i += 1
            raw.append(int(digits, 8) & 0xFF)
        elif escape in _NUMERIC_ESCAPES:
            digits = ""
            while len(digits) < _NUMERIC_ESCAPES[escape] and i < len(body) and body[i] in _HEX:
                digits += body[i]
                i += 1
            if not digits:
                if escape == "x":
                    raw += b"\\x"  # left as written, after the bytes before it
                else:
                    out.append("\\" + escape)
                continue
            code = int(digits, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                return None
            if escape != "x" and code > 0x7F:
                # A character beyond ASCII: its UTF-8 bytes in a UTF-8 locale, the
                # escape left as written in the C locale, which a line may set before
                # bash reads the rest (`LC_ALL=C⏎cat $'\u00e9'`): not known here.
                return None
            if escape == "x":
                raw.append(code)
            else:
                out.append(chr(code))
        elif escape == "c":
            if i >= len(body):
                return None
            control = body[i]
            i += 1
            out.append("\x7f" if control == "?" else chr(ord(control.upper()) & 0x1F))
        else:
            out.append("\\" + escape)
    if raw:
        out.append(raw.decode("utf-8", "surrogateescape"))
    decoded = "".join(out)
    return decoded.split("\0", 1)[0]
