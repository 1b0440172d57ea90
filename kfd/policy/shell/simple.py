"""Simple commands: their words, assignments, declarations and tests, unwrapped.

Part of the shell analyser (`kfd.policy.shell`), mixed into its syntax walker
(`kfd.policy.shell.parse`). A simple command's words are evaluated
(`kfd.policy.shell.words`), its prefix assignments checked (a variable that
changes what programs run is a risk), its array subscripts proven literal,
then the words are unwrapped (`kfd.policy.shell.unwrap`) and each program it
runs is recorded as a `SimpleCommand`.
"""

from __future__ import annotations

import abc
import re
from typing import TYPE_CHECKING

import msgspec

from kfd.policy.shell.evaluation import plain_name, sensitive_variable
from kfd.policy.shell.fastpath import portable
from kfd.policy.shell.lookalike import plain_text, suspicious_characters
from kfd.policy.shell.model import Assignment, Redirect, RiskKind, SimpleCommand
from kfd.policy.shell.redirects import Redirections, RedirectReader
from kfd.policy.shell.steps import Invocation
from kfd.policy.shell.unwrap import unwrap
from kfd.policy.shell.words import Scan, Word, decode, evaluate_word, merge_adjacent, scan_node

if TYPE_CHECKING:
    from tree_sitter import Node

__all__ = ["Context", "SimpleCommandReader"]


class Context(msgspec.Struct, frozen=True, cache_hash=True):
    """What enclosing syntax imposes on the commands inside it.

    A key of the walk's memories (`first_walk`), hashed at every statement: a
    struct, made and hashed (once) faster than a dataclass."""

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


_RESERVED_WORDS = frozenset(
    {"{", "}", "!", "if", "then", "elif", "else", "fi", "case", "esac", "for", "select", "while"}
    | {"until", "do", "done", "in", "function"}
)
_TEST_EXPRESSIONS = frozenset(
    {"binary_expression", "unary_expression", "parenthesized_expression", "ternary_expression"}
)
_ARITHMETIC_TEST_OPERATORS = frozenset({"-eq", "-ne", "-lt", "-le", "-gt", "-ge"})
_NAME_TEST_OPERATORS = frozenset({"-v", "-R"})
_REDIRECTION_TOKENS = frozenset({">", "<", ">>", "<<", ">|", "&>", "&>>", ">&", "<&", "<>"})
_ARRAY_ELEMENT_SUBSCRIPT = re.compile(r"\[([^\]]*)\]\+?=")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""A name bash assigns to."""
_ENDS_A_COMMAND = re.compile(r"[|&;()\n]")
"""Characters of a token that end a simple command in bash (round 23)."""


class SimpleCommandReader(RedirectReader):
    """The simple-command half of the syntax walker."""

    @abc.abstractmethod
    def statement(self, node: Node, context: Context, level: int) -> None: ...

    @abc.abstractmethod
    def scanned(self, scan: Scan, level: int) -> None: ...

    @abc.abstractmethod
    def unparsed(self, node: Node) -> None: ...

    @abc.abstractmethod
    def found_command(self, command: SimpleCommand) -> None: ...

    @abc.abstractmethod
    def nested_script(self, text: str, context: Context, level: int) -> None: ...

    @abc.abstractmethod
    def note_expansions(self) -> None:
        """A word outside any command's argv is only known at run time."""

    @abc.abstractmethod
    def seen_characters(self) -> set[str]:
        """The characters of the whole line (already checked for look-alikes)."""

    def plain_values(self, node: Node) -> tuple[int, int] | None:
        """The bytes of ``node``'s words when they are many plain ASCII words, one node
        each (checked at once, not word by word), else None."""
        return None

    def command(
        self,
        node: Node,
        context: Context,
        level: int,
        extra: list[list[Node]],
        dash: list[Word] | None = None,
    ) -> None:
        span = self.plain_values(node) if not extra and dash is None else None
        if span is not None:  # `git add a.py b.py …`: no quotes, expansions or redirections
            text = decode(self.source[span[0] : span[1]])
            plain = text.split()
            self.emit(list(map(Word, plain, plain)), [], context, text, level)
            return
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
        children = node.children
        operator = children[1] if len(children) > 1 else None
        if (
            not _NAME.fullmatch(self.text(base))
            or operator is None
            or operator.type not in ("=", "+=")
            or operator.start_byte != name_node.end_byte
            or (value_node is not None and value_node.start_byte != operator.end_byte)
        ):
            # Not `NAME=` as bash reads an assignment (round 23: `?a=b` is a glob bash
            # runs as a command; `x#;rm -rf src⏎=x` holds a comment, `x=>f` an error):
            # tree-sitter's reading is not bash's.
            scan.unparsed.append(node)
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
            self.note_expansions()
        self.scanned(scan, level)
        self.check_assignments(assignments)

    def check_assignments(self, assignments: list[Assignment], *, exported: bool = False) -> None:
        """A risk for each assignment that may change what runs (`sensitive_variable`);
        ``exported``: the values reach a program's environment."""
        for assignment in assignments:
            if sensitive_variable(assignment.name, exported=exported):
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
        if len(children) > 1 and children[1].start_byte == children[0].end_byte:
            # `declare"x"` is one word to bash (a program named `declarex`), a
            # declaration of x to tree-sitter.
            self.unparsed(node)
            return
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
        end = -1
        while stack:
            child = stack.pop()
            if not double and child.start_byte == end and child.type not in _TEST_EXPRESSIONS:
                # Two of the test's words with nothing between them are one word to
                # bash (`[]` runs a program of that name; round 23).
                self.risk(
                    RiskKind.UNPARSED,
                    f"in [ … ], {self.text(child)!r} is glued to what comes before it: "
                    "bash reads one word there",
                    self.text(node),
                )
            if child.type not in _TEST_EXPRESSIONS:
                end = child.end_byte
            if not double and child.type in _REDIRECTION_TOKENS:
                # tree-sitter reads `[ a > b ]` as a comparison; bash, as `[ a ]` with
                # its output written to b.
                self.risk(
                    RiskKind.UNPARSED,
                    f"in [ … ], {child.type} is a redirection (it writes or reads a file), "
                    "not a comparison",
                    self.text(node),
                )
            elif not double and not child.is_named and _ENDS_A_COMMAND.search(child.type):
                # `[` is a command to bash: `|`, `&&`, `;`… end it and run what follows
                # (`[ x | sh -c '…' ]`), where tree-sitter reads a test expression.
                self.risk(
                    RiskKind.UNPARSED,
                    f"in [ … ], {child.type!r} ends the `[` command and runs what follows",
                    self.text(node),
                )
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
    ) -> list[SimpleCommand] | None:
        """Unwrap one simple command's words and record what it runs: the commands
        recorded, or None when it also handed scripts on to be walked (``bash -c``:
        what those find depends on the whole context)."""
        self.check_assignments(prefix, exported=True)
        # Characters already in the line were reported; decoding ($'\u…') can add more.
        # Plain words have none to report: the line's are gathered (4 KB of them at
        # times) only for words that are not.
        values = "".join([w.value for w in words if w.value is not None])
        if not plain_text(values):
            seen = self.seen_characters()
            for word in words if not seen.issuperset(values) else ():
                value = word.value
                if value is not None and not set(value) <= seen:
                    for description in suspicious_characters(value):
                        self.risk(RiskKind.LOOKALIKE, f"a word contains {description}", word.source)
        if not words:
            return []
        unwrapped = unwrap(words)
        for finding in unwrapped.findings:
            self.risk(finding.kind, finding.message, finding.subject)
        inherited = [*context.assignments, *prefix]
        found = [
            self.invocation(invocation, inherited, context, source)
            for invocation in unwrapped.invocations
        ]
        for script in unwrapped.scripts:
            if not script.bash and not portable(script.text):
                self.risk(
                    RiskKind.UNPARSED,
                    f"`{source}` runs its script with sh or another shell, which reads "
                    "bash's own syntax otherwise (`&>`, `((`, `$'…'`, braces…): kfd reads "
                    "such a script only when it is plain commands, quotes, `$(…)`, "
                    "redirections and `; && || |`",
                    script.text,
                )
            assignments = [*inherited, *self.wrapped_assignments(script.assignments)]
            nested = Context(
                (*context.wrappers, *(tuple(w) for w in script.wrappers)),
                tuple(assignments),
                context.redirects,
                (*context.chdir, *script.chdir),
                context.open_ended or script.open_ended,
                (*context.wrapper_words, *script.wrapper_words),
            )
            self.nested_script(script.text, nested, level + 1)
        return None if unwrapped.scripts else found

    def wrapped_assignments(self, pairs: list[tuple[str, Word]]) -> list[Assignment]:
        assignments = [Assignment(name, value.text, value.static) for name, value in pairs]
        self.check_assignments(assignments, exported=True)
        return assignments

    def invocation(
        self,
        invocation: Invocation,
        inherited: list[Assignment],
        context: Context,
        source: str,
    ) -> SimpleCommand:
        """Record the command ``invocation`` runs (and its risks), and give it back."""
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
        # Words by the thousand (`git add …`): each pass over them counts.
        dynamic = {i: w.reason for i, w in enumerate(invocation.words) if w.value is None}
        for word in arguments if dynamic else ():
            if not word.static:
                self.risk(
                    RiskKind.DYNAMIC_ARGUMENT,
                    f"argument {word.source!r} of {head.text!r} is not static ({word.reason})",
                    word.source,
                )
        assignments = [*inherited, *self.wrapped_assignments(invocation.assignments)]
        open_ended = invocation.open_ended or context.open_ended
        words = invocation.words
        command = SimpleCommand(
            argv=[w.source if w.value is None else w.value for w in words],
            static=not dynamic and not open_ended,
            source=source,
            wrappers=[*(list(w) for w in context.wrappers), *invocation.wrappers],
            assignments=assignments,
            redirects=list(context.redirects),
            chdir=[*context.chdir, *invocation.chdir],
            git_config=list(invocation.git_config),
            open_ended=open_ended,
            dynamic=dynamic,
            patterns={i: w.pattern for i, w in enumerate(words) if w.pattern is not None}
            if dynamic
            else {},
            wrapper_words=[*context.wrapper_words, *invocation.wrapper_words],
        )
        self.found_command(command)
        return command
