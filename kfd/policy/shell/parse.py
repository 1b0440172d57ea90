"""The syntax walker: a parsed bash script to simple commands, redirections and risks.

Part of the shell analyser (`kfd.policy.shell`, whose docstring states the
guarantee). `Collector.script` parses a script (`kfd.policy.shell.repair`)
and walks every statement: lists, pipelines, subshells, groups, `!`, the
bodies and conditions of `if`/`while`/`until`/`for`/`select`/`case`,
functions, command and process substitutions, and the scripts of `bash -c`,
`eval`, `su -c` and `trap` (handed back by `kfd.policy.shell.unwrap`). Each
simple command's words are evaluated (`kfd.policy.shell.words`), unwrapped to
the program doing the work, and recorded as a `SimpleCommand`; whatever a
human must look at is a `Risk`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from kfd.policy.shell.evaluation import literal_arithmetic_node
from kfd.policy.shell.fastpath import simple_line
from kfd.policy.shell.model import Assignment, Redirect, Risk, RiskKind, SimpleCommand
from kfd.policy.shell.plain import CONTAINERS, PlainMemo, PlainWalk
from kfd.policy.shell.redirects import Redirections, dash_word
from kfd.policy.shell.repair import comments, flatten_list, parse_script
from kfd.policy.shell.simple import Context
from kfd.policy.shell.words import (
    Scan,
    WordContext,
    decode,
    evaluate_word,
    joined_in_word,
    plain_word,
    scan_node,
)

if TYPE_CHECKING:
    from tree_sitter import Node

__all__ = ["MAX_DEPTH", "Collector", "Context"]

MAX_DEPTH = 96
"""How deep the analyzer follows nesting (syntax tree levels plus nested scripts)."""


_DROPPED_DASH = re.compile(rb"[ \t]+-[ \t]+")
_BLANKS = re.compile(rb"(?:[ \t\n]|\\\n)*")
_WORD_BLANKS = re.compile(rb"(?:[ \t]|\\\n)*")
"""Between a command's words: a line break (not escaped) ends a command in bash, yet
tree-sitter reads ``a | b | 'c'⏎d && e`` as one command ``c d`` (hiding ``d``)."""
_CASE_TERMINATORS = frozenset({";;", ";&", ";;&"})
_UNSHARED = frozenset({"program", "comment"})
_STARTS_A_WORD = frozenset({b" ", b"\t", b"\n", b";", b"&", b"|"})
"""What a `#` that starts a comment may follow: a blank, a newline, or an operator after
which bash starts a new word (`a=(b)# x` runs `x`: not after `)`)."""


def _child(node: Node, index: int) -> Node:
    child = node.child(index)
    assert child is not None  # an index below child_count
    return child


_RESERVED_WORDS = frozenset(
    {"{", "}", "!", "if", "then", "elif", "else", "fi", "case", "esac", "for", "select", "while"}
    | {"until", "do", "done", "in", "function"}
)
_TEST_EXPRESSIONS = frozenset(
    {"binary_expression", "unary_expression", "parenthesized_expression", "ternary_expression"}
)
_ARITHMETIC_TEST_OPERATORS = frozenset({"-eq", "-ne", "-lt", "-le", "-gt", "-ge"})
_NAME_TEST_OPERATORS = frozenset({"-v", "-R"})
_ARRAY_ELEMENT_SUBSCRIPT = re.compile(r"\[([^\]]*)\]\+?=")


class Collector:
    """Accumulates commands, risks and redirections across nested scripts."""

    def __init__(self, line: str, *, fast_path: bool = True, runs: bool = True) -> None:
        self.line = line
        self.seen: set[str] | None = None
        """The characters of the line, once asked for (`characters`)."""
        self.fast_path = fast_path
        """Whether provably simple scripts skip tree-sitter (`kfd.policy.shell.fastpath`)."""
        self.runs = runs
        """Whether tree-sitter reads long runs of plain words as one (`kfd.policy.shell.runs`)."""
        self.commands: list[SimpleCommand] = []
        self.risks: list[Risk] = []
        self.redirects: list[Redirect] = []
        self.expansions = False
        """A word outside any command's argv is only known at run time."""
        self.inputs: list[str] = []
        """Here-documents and here-strings, as written."""
        self.walked: set[tuple[object, ...]] = set()
        """Statements already walked, with their context (`_Walker.statement`)."""
        self.memo = PlainMemo()
        """What the walks of plain statements learnt (`PlainWalk`)."""

    def characters(self) -> set[str]:
        """The characters of the line."""
        if self.seen is None:
            self.seen = set(self.line)
        return self.seen

    def risk(self, kind: RiskKind, message: str, subject: str = "") -> None:
        self.risks.append(Risk(kind, message, subject))

    def too_deep(self) -> None:
        self.risk(
            RiskKind.TOO_DEEP,
            f"the command nests deeper than the analyzer follows ({MAX_DEPTH} levels)",
        )

    def script(self, text: str, context: Context, level: int) -> None:
        """Analyze the bash script ``text`` (a line, or the script of ``bash -c``)."""
        if level > MAX_DEPTH:
            self.too_deep()
            return
        if "\\\n" in text and (joined := joined_in_word(text)):
            self.risk(
                RiskKind.UNPARSED,
                f"a backslash-newline joins `{joined}`: bash joins the lines before it "
                "reads the words, which kfd does not (`$\\⏎(` is a command substitution)",
            )
        source = text.encode("utf-8", "surrogatepass")
        # Deep levels stay with tree-sitter, which reports exactly where nesting stops.
        if self.fast_path and level + 4 <= MAX_DEPTH:
            statements = simple_line(text)
            if statements is not None:
                _Walker(self, source, source).plain(statements, context, level + 2)
                return
        tree, stand_in, merged = parse_script(source, runs=self.runs)
        walker = _Walker(self, source, stand_in, merged)
        if merged and not walker.runs_hold(tree.root_node):
            tree, stand_in, merged = parse_script(source)
            walker = _Walker(self, source, stand_in, merged)
        walker.statement(tree.root_node, context, level + 1)
        self.misread(tree.root_node, source)

    def misread(self, root: Node, source: bytes) -> None:
        """Risks for what tree-sitter may read otherwise than bash, wherever it is
        (round 23 found both deep inside statements the walk takes as inert): a syntax
        error or a missing token anywhere (`x=>file` is an assignment holding an error
        to tree-sitter, a write to bash), and a comment whose `#` does not start a word
        (`x#;rm -rf src⏎=x`: bash runs `rm`, tree-sitter reads a comment)."""
        if root.has_error:
            self.risk(
                RiskKind.PARSE_ERROR,
                "bash syntax error: tree-sitter cannot read part of the line as bash does",
            )
            return  # (where its recovery puts comments then is its own)
        if b"#" not in source:
            return
        for comment in comments(root):
            start = comment.start_byte
            if start and source[start - 1 : start] not in _STARTS_A_WORD:
                before = decode(source[max(0, start - 20) : start + 1])
                self.risk(
                    RiskKind.UNPARSED,
                    f"`#` right after {source[start - 1 : start].decode('latin-1')!r} "
                    f"(…{before}): bash reads it as part of a word, not as a comment",
                    before,
                )


class _Walker(PlainWalk):
    """Walks one parsed script, feeding a `Collector`."""

    def __init__(
        self,
        collector: Collector,
        source: bytes,
        parsed: bytes,
        merged: dict[tuple[int, int], int] | None = None,
    ) -> None:
        self.out = collector
        self.memo = collector.memo
        self.walked = collector.walked
        self.source = source
        # What tree-sitter parsed: `source` with a few bytes blanked (`parse_script`).
        self.parsed = parsed
        self.merged = merged or {}
        """The runs of plain words tree-sitter read as one word, with how many each holds."""
        self.plain_spans: dict[tuple[int, int], tuple[int, int] | None] = {}

    def text(self, node: Node) -> str:
        return decode(self.source[node.start_byte : node.end_byte])

    def risk(self, kind: RiskKind, message: str, subject: str = "") -> None:
        self.out.risks.append(Risk(kind, message, subject))  # (`Collector.risk`, a call less)

    def found_redirects(self, redirects: list[Redirect]) -> None:
        self.out.redirects += redirects

    def found_risks(self, risks: list[Risk]) -> None:
        self.out.risks += risks

    def found_input(self, text: str) -> None:
        self.out.inputs.append(text)

    def found_command(self, command: SimpleCommand) -> None:
        self.out.commands.append(command)

    def nested_script(self, text: str, context: Context, level: int) -> None:
        self.out.script(text, context, level)

    def note_expansions(self) -> None:
        self.out.expansions = True

    def seen_characters(self) -> set[str]:
        return self.out.characters()

    # Statements

    def first_walk(
        self, kind: str, text: bytes, context: Context, level: int, parsed: bytes | None = None
    ) -> bool:
        """Whether a statement is walked for the first time in this context and level
        (``parsed``: its bytes as tree-sitter read them, when not ``text``)."""
        key = (
            (kind, text, context, level)
            if parsed in (None, text)
            else (kind, text, parsed, context, level)
        )
        walked = self.walked
        count = len(walked)
        walked.add(key)  # hashed once (a context's hash is kept, not its tuple's)
        return len(walked) > count

    def statement(self, node: Node, context: Context, level: int) -> None:
        if level > MAX_DEPTH:
            self.out.too_deep()
            return
        if not (node.is_named or node.is_missing or node.is_error):
            return  # a token (`;`, `&&`, `|`…): nothing in it runs
        if node.type not in _UNSHARED:
            # The same statement in the same context adds the same commands, risks and
            # redirections: a line of 270 `ls x && ls x && …` is walked once per
            # distinct statement. (A here-document's body may lie outside its
            # statement's bytes: such statements are always walked.)
            start, end = node.start_byte, node.end_byte
            text = self.source[start:end]
            if b"<<" not in text and not self.first_walk(
                node.type, text, context, level, self.parsed[start:end]
            ):
                return
        if node.is_error or node.is_missing:
            what = "missing " + node.type if node.is_missing else "cannot parse " + self.text(node)
            self.risk(RiskKind.PARSE_ERROR, f"bash syntax error: {what}", self.text(node))
            return
        kind = node.type
        if not node.is_named or kind == "comment":
            return
        self.check_gaps(node)
        if kind == "list":
            for operand in flatten_list(node, self.check_gaps):
                self.statement(operand, context, level + 1)
        elif kind == "compound_statement" and node.children and node.children[0].type == "((":
            self.arithmetic(node, level)
        elif kind in CONTAINERS:
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
            self.standalone_assignments(node, level)
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
        tokens bash keeps (`rm \\ x` is `rm ' x'` to bash, `rm x` to tree-sitter).
        A script's root is checked from its first byte to its last: tree-sitter
        starts it after what it dropped (`- x=` is a program of `x=` alone)."""
        root = node.type == "program"
        position = 0 if root else node.start_byte
        dash = self.dropped_dash(node)
        values = self.plain_values(node)
        spans: list[tuple[int, int]]
        if values is None:
            spans = [(child.start_byte, child.end_byte) for child in node.children]
        else:  # plain words, one node each: only blanks between them
            head, tail = self.around(node, values)
            spans = [*self.spans(node, head), values, *self.spans(node, tail)]
        last = len(self.parsed) if root else node.end_byte
        blanks = _WORD_BLANKS if node.type == "command" else _BLANKS
        for child in (*spans, None):
            end = last if child is None else child[0]
            if (
                end > position
                and position != dash
                and not (end == position + 1 and self.parsed[position] == 32)  # one space
                and not blanks.fullmatch(self.parsed, position, end)
            ):
                gap = decode(self.source[position:end])
                self.risk(
                    RiskKind.UNPARSED,
                    f"the analyzer cannot tell how bash reads {gap.strip()!r} here",
                    self.text(node),
                )
                return
            if child is not None:
                position = max(position, child[1])

    @staticmethod
    def around(node: Node, span: tuple[int, int]) -> tuple[list[int], list[int]]:
        """The indexes of ``node``'s children before and after ``span``."""
        count = node.child_count
        head: list[int] = []
        while len(head) < count and _child(node, len(head)).start_byte < span[0]:
            head.append(len(head))
        tail: list[int] = []
        index = count - 1
        while index >= len(head) and _child(node, index).start_byte >= span[1]:
            tail.append(index)
            index -= 1
        return head, tail[::-1]

    @staticmethod
    def spans(node: Node, indexes: list[int]) -> list[tuple[int, int]]:
        children = [_child(node, index) for index in indexes]
        return [(child.start_byte, child.end_byte) for child in children]

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
                self.risk(
                    RiskKind.PARSE_ERROR, f"{child.type!r} outside a case item", self.text(node)
                )
            elif child.type == "!" and index + 1 < len(children):
                following = children[index + 1]
                glued = following.start_byte == child.end_byte
                if glued and self.source[following.start_byte : following.start_byte + 1] != b"(":
                    # Bash reads `!word` as one word, not as negation of `word`.
                    self.unparsed(node)
            elif child.type == "{" and node.type == "compound_statement":
                after = self.source[child.end_byte : child.end_byte + 1]
                if after not in (b" ", b"\t", b"\n") or node.named_child_count == 0:
                    # `{}` and `{x}` are words bash runs as a program, and `{ }`
                    # is a syntax error: not the empty group tree-sitter sees.
                    self.unparsed(node)

    def unparsed(self, node: Node) -> None:
        self.risk(
            RiskKind.UNPARSED,
            f"the analyzer does not understand {node.type} syntax here",
            self.text(node),
        )

    def function(self, node: Node, context: Context, level: int) -> None:
        name = node.child_by_field_name("name")
        label = self.text(name) if name is not None else "?"
        self.risk(
            RiskKind.FUNCTION_DEFINITION,
            f"defines function {label!r}, which can shadow any command of the same name",
            label,
        )
        body = node.child_by_field_name("body")
        if body is not None:
            self.statement(body, context, level + 1)

    def for_loop(self, node: Node, context: Context, level: int) -> None:
        values = self.plain_values(node)
        if values is None:
            indexed = list(enumerate(node.children))
        else:  # plain words: static, nothing to scan
            head, tail = self.around(node, values)
            indexed = [(index, _child(node, index)) for index in (*head, *tail)]
        for index, child in indexed:
            role = node.field_name_for_child(index)
            if role == "value":
                self.loose_word(child, level, "argument")
            elif role == "variable":
                # Each value is assigned to it: `for PATH in bin; do ls; done`.
                self.check_assignments([Assignment(self.text(child), "", False)])
            elif role == "body" or child.is_named:
                self.statement(child, context, level + 1)

    def c_style_for(self, node: Node, context: Context, level: int) -> None:
        for index, child in enumerate(node.children):
            role = node.field_name_for_child(index)
            if role == "body":
                self.statement(child, context, level + 1)
            elif child.is_named:
                self.arithmetic(child, level)

    def case(self, node: Node, context: Context, level: int) -> None:
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
        """A word outside any command (loop values, case patterns): its risks count,
        and a value only known at run time makes the line more than read-only."""
        if plain_word(node, self.source):
            return  # static, and nothing in it to scan
        scan = Scan()
        word = evaluate_word([node], self.source, scan, context)
        if not word.static and context != "pattern":
            self.out.expansions = True
        self.scanned(scan, level)

    def arithmetic(self, node: Node, level: int) -> None:
        """`(( … ))` and the parts of `for (( …; …; … ))`: inert only when literal."""
        scan = Scan()
        scan_node(node, scan)
        if not literal_arithmetic_node(node):
            scan.arithmetic.append(node)
        self.scanned(scan, level)

    def scanned(self, scan: Scan, level: int) -> None:
        """Turn what word evaluation found into risks, and analyze substitutions."""
        for node in scan.errors:
            self.statement(node, Context(), level + 1)
        for node in scan.unparsed:
            self.unparsed(node)
        for node in scan.arithmetic:
            self.risk(
                RiskKind.ARITHMETIC,
                "arithmetic on a name evaluates the name's value as code, which runs any "
                "command substitution hidden in it (x='a[$(cmd)]'); only literal arithmetic "
                "is inert",
                self.text(node),
            )
        for node, why in scan.evaluating:
            self.risk(
                RiskKind.ARITHMETIC, f"{why}: bash may run code hidden in it", self.text(node)
            )
        for node in scan.hidden:
            self.hidden_code(self.text(node), level)
        for node in scan.substitutions:
            if node.type == "process_substitution":
                kind, what = RiskKind.PROCESS_SUBSTITUTION, "process substitution"
            else:
                kind, what = RiskKind.COMMAND_SUBSTITUTION, "command substitution"
            self.risk(kind, f"{what} runs commands whose output the line uses", self.text(node))
            for child in node.children:
                self.statement(child, Context(), level + 1)

    def hidden_code(self, text: str, level: int) -> None:
        """Text tree-sitter left unparsed that bash expands (`hides_code`): a risk, and
        its substitutions analysed as the words of a command, so a rule still sees
        what they run."""
        self.risk(
            RiskKind.COMMAND_SUBSTITUTION,
            "bash runs the substitutions in this text, which the parser read as plain text",
            text,
        )
        self.out.script(": " + text, Context(), level + 1)

    # Redirected statements

    def redirected(self, node: Node, context: Context, level: int) -> None:
        scan = Scan()
        digest = Redirections()
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
        inner = context.with_redirects(digest.redirects)
        if body is not None and body.type == "command":
            dash = [dash_word()] if self.dropped_dash(node) >= 0 else []
            # A command's gaps, as `statement` checks those of one alone (`ls \ 2>x`:
            # bash passes ` 2`, tree-sitter dropped the backslash: round 23).
            self.check_gaps(body)
            self.command(body, inner, level + 1, digest.arguments, dash)
        else:
            if digest.arguments:
                self.risk(
                    RiskKind.PARSE_ERROR,
                    "words follow a redirection of a compound command",
                    self.text(node),
                )
            if body is not None:
                self.statement(body, inner, level + 1)
        for statement in digest.statements:
            self.statement(statement, context, level + 1)
