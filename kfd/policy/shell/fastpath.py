"""Lines too plain to need a parser: plain words, quoted strings, redirections and
command substitutions, chained.

Part of the shell analyser (`kfd.policy.shell`). tree-sitter's bash grammar
costs about a microsecond per token, and the walk over its tree as much
again; a line of plain words, plain quoted strings, plain redirections and
substitutions, ``;``, ``&&``, ``||``, ``|`` and comment lines needs none of
it. Our own code here, for speed only: `simple_line` reads such a line into
the statements
tree-sitter would find, and declines (None) everything else, which
tree-sitter then parses. Its
promise is exactness, not a second opinion: the walker (`kfd.policy.shell.parse`)
turns its statements into exactly the facts the tree-sitter path gives, proven
by a differential test over the permission corpus and generated lines
(tests/unit/test_shell_fast_path.py). So it accepts only a strict whitelist:

- printable ASCII, blanks and newlines (no look-alikes, nothing to shield);
- words of ``A-Za-z0-9_./,:@%+=-``, single-quoted strings of printable
  ASCII and double-quoted strings of printable ASCII but ``$``, backquote,
  backslash and ``!`` (what bash expands there), nor ``<(`` or ``>(`` (which
  tree-sitter reads as a substitution even there) or ``<<`` (the walker walks
  a statement holding one each time it comes); nothing else outside quotes
  (no glob or brace character, ``~``, ``#``, ``!`` or parentheses);
- command substitutions ``$(…)`` that are a whole word (not the command's
  name, nor a redirection's target) and whose script is itself provably
  simple (no parentheses, quotes or ``$`` inside);
- redirections only after a command's words, each after a blank: ``>``,
  ``>>``, ``&>`` and (without a descriptor) ``<`` to a word not starting with
  ``-`` or ``=``, or ``N>&M`` between descriptors; and only on a statement's
  first command (tree-sitter gives a later command's redirections to all
  before it: ``a | b > c`` as ``(a | b) > c``), never after a lone ``-``;
- a statement is one command, a pipeline (only ``|``) or an ``&&``/``||`` list
  of commands and pipelines of two commands (tree-sitter nests a longer
  pipeline inside a list in ways of its own: ``a | b | c && d`` is a pipeline
  whose last part is a list);
- statements end at ``;`` or a newline; a comment only fills a line of its own;
- no ``=`` in a command's first word (an assignment), no reserved word or
  declaration builtin there (tree-sitter gives those their own syntax), and
  no leading ``-`` nor any ``%`` or ``@`` (tree-sitter misreads those names);
- no ``==`` or ``=~`` anywhere (tree-sitter lexes them as test operators,
  even among a command's words) and no word that starts with ``=``.
"""

from __future__ import annotations

import functools
import re
from typing import Literal

import msgspec

from kfd.policy.shell.model import Redirect

__all__ = ["Plain", "PlainCommand", "PlainRun", "PlainStatement", "portable", "simple_line"]

# Possessive repetitions: a line that fails to match fails in linear time.
_LINE = re.compile(
    r"(?:[A-Za-z0-9_./,:@%+=\- \t|;]++|&&|>>|>&|&>|[<>]"
    r"|'[\t -&(-~]*+'|\"[\t #%-\[\]-_a-~]*+\"|\$\([A-Za-z0-9_./,:@%+=\- \t|;&<>]*+\))*+"
)
"""A line of plain words, quoted strings, blanks, operators (no lone ``&``),
redirection operators and command substitutions (which only `_command` places)."""
_SUBSTITUTION = r"\$\([^()]*+\)"
_STATEMENT = re.compile(r"((?:[^'\";$]++|'[^']*+'|\"[^\"]*+\"|" + _SUBSTITUTION + r")*+)(;|\Z)")
_SEGMENT = re.compile(
    r"((?:[^'\"&|$]++|'[^']*+'|\"[^\"]*+\"|" + _SUBSTITUTION + r"|&(?=>)|(?<=>)&)*+)"
    r"(&&|\|\||\||\Z)"
)
"""One command's text and the operator after it (none at the end)."""
_OPERATOR = re.compile(r"(&&|\|\||\|)")
"""`_SEGMENT`'s operators (`_operators_apart`)."""
_WORD = re.compile(r"(?:[^ \t'\"$]++|'[^']*+'|\"[^\"]*+\"|" + _SUBSTITUTION + r")++")
_INNER = re.compile(r"\$\(([^()]*)\)")
_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_TOKEN = re.compile(
    r"(?P<blank>[ \t]++)|(?P<operator>[0-9]?(?:>>|>&|>|<)|&>)"
    r"|(?P<word>(?:[^ \t'\"<>&$]++|'[^']*+'|\"[^\"]*+\"|" + _SUBSTITUTION + r")++)"
    r"|(?P<other>.)",
    re.DOTALL,
)
"""A command's blanks, redirection operators (with a descriptor) and words."""
_BEFORE_QUOTE = re.compile(r"[^'\"]*")
_TARGET = re.compile(r"([<>][ \t]?)([A-Za-z0-9_./,:@%+][A-Za-z0-9_./,:@%+=-]*+)(?=[ \t]|\Z)")
"""A plain word right after ``<`` or ``>`` (and a blank at most), up to a blank or the
end: where a redirection's target may be (`_retargeted`)."""
_TARGET_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./,:@%+=-"
"""What `_TARGET`'s words are made of (where they do not start)."""
_SEMICOLON_SUBSTITUTED = re.compile(r"\$\([^)]*;")
_SEPARATORS = str.maketrans(";&|", "   ")
_SPECIAL_NAMES = frozenset(
    {"if", "then", "elif", "else", "fi", "case", "esac", "for", "select", "while", "until"}
    | {"do", "done", "in", "function", "time", "coproc", "declare", "typeset", "export"}
    | {"readonly", "local", "unset", "unsetenv"}
)
"""Command names tree-sitter reads as syntax of their own."""
_BLANKS = " \t"
_DIRECTIONS: dict[str, Literal["read", "write", "append"]] = {
    "<": "read",
    ">": "write",
    "&>": "write",
    ">>": "append",
}
"""What a redirection to a file does to it (as `kfd.policy.shell.redirects` says)."""


# Structs, not dataclasses: made by the hundred a line, and made faster.


class PlainCommand(msgspec.Struct):
    """One simple command, from its first word to its last redirection, as written."""

    text: str
    body: str = ""
    """Its words alone, when it has redirections (else empty: then its words are `text`).
    tree-sitter reads a command with redirections, even to descriptors only (``2>&1``),
    as a redirected statement."""
    redirects: tuple[Redirect, ...] = ()
    """Its redirections to files, as the walk records them (one to a descriptor,
    ``2>&1``, opens no file: none is)."""
    substitutions: dict[str, list[Plain]] = {}
    """The statements of each word that is a command substitution (``$(date)``)."""

    @property
    def words(self) -> list[tuple[str, str]]:
        """Each word as written and after quote removal (a substitution: as written)."""
        text = self.body or self.text
        if _ungrouped(text):
            return [(word, word) for word in text.split()]
        return [(word, _QUOTED.sub(_unquote, word)) for word in _WORD.findall(text)]

    @property
    def plain_words(self) -> list[str] | None:
        """The words, when none holds a quote or a substitution (else None)."""
        text = self.body or self.text
        return text.split() if _ungrouped(text) else None


class PlainStatement(msgspec.Struct, frozen=True):
    """A command, a pipeline or an ``&&``/``||`` list, as tree-sitter names them."""

    kind: Literal["command", "pipeline", "list"]
    text: str
    """From its first word to its last, as written."""
    commands: tuple[PlainCommand, ...]
    operands: tuple[PlainStatement, ...] = ()
    """A list's commands and pipelines."""


class PlainRun(msgspec.Struct):
    """Statements one after another, each one command of the same end shape
    (`_Shapes`): ``template`` but for the target that ends it (``echo $(date) >
    out1.txt; echo $(date) > out2.txt; …`` after ``… > out0.txt``). Kept as their
    texts and targets, which is all the walk reads of most (`PlainWalk.plain`): the
    four objects of a statement are made only for one it walks the long way."""

    template: PlainCommand
    texts: list[str]
    targets: list[str]
    text: str = ""
    """No statement's text (they are never empty): `PlainWalk.plain` reads the text of
    each statement to skip one walked before, which a run never is, before it asks
    whether it is a run (which costs as much again, for each of hundreds)."""

    def command(self, index: int) -> PlainCommand:
        """The command of statement ``index``, as `_retargeted` makes it."""
        template = self.template
        redirect = template.redirects[0]
        retargeted = Redirect(redirect.direction, self.targets[index], True, redirect.fd)
        return PlainCommand(self.texts[index], template.body, (retargeted,), template.substitutions)


Plain = PlainStatement | PlainRun
"""What `simple_line` reads a script as: statements, and runs of them."""


def simple_line(text: str) -> list[Plain] | None:
    """The statements of ``text`` when it is provably simple (module docstring), else None.

    A statement or command met again (``ls x && ls x && …``) is read once: the
    same text reads the same way; one met again with other redirection targets
    only (``echo $(date) > out1.txt`` after ``… > out0.txt``) is the first with
    those targets (`_retargeted`), and such statements one after another, of a shape
    whose target ends them, a `PlainRun`."""
    statements: list[Plain] = []
    known: dict[str, PlainStatement] = {}
    commands: dict[str, PlainCommand | None] = {}
    shapes: _Shapes = {}
    run: PlainRun | None = None  # the last statement, when it is a run
    # A line ending in a pipeline of three or more commands, and more lines:
    # tree-sitter may read the next lines' words as the pipeline's last command's
    # (`a|b|c⏎d⏎e && f` as `c d e`), which the walk reports as unparsed. Such a
    # script is left to it.
    long_pipeline = False
    for line in text.split("\n"):
        if line.lstrip(_BLANKS).startswith("#"):
            continue  # a comment line (a `#` anywhere else declines the line)
        if (
            not _LINE.fullmatch(line)
            or ("=" in line and _operator_like(line))
            or ("<(" in line or ">(" in line)  # tree-sitter reads `"<("` as a substitution
            or "<<" in line  # the walker walks such statements each time (here-documents)
        ):
            return None
        if _statements_apart(line):
            pieces = line.split(";")
        else:
            split = _split(_STATEMENT, line)
            if split is None:
                return None
            pieces = split[::2]
        last = len(pieces) - 1
        for index, piece in enumerate(pieces):
            source = piece.strip(_BLANKS)
            if not source:
                if index == last:
                    long_pipeline = long_pipeline and index == 0  # a blank line keeps it
                    break  # after a last `;`, or a blank line
                return None  # `;` with no command before it
            if long_pipeline:
                return None
            statement = known.get(source)
            if statement is None:
                # The usual statement of a long line first, without a search and two
                # calls: one command of an end shape (`_Shapes`).
                head, _, target = source.rpartition(" ")
                template = shapes.get(head)
                if (
                    template is not None
                    and "&" not in source
                    and "|" not in source
                    and target
                    and not target.strip(_TARGET_CHARACTERS)
                    and target[0] not in "-="
                ):
                    if run is not None and run.template is template:
                        run.texts.append(source)
                        run.targets.append(target)
                    else:
                        run = PlainRun(template, [source], [target])
                        statements.append(run)
                    continue  # (not a pipeline: `long_pipeline` stays false)
                statement = _statement(source, commands, shapes)
                if statement is None:
                    return None
                known[source] = statement
            statements.append(statement)
            run = None
            long_pipeline = (  # not closed by a `;`
                index == last and statement.kind == "pipeline" and len(statement.commands) > 2
            )
    return statements or None


def portable(script: str) -> bool:
    """Whether ``script`` means the same to every POSIX shell as to bash: what
    `simple_line` reads (plain words, quotes, `$(…)`, redirections, ``; && || |``),
    but ``&>`` (dash reads ``a &>f b`` as ``a &`` then ``>f b``: round 24)."""
    return "&>" not in script and simple_line(script) is not None


def _ungrouped(text: str) -> bool:
    """Whether nothing in ``text`` keeps blanks or operators inside a word (a quote, a
    substitution): then splitting at them is reading it. (Substring tests: a set's
    ``isdisjoint`` hashes each character, 30 us on a 4 KB line.)"""
    return "'" not in text and '"' not in text and "$" not in text


def _statements_apart(line: str) -> bool:
    """Whether every ``;`` of ``line`` (a `_LINE`) ends a statement: none is in quotes (it
    has none) or in a command substitution (each ``$`` begins one, which `_STATEMENT`
    reads whole). Then splitting at them is what `_split` of `_STATEMENT` gives."""
    if "'" in line or '"' in line:
        return False
    return "$" not in line or _SEMICOLON_SUBSTITUTED.search(line) is None


def _operators_apart(source: str) -> bool:
    """Whether splitting ``source`` at `_OPERATOR` gives what `_split` of `_SEGMENT`
    does: no quote or substitution can hold an operator, every ``&`` is one of ``&&``
    (an odd run leaves one `_SEGMENT` cannot read) and none touches a ``>``."""
    return (
        _ungrouped(source)
        and source.count("&") == 2 * source.count("&&")
        and "&>" not in source
        and ">&" not in source
    )


def _operator_like(line: str) -> bool:
    """What tree-sitter may lex as a test operator: ``==``, ``=~``, a word starting with
    ``=`` (also inside quotes: declining is safe)."""
    if "==" in line or "=~" in line:
        return True
    return any(word[0] == "=" for word in line.translate(_SEPARATORS).split())


def _split(pattern: re.Pattern[str], text: str) -> list[str] | None:
    """``text`` split at the operators ``pattern`` finds outside quotes: pieces and
    operators in turn, ending with a piece. None unless the pieces and operators
    are the whole text: a search that skipped a character it could not read
    (``a &>&& b``: a lone ``&``) would drop everything before it."""
    parts: list[str] = []
    read = 0  # the matches are in order and apart: they are the text if their sizes add up
    for piece, operator in pattern.findall(text):
        read += len(piece) + len(operator)
        parts.append(piece)
        if not operator:
            break
        parts.append(operator)
    return parts if read == len(text) else None


_Shapes = dict[str, PlainCommand]
"""Commands read, by their text without their redirections' targets (`_retargeted`).

One whose one target ends it, after an operator and one blank (``echo $(date) >
out0.txt``), is also kept by its text before that blank (``echo $(date) >``: no
NUL, no clash with the others), an end shape. A text that is that text, a blank
and a `_TARGET` word (``… > out1.txt``) is of its shape: `_TARGET` finds nothing
before the operator in it, as in the first (a word found there ends before the
operator, which is no blank), then the operator, the blank and the word. Told with a
partition and a strip, where a search costs three times as much (once for each
statement of a long line)."""


def _statement(
    source: str, known: dict[str, PlainCommand | None], shapes: _Shapes
) -> PlainStatement | None:
    if "&" not in source and "|" not in source:  # one command
        command = known.get(source)
        if command is None:
            command = known[source] = _retargeted(source, shapes)
        return None if command is None else PlainStatement("command", source, (command,))
    parts = _OPERATOR.split(source) if _operators_apart(source) else _split(_SEGMENT, source)
    if parts is None:
        return None
    commands: list[PlainCommand] = []
    for piece in parts[::2]:
        text = piece.strip(_BLANKS)
        if text not in known:
            known[text] = _retargeted(text, shapes)
        command = known[text]
        if command is None:
            return None
        commands.append(command)
    operators = parts[1::2]
    if len(commands) == 1:
        return PlainStatement("command", source, tuple(commands))
    if any(command.body for command in commands[1:]):
        # tree-sitter gives the redirections of a later command to all that comes before
        # it (`a | b > c` as `(a | b) > c`, `a && b > c && d` as `(a && b) > c && d`):
        # left to it.
        return None
    if all(operator == "|" for operator in operators):
        return PlainStatement("pipeline", source, tuple(commands))
    operands: list[PlainStatement] = []
    start = 0
    for index, operator in enumerate([*operators, "&&"]):  # the last closes the last operand
        if operator == "|":
            continue
        group = tuple(commands[start : index + 1])
        if len(group) > 2:
            return None  # tree-sitter nests longer pipelines inside lists in ways of its own
        if len(group) == 1:
            operands.append(PlainStatement("command", group[0].text, group))
        else:
            text = "".join(parts[2 * start : 2 * index + 1]).strip(_BLANKS)
            operands.append(PlainStatement("pipeline", text, group))
        start = index + 1
    return PlainStatement("list", source, tuple(commands), tuple(operands))


def _retargeted(text: str, shapes: _Shapes) -> PlainCommand | None:
    """`_command` of ``text``, from a command read before that differs only in the
    targets of its redirections (``echo $(date) > out1.txt`` after ``… > out0.txt``).

    A command is kept as a shape only when the words `_TARGET` finds in it are exactly
    its file redirections' targets as written (`_written_targets`). Another text of
    that shape (the same text around other words `_TARGET` finds: plain, neither
    starting with ``-`` or ``=`` nor holding a quote or ``$``, each between ``<`` or
    ``>`` (and a blank at most) and a blank or the end) then reads as the same tokens
    but for those words, in the same places: `_command` gives it the same name, body,
    words, substitutions and redirections but for those targets."""
    if "<" not in text and ">" not in text:
        return _command(text)
    parts = _TARGET.split(text)  # before, `>` and a blank, target, between, …, after
    if len(parts) == 1:
        return _command(text)
    if len(parts) == 4:  # one target, the usual case: no lists sliced
        targets = [parts[2]]
        shape = f"{parts[0]}\0{parts[1]}\0{parts[3]}"
    else:
        targets = parts[2::3]
        del parts[2::3]
        shape = "\0".join(parts)  # no NUL in a plain line (`_LINE`)
    template = shapes.get(shape)
    if template is None:
        command = _command(text)
        first = len(parts[0]) + len(parts[1])  # where the first target starts
        if command is not None and _written_targets(command, first) == targets:
            shapes[shape] = command
            if len(targets) == 1 and not parts[3] and parts[1][1:] == " ":
                shapes[parts[0] + parts[1][0]] = command  # (`_Shapes`: an end shape)
        return command
    if len(targets) == 1:  # the usual case, made without a generator (several times faster)
        redirect = template.redirects[0]
        redirects: tuple[Redirect, ...] = (
            Redirect(redirect.direction, targets[0], True, redirect.fd),
        )
    else:
        redirects = tuple(
            Redirect(r.direction, target, True, r.fd)
            for r, target in zip(template.redirects, targets, strict=True)
        )
    return PlainCommand(text, template.body, redirects, template.substitutions)


def _written_targets(command: PlainCommand, start: int) -> list[str] | None:
    """The targets of ``command``'s file redirections as written, when none is quoted
    and ``start`` (where `_TARGET` found the first) is past its words (else None)."""
    tail = command.text[len(command.body) :]
    if not command.body or start < len(command.body) or "'" in tail or '"' in tail:
        return None
    return [r.target for r in command.redirects]


def _command(text: str) -> PlainCommand | None:
    """The command ``text`` (blanks stripped), or None if it is empty or must decline."""
    if not text:
        return None  # an operator with no command before or after it
    first = text.split(None, 1)[0] if _ungrouped(text) else _WORD.match(text)
    name = first if isinstance(first, str) else first.group() if first is not None else ""
    if not name or "=" in name or name in _SPECIAL_NAMES:
        return None
    if name.startswith("-") or "%" in name or "@" in name:
        # No program is named so; tree-sitter drops a lone `-` before an
        # assignment (`- x=1 cmd`), which the walk then reports as unparsed,
        # and cannot parse a command name holding `%` or `@` (`x%1`: it reads
        # `%1` alone and says the rest is unparsed): both left to it (it asks).
        return None
    if ("'" in name or '"' in name) and (
        _QUOTED.sub(_unquote, name) in _SPECIAL_NAMES
        or _BEFORE_QUOTE.match(name).group() in _SPECIAL_NAMES  # type: ignore[union-attr]
    ):
        # tree-sitter reads a reserved word glued to a quote as the word (`if":"`,
        # `export"/"`), where bash reads one word (`if:`): left to it.
        return None
    if "$" in name:
        return None  # a command name only known when it runs
    command = (
        PlainCommand(text)
        if "<" not in text and ">" not in text and "&" not in text
        else _redirected(text)
    )
    if command is not None and "$" in text:
        return _substituted(command)
    return command


def _substituted(command: PlainCommand) -> PlainCommand | None:
    """``command`` with the statements of its command substitutions, each a whole word
    whose script is itself provably simple (else None)."""
    for source, _ in command.words:
        if "$" not in source or source in command.substitutions:
            continue
        inner = _INNER.fullmatch(source)
        statements = _inner_line(inner.group(1)) if inner is not None else None
        if statements is None:
            return None  # glued to other text (`a$(b)`), empty, or not simple
        command.substitutions[source] = statements
    for redirect in command.redirects:
        if "$" in redirect.target:
            return None  # a target only known when it runs
    return command


@functools.lru_cache(maxsize=1024)
def _inner_line(script: str) -> list[Plain] | None:
    """`simple_line` of a substitution's script, kept: a line repeats its substitutions
    (``echo $(date) > out1; echo $(date) > out2; ...``). Shared: never changed."""
    return simple_line(script)


def _redirected(text: str) -> PlainCommand | None:
    """A command whose words are followed by redirections only, each after a blank:
    ``[N]>``, ``[N]>>``, ``[N]<``, ``&>`` to a word, or ``[N]>&M`` (descriptor
    numbers). Anything else (a redirection among the words, ``>|``, ``<>``, ``>&-``,
    a target starting with ``-`` or ``=``) is left to tree-sitter."""
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(text)]
    body_end = 0
    index = 0
    while index < len(tokens) and tokens[index][0] in ("word", "blank"):
        body_end += len(tokens[index][1])
        index += 1
    if index == len(tokens):
        return PlainCommand(text)  # `<` or `>` inside quotes only
    if tokens[index][0] != "operator" or not body_end:
        return None
    redirects: list[Redirect] = []
    while index < len(tokens):
        kind, operator = tokens[index]
        if kind != "operator" or tokens[index - 1][0] != "blank":
            return None
        index += 1
        if index < len(tokens) and tokens[index][0] == "blank":
            index += 1
        if index == len(tokens) or tokens[index][0] != "word":
            return None
        target = tokens[index][1]
        index += 1
        if index < len(tokens):
            if tokens[index][0] != "blank" or index + 1 == len(tokens):
                return None
            index += 1
        fd = int(operator[0]) if operator[0].isdigit() else None
        operator = operator.lstrip("0123456789")
        value = _QUOTED.sub(_unquote, target)
        if (
            target[0] in "-="
            or (operator == ">&" and not target.isdigit())
            or (operator == "<" and fd is not None)  # tree-sitter reads `0<x` as `0 <x`
        ):
            return None
        if operator != ">&":  # a descriptor duplicated (`2>&1`): no file
            redirects.append(Redirect(_DIRECTIONS[operator], value, True, fd))
    body = text[:body_end].rstrip(_BLANKS)
    if body.endswith((" -", "\t-")):
        return None  # tree-sitter drops a lone `-` before a redirection from the command
    return PlainCommand(text, body, tuple(redirects))


def _unquote(match: re.Match[str]) -> str:
    single, double = match.groups()
    return single if single is not None else double
