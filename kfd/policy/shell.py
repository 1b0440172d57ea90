"""Static analysis of bash command lines for permission decisions.

`analyze(line)` parses a command line with tree-sitter's bash grammar and lists
every simple command it would run, however it is composed: `&&`, `||`, `;`,
`|`, `&`, newlines, subshells, `{ …; }` groups, `!`, the bodies and conditions
of `if`/`while`/`until`/`for`/`select`/`case`, function bodies, command and
process substitutions, and the scripts of `bash -c`, `eval`, `su -c` and
`trap`. Each command is unwrapped to the program doing the work (`sudo`,
`env`, `timeout`, `nice`, `nohup`, `xargs`, `find -exec`, `git -C`, ...; see
`kfd.policy.shell_wrappers`) and its words are given after quote removal.
Anything that means a human should look is a `Risk`.

The guarantee a permission engine builds on: **an allowed verdict is only
possible if every simple command is fully static and accounted for**. When
`analyze` returns no risks,

- `commands` holds every program the line can run, each with the exact argv
  bash would pass (`static` is true for all of them), and
- nothing in the line can run code the analyzer has not listed: there is no
  command or process substitution, expansion in a command position, `eval`,
  `source`, function or alias definition, sensitive variable assignment, file
  write, parse error or syntax the analyzer does not know.

So an engine may allow a line only when `risks` is empty (or holds only risks
it has cleared itself, such as a `redirect_write` into the workspace) and every
command matches an allow rule (`matches_rule`). Anything unknown is a risk:
the analyzer fails closed. Rules match the *effective* argv, so the wrapper
chain is recorded on each command for display (and privilege-changing
wrappers are risks of their own).

Rule specifiers (the text inside `bash(…)`) are split into words with `shlex`;
see `matches_rule` and `rule_for`.

Everything here is pure (no I/O, no subprocess) and takes a few tens of
microseconds for a typical line.

Limits, by design:

- A program that runs code from its own arguments (`python -c`, `node -e`,
  `awk`, `sed e`, `make`, `npm run`, git aliases, `tar --to-command`,
  `rsync -e`, `ssh host cmd`) is one command: a rule ending in `*` trusts it
  with any arguments. Only git options known to run programs are risks.
- Expansions are never evaluated: a variable, glob, tilde or brace expansion
  makes its word non-static (and the line a risk), even when harmless.
- Each line is analyzed alone: a persistent shell's earlier aliases, functions,
  variables or working directory are unknown to it.
- Known tree-sitter-bash quirks are worked around (`! { …; }`, `time { …; }`,
  `! ! cmd`, `cmd - <<EOF`, and the SIGSEGV on 4-byte UTF-8 after `{` from
  tree-sitter/tree-sitter-bash#337). Any other misreading surfaces as a
  `parse_error` or `unparsed` risk (text between syntax nodes that is not
  blank, as when tree-sitter drops `\\ x`), or as an odd argv that carries a
  risk; a few valid lines (`ls ==`) are reported as parse errors.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import msgspec
import tree_sitter
import tree_sitter_bash

from kfd.policy.rules import allow_match, command_pattern
from kfd.policy.shell_words import (
    RiskKind,
    Scan,
    Word,
    WordContext,
    decode,
    evaluate_word,
    merge_adjacent,
    scan_node,
    suspicious_characters,
    walk,
)
from kfd.policy.shell_wrappers import sensitive_variable, unwrap

if TYPE_CHECKING:
    from tree_sitter import Node

    from kfd.policy.shell_wrappers import Invocation

__all__ = [
    "MAX_COMMAND_BYTES",
    "MAX_DEPTH",
    "Assignment",
    "Redirect",
    "Risk",
    "RiskKind",
    "ShellAnalysis",
    "SimpleCommand",
    "analyze",
    "matches_rule",
    "rule_for",
]

MAX_COMMAND_BYTES = 64 * 1024
"""Longer lines are not parsed: they get a single `too_long` risk."""
MAX_DEPTH = 96
"""How deep the analyzer follows nesting (syntax tree levels plus nested scripts)."""

_LANGUAGE = tree_sitter.Language(tree_sitter_bash.language())


class Risk(msgspec.Struct, frozen=True):
    """Something in a command line that a human should look at."""

    kind: RiskKind
    message: str
    """What was found and why it matters, for the person approving."""
    subject: str = ""
    """The part of the line concerned; for `redirect_write`, the target path."""


class Redirect(msgspec.Struct, frozen=True):
    """A redirection to or from a file (descriptor duplication and closing are left out)."""

    direction: Literal["read", "write", "append"]
    target: str
    """The path after quote removal when `static`, else as written."""
    static: bool
    fd: int | None = None
    """The descriptor written before the operator (`2>`), if any."""


class Assignment(msgspec.Struct, frozen=True):
    """A variable set for a command (`NAME=value cmd`, `env NAME=value cmd`)."""

    name: str
    value: str
    """After quote removal when `static`, else as written."""
    static: bool


class SimpleCommand(msgspec.Struct, frozen=True):
    """One program the line would run, after unwrapping known wrappers."""

    argv: list[str]
    """The effective command's words: after quote removal when static, else as written."""
    static: bool
    """Every word of `argv` is exactly what bash would pass, and none are appended at run time."""
    source: str
    """The text of the simple command this came from."""
    wrappers: list[list[str]] = []
    """The wrappers it ran through, outermost first (`[["sudo", "-u", "x"], ["bash", "-c"]]`)."""
    assignments: list[Assignment] = []
    redirects: list[Redirect] = []
    """File redirections that apply to it, including those of enclosing groups."""
    chdir: list[str] = []
    """Directories it runs in, in order (`git -C`, `env -C`, `sudo -D`)."""
    git_config: list[str] = []
    """Configuration overrides given to git (`-c key=value`, `--git-dir=…`)."""
    open_ended: bool = False
    """It gets further arguments only known at run time (`xargs`, `find -exec … {}`)."""
    dynamic: dict[int, str] = {}
    """The `argv` words that are not static, by index, with why (``glob pattern``,
    ``variable expansion``, ...): those words are as written, not what bash passes."""


class ShellAnalysis(msgspec.Struct, frozen=True):
    """Everything `analyze` found in one command line."""

    command: str
    commands: list[SimpleCommand]
    """Every simple command the line can run, in source order (substitutions first)."""
    risks: list[Risk]
    """Why a human should look; empty only if every command is static and accounted for."""
    redirects: list[Redirect]
    """Every file redirection in the line, once each."""

    @property
    def risk_kinds(self) -> frozenset[RiskKind]:
        """The kinds of `risks`, for quick membership tests."""
        return frozenset(risk.kind for risk in self.risks)


def analyze(command: str) -> ShellAnalysis:
    """List the simple commands `command` would run and the risks it carries."""
    collector = _Collector(command)
    if len(command) > MAX_COMMAND_BYTES or len(_encode(command)) > MAX_COMMAND_BYTES:
        collector.risk(
            RiskKind.TOO_LONG,
            f"the command line is longer than {MAX_COMMAND_BYTES} bytes and was not analyzed",
        )
    else:
        for description in suspicious_characters(command):
            collector.risk(RiskKind.LOOKALIKE, f"the command line contains {description}")
        collector.script(command, _Context(), 0)
    risks = list(dict.fromkeys(collector.risks))
    return ShellAnalysis(command, collector.commands, risks, collector.redirects)


def matches_rule(rule_spec: str, argv: list[str]) -> bool:
    """Whether a bash permission rule specifier matches one command's argv.

    The specifier (the text inside `bash(…)`) is split into words with
    `shlex.split`, so `git 'status'` and `git status` are the same rule. A
    final unquoted `*` word means "these words, then any further arguments or
    none": `npm run test *` matches `npm run test` and `npm run test --watch`.
    Otherwise the argv must equal the words exactly: `git status` matches
    neither `git status --short` nor `git statusx`. Words are compared whole,
    never as text prefixes. A specifier that does not split (unbalanced
    quotes) or is empty matches nothing; `*` alone matches every command.

    Match each command of a `ShellAnalysis` separately; a line is covered only
    if all of its commands are (and its risks are cleared).
    """
    pattern = command_pattern(rule_spec)
    return pattern is not None and allow_match(pattern, argv, (), open_ended=False)


def rule_for(argv: list[str]) -> str:
    """The rule specifier that allows exactly this argv and nothing else.

    This is what "allow for this session" records: the words quoted with
    `shlex.join`, never a wildcard (a final `*` argument comes out quoted).
    `matches_rule(rule_for(argv), argv)` always holds.
    """
    if not argv:
        raise ValueError("a rule needs at least one word")
    return shlex.join(argv)


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@dataclass(frozen=True, slots=True)
class _Context:
    """What enclosing syntax imposes on the commands inside it."""

    wrappers: tuple[tuple[str, ...], ...] = ()
    assignments: tuple[Assignment, ...] = ()
    redirects: tuple[Redirect, ...] = ()
    chdir: tuple[str, ...] = ()
    open_ended: bool = False


@dataclass(slots=True)
class _Redirections:
    """Redirect nodes, digested."""

    redirects: list[Redirect] = field(default_factory=list)
    arguments: list[list[Node]] = field(default_factory=list)
    """Words after a redirection target: bash passes them to the command."""
    statements: list[Node] = field(default_factory=list)
    """Statements tree-sitter nests in a here-document redirect (`cat <<EOF | sh`)."""


_CONTAINERS = frozenset(
    {
        "program",
        "pipeline",
        "subshell",
        "compound_statement",
        "negated_command",
        "do_group",
        "if_statement",
        "elif_clause",
        "else_clause",
        "while_statement",
    }
)
_DROPPED_DASH = re.compile(rb"[ \t]+-[ \t]+")
_BLANKS = re.compile(rb"(?:[ \t\n]|\\\n)*")
_CASE_TERMINATORS = frozenset({";;", ";&", ";;&"})
_RESERVED_WORDS = frozenset(
    {"{", "}", "!", "if", "then", "elif", "else", "fi", "case", "esac", "for", "select", "while"}
    | {"until", "do", "done", "in", "function"}
)
_TEST_EXPRESSIONS = frozenset(
    {"binary_expression", "unary_expression", "parenthesized_expression", "ternary_expression"}
)
_ARITHMETIC_TEST_OPERATORS = frozenset({"-eq", "-ne", "-lt", "-le", "-gt", "-ge"})
_SAFE_WRITE_TARGETS = frozenset(
    {"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/fd/1", "/dev/fd/2", "/dev/tty"}
)
_VARIABLE_READS = frozenset(
    {"variable_name", "simple_expansion", "expansion", "subscript", "word", "special_variable_name"}
)


class _Collector:
    """Accumulates commands, risks and redirections across nested scripts."""

    def __init__(self, line: str) -> None:
        self.seen = set(line)
        self.commands: list[SimpleCommand] = []
        self.risks: list[Risk] = []
        self.redirects: list[Redirect] = []

    def risk(self, kind: RiskKind, message: str, subject: str = "") -> None:
        self.risks.append(Risk(kind, message, subject))

    def too_deep(self) -> None:
        self.risk(
            RiskKind.TOO_DEEP,
            f"the command nests deeper than the analyzer follows ({MAX_DEPTH} levels)",
        )

    def script(self, text: str, context: _Context, level: int) -> None:
        if level > MAX_DEPTH:
            self.too_deep()
            return
        source = _encode(text)
        # tree-sitter parses a stand-in of the same length (node offsets hold);
        # every word is read from the real source.
        stand_in = _shield(source)
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
        _Tree(self, source, stand_in).statement(tree.root_node, context, level + 1)


class _Tree:
    """Walks one parsed script, feeding a `_Collector`."""

    def __init__(self, collector: _Collector, source: bytes, parsed: bytes) -> None:
        self.out = collector
        self.source = source
        # What tree-sitter parsed: `source` with a few bytes blanked (see `script`).
        self.parsed = parsed

    def text(self, node: Node) -> str:
        return decode(self.source[node.start_byte : node.end_byte])

    # Statements

    def statement(self, node: Node, context: _Context, level: int) -> None:
        if level > MAX_DEPTH:
            self.out.too_deep()
            return
        if node.is_error or node.is_missing:
            what = "missing " + node.type if node.is_missing else "cannot parse " + self.text(node)
            self.out.risk(RiskKind.PARSE_ERROR, f"bash syntax error: {what}", self.text(node))
            return
        kind = node.type
        if not node.is_named or kind == "comment":
            return
        self.check_gaps(node)
        if kind == "list":
            for operand in _flatten_list(node):
                self.statement(operand, context, level + 1)
        elif kind == "compound_statement" and node.children and node.children[0].type == "((":
            self.arithmetic(node, level)
        elif kind in _CONTAINERS:
            self.check_tokens(node)
            for child in node.children:
                self.statement(child, context, level + 1)
        elif kind == "command":
            self.command(node, context, level, [])
        elif kind == "redirected_statement":
            self.redirected(node, context, level)
        elif kind in ("declaration_command", "unset_command"):
            self.declaration(node, context, level)
        elif kind == "test_command":
            self.test(node, context, level)
        elif kind in ("variable_assignment", "variable_assignments"):
            self.standalone_assignments(node, context, level)
        elif kind == "function_definition":
            self.function(node, context, level)
        elif kind == "for_statement":
            self.for_loop(node, context, level)
        elif kind == "c_style_for_statement":
            self.c_style_for(node, context, level)
        elif kind == "case_statement":
            self.case(node, context, level)
        else:
            self.unparsed(node)

    def check_gaps(self, node: Node) -> None:
        """Text between a node's children must be blanks: tree-sitter drops some
        tokens bash keeps (`rm \\ x` is `rm ' x'` to bash, `rm x` to tree-sitter)."""
        position = node.start_byte
        dash = self.dropped_dash(node)
        for child in (*node.children, None):
            end = node.end_byte if child is None else child.start_byte
            if (
                end > position
                and position != dash
                and not _BLANKS.fullmatch(self.parsed, position, end)
            ):
                gap = decode(self.source[position:end])
                self.out.risk(
                    RiskKind.UNPARSED,
                    f"the analyzer cannot tell how bash reads {gap.strip()!r} here",
                    self.text(node),
                )
                return
            if child is not None:
                position = max(position, child.end_byte)

    def dropped_dash(self, node: Node) -> int:
        """Where tree-sitter dropped the `-` of `cmd - <<EOF` from a command, or -1."""
        body = node.child_by_field_name("body") if node.type == "redirected_statement" else None
        if body is None or body.type != "command" or body.next_sibling is None:
            return -1
        gap = self.parsed[body.end_byte : body.next_sibling.start_byte]
        return body.end_byte if _DROPPED_DASH.fullmatch(gap) else -1

    def check_tokens(self, node: Node) -> None:
        """Catch what tree-sitter accepts but bash rejects or reads differently."""
        children = node.children
        for index, child in enumerate(children):
            if child.type in _CASE_TERMINATORS:
                self.out.risk(
                    RiskKind.PARSE_ERROR, f"{child.type!r} outside a case item", self.text(node)
                )
            elif child.type == "!" and index + 1 < len(children):
                following = children[index + 1]
                glued = following.start_byte == child.end_byte
                if glued and self.source[following.start_byte : following.start_byte + 1] != b"(":
                    # Bash reads `!word` as one word, not as negation of `word`.
                    self.unparsed(node)

    def unparsed(self, node: Node) -> None:
        self.out.risk(
            RiskKind.UNPARSED,
            f"the analyzer does not understand {node.type} syntax here",
            self.text(node),
        )

    def function(self, node: Node, context: _Context, level: int) -> None:
        name = node.child_by_field_name("name")
        label = self.text(name) if name is not None else "?"
        self.out.risk(
            RiskKind.FUNCTION_DEFINITION,
            f"defines function {label!r}, which can shadow any command of the same name",
            label,
        )
        body = node.child_by_field_name("body")
        if body is not None:
            self.statement(body, context, level + 1)

    def for_loop(self, node: Node, context: _Context, level: int) -> None:
        for index, child in enumerate(node.children):
            role = node.field_name_for_child(index)
            if role == "value":
                self.loose_word(child, level, "argument")
            elif role == "body" or (child.is_named and role != "variable"):
                self.statement(child, context, level + 1)

    def c_style_for(self, node: Node, context: _Context, level: int) -> None:
        for index, child in enumerate(node.children):
            role = node.field_name_for_child(index)
            if role == "body":
                self.statement(child, context, level + 1)
            elif child.is_named:
                self.arithmetic(child, level)

    def case(self, node: Node, context: _Context, level: int) -> None:
        for index, child in enumerate(node.children):
            if node.field_name_for_child(index) == "value":
                self.loose_word(child, level, "pattern")
            elif child.type == "case_item":
                for item_index, part in enumerate(child.children):
                    if child.field_name_for_child(item_index) == "value":
                        self.loose_word(part, level, "pattern")
                    elif part.is_named or part.is_missing:
                        self.statement(part, context, level + 1)
            else:
                self.statement(child, context, level + 1)

    def loose_word(self, node: Node, level: int, context: WordContext) -> None:
        """A word outside any command (loop values, case patterns): only its risks count."""
        scan = Scan()
        evaluate_word([node], self.source, scan, context)
        self.scanned(scan, level)

    def arithmetic(self, node: Node, level: int) -> None:
        scan = Scan()
        scan_node(node, scan)
        if any(d.type in _VARIABLE_READS for d in walk(node)):
            scan.arithmetic.append(node)
        self.scanned(scan, level)

    def scanned(self, scan: Scan, level: int) -> None:
        """Turn what word evaluation found into risks, and analyze substitutions."""
        for node in scan.errors:
            self.statement(node, _Context(), level + 1)
        for node in scan.unparsed:
            self.unparsed(node)
        for node in scan.arithmetic:
            self.out.risk(
                RiskKind.ARITHMETIC,
                "arithmetic evaluation of a variable runs any command substitution hidden in "
                "its value (e.g. x='a[$(cmd)]')",
                self.text(node),
            )
        for node in scan.substitutions:
            if node.type == "process_substitution":
                kind, what = RiskKind.PROCESS_SUBSTITUTION, "process substitution"
            else:
                kind, what = RiskKind.COMMAND_SUBSTITUTION, "command substitution"
            self.out.risk(kind, f"{what} runs commands whose output the line uses", self.text(node))
            for child in node.children:
                self.statement(child, _Context(), level + 1)

    # Redirections

    def redirected(self, node: Node, context: _Context, level: int) -> None:
        scan = Scan()
        digest = _Redirections()
        body: Node | None = None
        for index, child in enumerate(node.children):
            role = node.field_name_for_child(index)
            if role == "body":
                body = child
            elif role == "redirect":
                self.redirect(child, scan, digest)
            elif child.is_error or child.is_missing:
                scan.errors.append(child)
            elif child.is_named:
                scan.unparsed.append(child)
        self.register(digest.redirects)
        self.scanned(scan, level)
        inner = _with_redirects(context, digest.redirects)
        if body is not None and body.type == "command":
            dash = [Word("-", "-")] if self.dropped_dash(node) >= 0 else []
            self.command(body, inner, level + 1, digest.arguments, dash)
        else:
            if digest.arguments:
                self.out.risk(
                    RiskKind.PARSE_ERROR,
                    "words follow a redirection of a compound command",
                    self.text(node),
                )
            if body is not None:
                self.statement(body, inner, level + 1)
        for statement in digest.statements:
            self.statement(statement, context, level + 1)

    def redirect(self, node: Node, scan: Scan, digest: _Redirections) -> None:
        self.check_gaps(node)
        kind = node.type
        if kind == "file_redirect":
            self.file_redirect(node, scan, digest)
        elif kind == "herestring_redirect":
            groups = merge_adjacent(node.children[1:], self.source)
            for group in groups[:1]:
                evaluate_word(group, self.source, scan)
            digest.arguments.extend(groups[1:])
        elif kind == "heredoc_redirect":
            self.heredoc(node, scan, digest)
        elif node.is_error or node.is_missing:
            scan.errors.append(node)
        else:
            scan.unparsed.append(node)

    def heredoc(self, node: Node, scan: Scan, digest: _Redirections) -> None:
        for index, child in enumerate(node.children):
            role = node.field_name_for_child(index)
            kind = child.type
            if kind == "heredoc_body":
                scan_node(child, scan)
            elif role == "redirect":
                self.redirect(child, scan, digest)
            elif kind == "pipeline":
                digest.statements.extend(child.named_children)
            elif role == "right":
                digest.statements.append(child)
            elif child.is_error or child.is_missing:
                scan.errors.append(child)
            elif child.is_named and kind not in ("heredoc_start", "heredoc_end"):
                scan.unparsed.append(child)

    def file_redirect(self, node: Node, scan: Scan, digest: _Redirections) -> None:
        fd: int | None = None
        operator: str | None = None
        destinations: list[Node] = []
        for index, child in enumerate(node.children):
            role = node.field_name_for_child(index)
            if role == "descriptor":
                text = self.text(child)
                fd = int(text) if text.isdigit() else None
            elif role == "destination":
                destinations.append(child)
            elif child.is_error or child.is_missing:
                scan.errors.append(child)
            elif not child.is_named and operator is None:
                operator = child.type
            else:
                scan.unparsed.append(child)
        groups = merge_adjacent(destinations, self.source)
        if operator in (">&-", "<&-"):
            digest.arguments.extend(groups)
            return
        if not groups:
            scan.unparsed.append(node)
            return
        digest.arguments.extend(groups[1:])
        target = evaluate_word(groups[0], self.source, scan)
        if operator in (">&", "<&") and target.value is not None and _descriptor(target.value):
            return
        if operator in ("<", "<&"):
            direction: Literal["read", "write", "append"] = "read"
        elif operator in (">>", "&>>"):
            direction = "append"
        elif operator in (">", ">|", "&>", ">&"):
            direction = "write"
        else:
            scan.unparsed.append(node)
            return
        digest.redirects.append(Redirect(direction, target.text, target.static, fd))

    def register(self, redirects: list[Redirect]) -> None:
        for redirect in redirects:
            self.out.redirects.append(redirect)
            if not redirect.static:
                self.out.risk(
                    RiskKind.DYNAMIC_REDIRECT,
                    f"redirection target {redirect.target!r} is not static",
                    redirect.target,
                )
            elif redirect.target.startswith(("/dev/tcp/", "/dev/udp/")):
                self.out.risk(
                    RiskKind.REDIRECT_WRITE,
                    f"redirection to {redirect.target!r} opens a network connection",
                    redirect.target,
                )
            elif redirect.direction != "read" and redirect.target not in _SAFE_WRITE_TARGETS:
                self.out.risk(
                    RiskKind.REDIRECT_WRITE,
                    f"output is written to {redirect.target!r}",
                    redirect.target,
                )

    # Simple commands

    def command(
        self,
        node: Node,
        context: _Context,
        level: int,
        extra: list[list[Node]],
        dash: list[Word] | None = None,
    ) -> None:
        scan = Scan()
        prefix: list[Assignment] = []
        word_nodes: list[Node] = []
        digest = _Redirections()
        for index, child in enumerate(node.children):
            role = node.field_name_for_child(index)
            if child.type == "variable_assignment" and not word_nodes:
                prefix.append(self.assignment(child, scan))
            elif child.is_missing or any(c.is_missing for c in child.children):
                scan.errors.extend(n for n in (child, *child.children) if n.is_missing)
            elif role == "name":
                word_nodes.extend(child.children)
            elif role == "argument" or child.type == "variable_assignment":
                word_nodes.append(child)
            elif role == "redirect":
                self.redirect(child, scan, digest)
            elif child.is_error or child.is_missing:
                scan.errors.append(child)
            elif child.type != "comment":
                scan.unparsed.append(child)
        own = merge_adjacent(word_nodes, self.source) + digest.arguments
        own.sort(key=lambda group: group[0].start_byte)
        words = [evaluate_word(group, self.source, scan) for group in own]
        # Words tree-sitter put elsewhere follow the command's own: a dropped `-`
        # (before its here-document), then words after redirection targets.
        words += dash or []
        words += [evaluate_word(group, self.source, scan) for group in extra]
        self.register(digest.redirects)
        self.scanned(scan, level)
        context = _with_redirects(context, digest.redirects)
        self.emit(words, prefix, context, self.text(node), level)
        for statement in digest.statements:
            self.statement(statement, context, level + 1)

    def assignment(self, node: Node, scan: Scan) -> Assignment:
        name_node = node.child_by_field_name("name")
        value_node = node.child_by_field_name("value")
        if name_node is None:
            scan.unparsed.append(node)
            return Assignment(self.text(node), "", False)
        scan_node(name_node, scan)
        base = name_node
        if name_node.type == "subscript":
            inner = name_node.child_by_field_name("name")
            base = inner if inner is not None else name_node
            index = name_node.child_by_field_name("index")
            if index is not None and any(d.type in _VARIABLE_READS for d in walk(index)):
                scan.arithmetic.append(index)
        if value_node is None:
            return Assignment(self.text(base), "", True)
        if value_node.type == "array":
            elements = merge_adjacent(value_node.named_children, self.source)
            values = [evaluate_word(group, self.source, scan) for group in elements]
            static = all(v.static for v in values)
            return Assignment(self.text(base), self.text(value_node), static)
        after = [c for c in node.children if c.start_byte >= value_node.start_byte]
        value = evaluate_word(after, self.source, scan, "assignment")
        return Assignment(self.text(base), value.text, value.static)

    def standalone_assignments(self, node: Node, context: _Context, level: int) -> None:
        scan = Scan()
        nodes = node.named_children if node.type == "variable_assignments" else [node]
        assignments = [self.assignment(child, scan) for child in nodes]
        self.scanned(scan, level)
        self.check_assignments(assignments)

    def check_assignments(self, assignments: list[Assignment]) -> None:
        for assignment in assignments:
            if sensitive_variable(assignment.name):
                self.out.risk(
                    RiskKind.ENV_ASSIGNMENT,
                    f"sets {assignment.name}, which programs may read to decide what to run or "
                    "load (PATH, LD_PRELOAD, GIT_*, PAGER, ... are common bypasses)",
                    assignment.name,
                )

    def declaration(self, node: Node, context: _Context, level: int) -> None:
        """`export`, `declare`, `local`, `readonly`, `typeset`, `unset`: builtins as commands."""
        scan = Scan()
        children = node.children
        if not children or children[0].is_named:
            self.unparsed(node)
            return
        keyword = self.text(children[0])
        words = [Word(keyword, keyword)]
        plain: list[Node] = []
        for child in children[1:]:
            if child.type == "variable_assignment":
                words.extend(evaluate_word(g, self.source, scan) for g in self.groups(plain))
                plain = []
                assigned = self.assignment(child, scan)
                operator = "+=" if any(c.type == "+=" for c in child.children) else "="
                rendered = f"{assigned.name}{operator}{assigned.value}"
                words.append(
                    Word(self.text(child), rendered if assigned.static else None, "expansion")
                )
            elif child.type == "comment":
                continue
            else:
                plain.append(child)
        words.extend(evaluate_word(g, self.source, scan) for g in self.groups(plain))
        self.scanned(scan, level)
        self.emit(words, [], context, self.text(node), level)

    def groups(self, nodes: list[Node]) -> list[list[Node]]:
        return merge_adjacent(nodes, self.source) if nodes else []

    def test(self, node: Node, context: _Context, level: int) -> None:
        """`[[ … ]]` and `[ … ]`, as a command whose words are the test's tokens."""
        scan = Scan()
        double = bool(node.children) and node.children[0].type == "[["
        words: list[Word] = []
        stack = list(reversed(node.children))
        while stack:
            child = stack.pop()
            if not child.is_named:
                words.append(Word(child.type, child.type))
            elif child.type in _TEST_EXPRESSIONS:
                if double and child.type == "binary_expression":
                    self.arithmetic_test(child, scan)
                stack.extend(reversed(child.children))
            else:
                words.append(
                    evaluate_word([child], self.source, scan, "test" if double else "argument")
                )
        self.scanned(scan, level)
        self.emit(words, [], context, self.text(node), level)

    def arithmetic_test(self, node: Node, scan: Scan) -> None:
        operator = node.child_by_field_name("operator")
        if operator is None or self.text(operator) not in _ARITHMETIC_TEST_OPERATORS:
            return
        for side in ("left", "right"):
            operand = node.child_by_field_name(side)
            if operand is not None and not self.text(operand).lstrip("-").isdigit():
                scan.arithmetic.append(node)
                return

    def emit(
        self,
        words: list[Word],
        prefix: list[Assignment],
        context: _Context,
        source: str,
        level: int,
    ) -> None:
        """Unwrap one simple command's words and record what it runs."""
        self.check_assignments(prefix)
        for word in words:
            value = word.value
            # Characters already in the line were reported; decoding ($'\u…') can add more.
            if value is not None and not set(value) <= self.out.seen:
                for description in suspicious_characters(value):
                    self.out.risk(RiskKind.LOOKALIKE, f"a word contains {description}", word.source)
        if not words:
            return
        unwrapped = unwrap(words)
        for finding in unwrapped.findings:
            self.out.risk(finding.kind, finding.message, finding.subject)
        inherited = [*context.assignments, *prefix]
        for invocation in unwrapped.invocations:
            self.invocation(invocation, inherited, context, source)
        for script in unwrapped.scripts:
            assignments = [*inherited, *self.wrapped_assignments(script.assignments)]
            nested = _Context(
                (*context.wrappers, *(tuple(w) for w in script.wrappers)),
                tuple(assignments),
                context.redirects,
                (*context.chdir, *script.chdir),
                context.open_ended or script.open_ended,
            )
            self.out.script(script.text, nested, level + 1)

    def wrapped_assignments(self, pairs: list[tuple[str, Word]]) -> list[Assignment]:
        assignments = [Assignment(name, value.text, value.static) for name, value in pairs]
        self.check_assignments(assignments)
        return assignments

    def invocation(
        self,
        invocation: Invocation,
        inherited: list[Assignment],
        context: _Context,
        source: str,
    ) -> None:
        head, *arguments = invocation.words
        if head.source in _RESERVED_WORDS:
            # tree-sitter took a keyword for a command name (`time { …; }`, a stray `}`).
            self.out.risk(
                RiskKind.PARSE_ERROR,
                f"reserved word {head.source!r} where a command should be",
                source,
            )
        if not head.static:
            self.out.risk(
                RiskKind.DYNAMIC_COMMAND,
                f"the command name {head.source!r} is not static ({head.reason})",
                head.source,
            )
        for word in arguments:
            if not word.static:
                self.out.risk(
                    RiskKind.DYNAMIC_ARGUMENT,
                    f"argument {word.source!r} of {head.text!r} is not static ({word.reason})",
                    word.source,
                )
        assignments = [*inherited, *self.wrapped_assignments(invocation.assignments)]
        open_ended = invocation.open_ended or context.open_ended
        self.out.commands.append(
            SimpleCommand(
                argv=[word.text for word in invocation.words],
                static=all(w.static for w in invocation.words) and not open_ended,
                source=source,
                wrappers=[*(list(w) for w in context.wrappers), *invocation.wrappers],
                assignments=assignments,
                redirects=list(context.redirects),
                chdir=[*context.chdir, *invocation.chdir],
                git_config=list(invocation.git_config),
                open_ended=open_ended,
                dynamic={i: w.reason for i, w in enumerate(invocation.words) if not w.static},
            )
        )


def _with_redirects(context: _Context, redirects: list[Redirect]) -> _Context:
    if not redirects:
        return context
    return _Context(
        context.wrappers,
        context.assignments,
        (*context.redirects, *redirects),
        context.chdir,
        context.open_ended,
    )


def _descriptor(target: str) -> bool:
    """Whether a `>&`/`<&` target duplicates or closes a descriptor rather than naming a file."""
    return target.isdigit() or target == "-"


_MAX_REPAIRS = 8
# 4-byte UTF-8 sequences (and encoded lone surrogates) after a `{` can crash
# tree-sitter-bash 0.25 with SIGSEGV (tree-sitter/tree-sitter-bash#337). They are
# never shell syntax, so the parser sees plain word characters in their place.
_CRASHY_SEQUENCES = re.compile(rb"[\xf0-\xf7][\x80-\xbf]{0,3}|\xed[\xa0-\xbf][\x80-\xbf]")


def _shield(source: bytes) -> bytes:
    """`source` with every byte sequence that can crash the parser replaced by `x`s."""
    if not _CRASHY_SEQUENCES.search(source):
        return source
    return _CRASHY_SEQUENCES.sub(lambda match: b"x" * len(match.group()), source)


_GROUP_OPENERS = (b"{", b"(")


def _misread_keywords(root: Node, source: bytes) -> list[Node]:
    """`!` and `time` keywords tree-sitter misreads before a `{ …; }` or `( … )` group.

    tree-sitter-bash parses `! { a; }` as the negation of a command named `{`,
    `! ! a` as the negation of a command named `!`, and `time { a; }` as a
    command named `time`.
    """
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


def _flatten_list(node: Node) -> list[Node]:
    """The operands of a chain of `&&`/`||` lists, without recursion (chains can be long)."""
    operands: list[Node] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if current.type == "list":
            stack.extend(reversed(current.children))
        else:
            operands.append(current)
    return operands
