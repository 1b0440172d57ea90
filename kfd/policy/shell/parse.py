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
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kfd.policy.shell.evaluation import literal_arithmetic_node, plain_name, sensitive_variable
from kfd.policy.shell.lookalike import suspicious_characters
from kfd.policy.shell.model import Assignment, Redirect, Risk, RiskKind, SimpleCommand
from kfd.policy.shell.redirects import Redirections, RedirectReader, dash_word
from kfd.policy.shell.repair import flatten_list, parse_script
from kfd.policy.shell.steps import Invocation
from kfd.policy.shell.unwrap import unwrap
from kfd.policy.shell.words import (
    Scan,
    Word,
    WordContext,
    decode,
    evaluate_word,
    merge_adjacent,
    scan_node,
)

if TYPE_CHECKING:
    from tree_sitter import Node

__all__ = ["MAX_DEPTH", "Collector", "Context"]

MAX_DEPTH = 96
"""How deep the analyzer follows nesting (syntax tree levels plus nested scripts)."""


@dataclass(frozen=True, slots=True)
class Context:
    """What enclosing syntax imposes on the commands inside it."""

    wrappers: tuple[tuple[str, ...], ...] = ()
    assignments: tuple[Assignment, ...] = ()
    redirects: tuple[Redirect, ...] = ()
    chdir: tuple[str, ...] = ()
    open_ended: bool = False
    wrapper_words: tuple[str, ...] = ()

    def with_redirects(self, redirects: list[Redirect]) -> Context:
        if not redirects:
            return self
        return Context(
            self.wrappers,
            self.assignments,
            (*self.redirects, *redirects),
            self.chdir,
            self.open_ended,
            self.wrapper_words,
        )


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
_NAME_TEST_OPERATORS = frozenset({"-v", "-R"})
_ARRAY_ELEMENT_SUBSCRIPT = re.compile(r"\[([^\]]*)\]\+?=")


class Collector:
    """Accumulates commands, risks and redirections across nested scripts."""

    def __init__(self, line: str) -> None:
        self.seen = set(line)
        self.commands: list[SimpleCommand] = []
        self.risks: list[Risk] = []
        self.redirects: list[Redirect] = []
        self.expansions = False
        """A word outside any command's argv is only known at run time."""
        self.inputs: list[str] = []
        """Here-documents and here-strings, as written."""

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
        source = text.encode("utf-8", "surrogatepass")
        tree, stand_in = parse_script(source)
        _Walker(self, source, stand_in).statement(tree.root_node, context, level + 1)


class _Walker(RedirectReader):
    """Walks one parsed script, feeding a `Collector`."""

    def __init__(self, collector: Collector, source: bytes, parsed: bytes) -> None:
        self.out = collector
        self.source = source
        # What tree-sitter parsed: `source` with a few bytes blanked (`parse_script`).
        self.parsed = parsed

    def text(self, node: Node) -> str:
        return decode(self.source[node.start_byte : node.end_byte])

    def risk(self, kind: RiskKind, message: str, subject: str = "") -> None:
        self.out.risk(kind, message, subject)

    def found_redirect(self, redirect: Redirect) -> None:
        self.out.redirects.append(redirect)

    def found_input(self, text: str) -> None:
        self.out.inputs.append(text)

    # Statements

    def statement(self, node: Node, context: Context, level: int) -> None:
        if level > MAX_DEPTH:
            self.out.too_deep()
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
            for operand in flatten_list(node):
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
                self.risk(
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
                self.risk(
                    RiskKind.PARSE_ERROR, f"{child.type!r} outside a case item", self.text(node)
                )
            elif child.type == "!" and index + 1 < len(children):
                following = children[index + 1]
                glued = following.start_byte == child.end_byte
                if glued and self.source[following.start_byte : following.start_byte + 1] != b"(":
                    # Bash reads `!word` as one word, not as negation of `word`.
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
        for index, child in enumerate(node.children):
            role = node.field_name_for_child(index)
            if role == "value":
                self.loose_word(child, level, "argument")
            elif role == "body" or (child.is_named and role != "variable"):
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
        for node in scan.substitutions:
            if node.type == "process_substitution":
                kind, what = RiskKind.PROCESS_SUBSTITUTION, "process substitution"
            else:
                kind, what = RiskKind.COMMAND_SUBSTITUTION, "command substitution"
            self.risk(kind, f"{what} runs commands whose output the line uses", self.text(node))
            for child in node.children:
                self.statement(child, Context(), level + 1)

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

    # Simple commands

    def command(
        self,
        node: Node,
        context: Context,
        level: int,
        extra: list[list[Node]],
        dash: list[Word] | None = None,
    ) -> None:
        scan = Scan()
        prefix: list[Assignment] = []
        word_nodes: list[Node] = []
        digest = Redirections()
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
        context = context.with_redirects(digest.redirects)
        self.emit(words, prefix, context, self.text(node), level)
        for statement in digest.statements:
            self.statement(statement, context, level + 1)

    def assignment(self, node: Node, scan: Scan) -> Assignment:
        """``NAME=value``, ``NAME+=value``, ``a[i]=value``, ``a=(…)``: a subscript must be
        a literal number (bash evaluates it as arithmetic)."""
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
            if index is None or not self.text(index).isdigit():
                scan.arithmetic.append(index if index is not None else name_node)
        if value_node is None:
            return Assignment(self.text(base), "", True)
        if value_node.type == "array":
            elements = merge_adjacent(value_node.named_children, self.source)
            values = [evaluate_word(group, self.source, scan) for group in elements]
            for group, value in zip(elements, values, strict=True):
                self.array_element(group, value, scan)
            static = all(v.static for v in values)
            return Assignment(self.text(base), self.text(value_node), static)
        after = [c for c in node.children if c.start_byte >= value_node.start_byte]
        value = evaluate_word(after, self.source, scan, "assignment")
        return Assignment(self.text(base), value.text, value.static)

    def array_element(self, group: list[Node], value: Word, scan: Scan) -> None:
        """``a=([i]=x)``: the subscript of an element is arithmetic, like ``a[i]=x``."""
        text = decode(self.source[group[0].start_byte : group[-1].end_byte])
        if not text.startswith("["):
            return
        match = _ARRAY_ELEMENT_SUBSCRIPT.match(value.text)
        if value.value is None or match is None or not match.group(1).isdigit():
            scan.arithmetic.append(group[0])

    def standalone_assignments(self, node: Node, level: int) -> None:
        scan = Scan()
        nodes = node.named_children if node.type == "variable_assignments" else [node]
        assignments = [self.assignment(child, scan) for child in nodes]
        if any(not a.static for a in assignments):
            self.out.expansions = True
        self.scanned(scan, level)
        self.check_assignments(assignments)

    def check_assignments(self, assignments: list[Assignment]) -> None:
        for assignment in assignments:
            if sensitive_variable(assignment.name):
                self.risk(
                    RiskKind.ENV_ASSIGNMENT,
                    f"sets {assignment.name}, which programs may read to decide what to run or "
                    "load (PATH, LD_PRELOAD, GIT_*, PAGER, ... are common bypasses)",
                    assignment.name,
                )

    def declaration(self, node: Node, context: Context, level: int) -> None:
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

    def test(self, node: Node, context: Context, level: int) -> None:
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
                if double and child.type == "unary_expression":
                    self.name_test(child, scan)
                stack.extend(reversed(child.children))
            else:
                words.append(
                    evaluate_word([child], self.source, scan, "test" if double else "argument")
                )
        self.scanned(scan, level)
        self.emit(words, [], context, self.text(node), level)

    def arithmetic_test(self, node: Node, scan: Scan) -> None:
        """`[[ a -eq b ]]` evaluates both sides as arithmetic: they must be literal numbers."""
        operator = node.child_by_field_name("operator")
        if operator is None or self.text(operator) not in _ARITHMETIC_TEST_OPERATORS:
            return
        for side in ("left", "right"):
            operand = node.child_by_field_name(side)
            if operand is not None and not self.text(operand).lstrip("-").isdigit():
                scan.arithmetic.append(node)
                return

    def name_test(self, node: Node, scan: Scan) -> None:
        """`[[ -v name ]]` evaluates the subscript of ``name``: it must be plain."""
        operator, *rest = node.children
        if self.text(operator) not in _NAME_TEST_OPERATORS or not rest:
            return
        operand = evaluate_word(rest, self.source, Scan(), "test")
        if operand.value is None or not plain_name(operand.value):
            scan.arithmetic.append(node)

    def emit(
        self,
        words: list[Word],
        prefix: list[Assignment],
        context: Context,
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
                    self.risk(RiskKind.LOOKALIKE, f"a word contains {description}", word.source)
        if not words:
            return
        unwrapped = unwrap(words)
        for finding in unwrapped.findings:
            self.risk(finding.kind, finding.message, finding.subject)
        inherited = [*context.assignments, *prefix]
        for invocation in unwrapped.invocations:
            self.invocation(invocation, inherited, context, source)
        for script in unwrapped.scripts:
            assignments = [*inherited, *self.wrapped_assignments(script.assignments)]
            nested = Context(
                (*context.wrappers, *(tuple(w) for w in script.wrappers)),
                tuple(assignments),
                context.redirects,
                (*context.chdir, *script.chdir),
                context.open_ended or script.open_ended,
                (*context.wrapper_words, *script.wrapper_words),
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
        context: Context,
        source: str,
    ) -> None:
        head, *arguments = invocation.words
        if head.source in _RESERVED_WORDS:
            # tree-sitter took a keyword for a command name (`time { …; }`, a stray `}`).
            self.risk(
                RiskKind.PARSE_ERROR,
                f"reserved word {head.source!r} where a command should be",
                source,
            )
        if not head.static:
            self.risk(
                RiskKind.DYNAMIC_COMMAND,
                f"the command name {head.source!r} is not static ({head.reason})",
                head.source,
            )
        for word in arguments:
            if not word.static:
                self.risk(
                    RiskKind.DYNAMIC_ARGUMENT,
                    f"argument {word.source!r} of {head.text!r} is not static ({word.reason})",
                    word.source,
                )
        assignments = [*inherited, *self.wrapped_assignments(invocation.assignments)]
        open_ended = invocation.open_ended or context.open_ended
        words = invocation.words
        self.out.commands.append(
            SimpleCommand(
                argv=[word.text for word in words],
                static=all(w.static for w in words) and not open_ended,
                source=source,
                wrappers=[*(list(w) for w in context.wrappers), *invocation.wrappers],
                assignments=assignments,
                redirects=list(context.redirects),
                chdir=[*context.chdir, *invocation.chdir],
                git_config=list(invocation.git_config),
                open_ended=open_ended,
                dynamic={i: w.reason for i, w in enumerate(words) if not w.static},
                patterns={i: w.pattern for i, w in enumerate(words) if w.pattern is not None},
                wrapper_words=[*context.wrapper_words, *invocation.wrapper_words],
            )
        )
