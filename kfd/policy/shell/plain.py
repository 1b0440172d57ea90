"""Walking what needs no tree: the fast path's statements, and words read at once.

Part of the shell analyser's syntax walker (`kfd.policy.shell.parse`), mixed
into it. `PlainWalk.plain` walks the statements `kfd.policy.shell.fastpath`
read as `statement` walks tree-sitter's tree for them: the same commands,
risks and redirections, in the same order, each statement seen once per
context and level (the words of a command are emitted once a line, whatever
its redirections: `PlainMemo`). `plain_values` finds the commands and loops
of many plain words (``git add a b c …``, ``for x in …``) whose words are
read from the source at once, which is also how a run tree-sitter read as
one word (`kfd.policy.shell.runs`) is read back; `runs_hold` says whether
every such run landed where that reading holds.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec

from kfd.policy.shell.fastpath import Plain, PlainCommand, PlainRun, PlainStatement
from kfd.policy.shell.model import Redirect, RiskKind, SimpleCommand
from kfd.policy.shell.simple import Context, SimpleCommandReader
from kfd.policy.shell.words import Word, plain_run

if TYPE_CHECKING:
    from tree_sitter import Node

__all__ = ["CONTAINERS", "PlainMemo", "PlainWalk"]

CONTAINERS = frozenset(
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
"""Statements whose children are statements (`_Walker.statement` walks them all)."""
_MANY_VALUES = 16
"""From how many plain words a command's or a loop's are read at once."""
_RUN_ANCESTORS = CONTAINERS | {
    "list",
    "redirected_statement",
    "function_definition",
    "for_statement",
    "case_item",
    "case_statement",
    "command_substitution",
    "process_substitution",
    "string",
    "concatenation",
    "command",
}
"""What a command holding a merged run may be inside (`PlainWalk.runs_hold`)."""


@dataclass(slots=True)
class PlainMemo:
    """What walking one line's plain statements learnt, for the rest of the line (a
    line of a hundred ``echo $(date) > outN.txt`` reads ``echo $(date)`` once)."""

    commands: dict[tuple[str, Context, int], tuple[list[SimpleCommand], bool] | None] = field(
        default_factory=dict
    )
    """The commands the words of a command (as written, without its redirections)
    gave, by the context around the command and the level they were emitted at, and
    whether a redirection of theirs reads; None when they also gave scripts to walk
    (`PlainWalk.plain_command_words`)."""
    substituted: set[tuple[str, int]] = field(default_factory=set)
    """The command substitutions (as written) walked, by level."""


class PlainWalk(SimpleCommandReader):
    """The fast path's statements and the words read at once, for the syntax walker."""

    memo: PlainMemo
    walked: set[tuple[object, ...]]
    """The statements walked, with their context and level (`first_walk`'s)."""
    parsed: bytes
    merged: dict[tuple[int, int], int]
    plain_spans: dict[tuple[int, int], tuple[int, int] | None]

    @abc.abstractmethod
    def first_walk(
        self, kind: str, text: bytes, context: Context, level: int, parsed: bytes | None = None
    ) -> bool:
        """Whether a statement is walked for the first time in this context and level."""

    def plain(self, statements: Sequence[Plain], context: Context, level: int) -> None:
        """The statements of a provably simple script (`simple_line`), walked as
        `statement` walks the tree tree-sitter gives for it: the same commands, in
        the same order, each statement seen once per context and level (those of a
        run each as one statement: `plain_shape_run`)."""
        walked: set[str] = set()
        known = self.memo.commands
        # The redirections of statements that add nothing else (`plain_again` of a
        # command met before, reading nothing), registered at once before anything
        # else is added: the same redirections and risks in the same order, without
        # four calls for each of a long line's hundreds of statements.
        pending: list[Redirect] = []
        first_walk, inner = self.first_walk, level + 1  # (for each of hundreds)
        for statement in statements:
            # The same text is the same statement, which `first_walk` refuses in the
            # same context and level: not walked again in vain.
            text = statement.text
            if text in walked:
                continue
            if isinstance(statement, PlainRun):
                self.plain_shape_run(statement, context, level, pending)
                continue
            walked.add(text)
            command = statement.commands[0]
            # Most of a long line's commands are one met before with other redirection
            # targets (`… > out1.txt; … > out2.txt`): what `plain_simple` would do,
            # without its calls (`plain_command_words` has the same key).
            found = (
                known.get((command.body, context, inner))
                if command.body and statement.kind == "command"
                else None
            )
            if found is not None:
                if not first_walk("redirected_statement", text.encode(), context, level):
                    continue
                redirects = command.redirects
                if not found[1] and not _reading(redirects):
                    pending += redirects
                    continue
            if pending:
                self.register(pending)
                pending.clear()
            if found is not None:
                self.plain_again(found, list(command.redirects), context)
            elif statement.kind != "command":
                self.plain_statement(statement, context, level)
            else:
                self.plain_simple(command, context, level)
        if pending:
            self.register(pending)

    def plain_shape_run(
        self, run: PlainRun, context: Context, level: int, pending: list[Redirect]
    ) -> None:
        """The statements of ``run``, as `plain` walks each (with its ``pending``): the
        words of all are the template's, found once walked; its redirection reads for
        all or for none. A text met again is refused by `first_walk` alone (`plain`'s
        set of texts only spares it)."""
        template = run.template
        redirect = template.redirects[0]
        reads = redirect.direction == "read"
        key = (template.body, context, level + 1)
        known, walked = self.memo.commands, self.walked
        found = known.get(key)  # once found, kept (`plain_command_words` sets it once)
        for index, text in enumerate(run.texts):
            if found is None:
                found = known.get(key)
            if found is not None:
                # `first_walk` of the statement, without a call for each of hundreds
                count = len(walked)
                walked.add(("redirected_statement", text.encode(), context, level))
                if len(walked) == count:
                    continue
                if not found[1] and not reads:
                    target = run.targets[index]
                    pending.append(Redirect(redirect.direction, target, True, redirect.fd))
                    continue
            if pending:
                self.register(pending)
                pending.clear()
            command = run.command(index)
            if found is not None:
                self.plain_again(found, list(command.redirects), context)
            else:
                self.plain_simple(command, context, level)

    def plain_statement(self, statement: PlainStatement, context: Context, level: int) -> None:
        if statement.kind == "command":
            self.plain_simple(statement.commands[0], context, level)
        elif not self.first_walk(statement.kind, statement.text.encode(), context, level):
            return
        elif statement.kind == "pipeline":
            for command in statement.commands:
                self.plain_simple(command, context, level + 1)
        else:  # a list: its operands one level down, as `flatten_list` gives them
            self.plain(list(statement.operands), context, level + 1)

    def plain_simple(self, command: PlainCommand, context: Context, level: int) -> None:
        """One command, as `statement` walks a command node or (with redirections) a
        redirected statement: its redirections recorded first, the command a level down."""
        if not command.body:
            if self.first_walk("command", command.text.encode(), context, level):
                self.plain_command_words(command, context, [], level)
            return
        if not self.first_walk("redirected_statement", command.text.encode(), context, level):
            return
        redirects = list(command.redirects)
        self.register(redirects)
        self.plain_command_words(command, context, redirects, level + 1)

    def plain_again(
        self, found: tuple[list[SimpleCommand], bool], redirects: list[Redirect], context: Context
    ) -> None:
        """A command with redirections whose words gave ``found`` before, in ``context``
        (`plain_command_words`): its redirections recorded, then its commands."""
        self.register(redirects)
        self.emit_again(found, context, redirects)

    def emit_again(
        self,
        found: tuple[list[SimpleCommand], bool],
        around: Context,
        redirects: list[Redirect],
    ) -> None:
        """The commands ``found`` again, with ``redirects`` inside ``around``'s; none
        when no redirection of theirs reads, either time (a command that differs from
        one listed only by the files it writes is not listed again:
        `ShellAnalysis.commands`)."""
        commands, reads = found
        if not reads and not _reading(redirects):
            return
        replace = msgspec.structs.replace
        for command_found in commands:
            every = [*around.redirects, *redirects]  # as `Context.with_redirects`
            self.found_command(replace(command_found, redirects=every))

    def plain_command_words(
        self, command: PlainCommand, around: Context, redirects: list[Redirect], level: int
    ) -> None:
        """The words of ``command``, in ``around`` with its own ``redirects``."""
        memo = self.memo
        text = command.body or command.text
        key = (text, around, level)
        found = memo.commands.get(key)
        if found is not None:
            # The words of `text` (which they are a function of) were emitted in the
            # same context but for its redirections: the same risks (already in the
            # line: `analyze` keeps the first of equal ones), and the same commands
            # but for their redirections, which `emit` takes from the context alone.
            # Not when the words gave scripts to walk (None): their commands depend on
            # the whole context, and they may be walked again (`first_walk`). Its
            # substitutions were walked at this level then: nothing to do for them.
            self.emit_again(found, around, redirects)
            return
        for source, statements in command.substitutions.items():
            # As `scanned` does: each substitution a risk, its commands walked first.
            # One walked before at this level adds nothing again: each of its
            # statements is refused by `first_walk`, and `analyze` keeps the first
            # of equal risks. (In the order of their first words: the same effects.)
            if (source, level) in memo.substituted:
                continue
            memo.substituted.add((source, level))
            self.risk(
                RiskKind.COMMAND_SUBSTITUTION,
                "command substitution runs commands whose output the line uses",
                source,
            )
            self.plain(statements, Context(), level + 1)
        plain = command.plain_words
        if plain is not None:
            words = list(map(Word, plain, plain))  # (hundreds at times: `map` is quicker)
        else:
            words = [
                Word(source, None, "command substitution")
                if source in command.substitutions
                else Word(source, value)
                for source, value in command.words
            ]
        context = around.with_redirects(redirects)
        emitted = self.emit(words, [], context, text, level)
        memo.commands[key] = None if emitted is None else (emitted, _reading(context.redirects))

    def plain_values(self, node: Node) -> tuple[int, int] | None:
        """The bytes of a ``for`` loop's values when they are many plain words, one
        node each (a loop over a thousand names is checked at once), else None."""
        if node.type == "command":
            return self.plain_command(node)
        if node.type != "for_statement":
            return None
        key = (node.start_byte, node.end_byte)
        if key not in self.plain_spans:
            self.plain_spans[key] = None
            values = node.children_by_field_name("value")
            if values:
                start, end = values[0].start_byte, values[-1].end_byte
                if self.plain_words(start, end, len(values)):
                    self.plain_spans[key] = (start, end)
        return self.plain_spans[key]

    def plain_command(self, node: Node) -> tuple[int, int] | None:
        """A command of many plain words: its name and arguments, one node each."""
        key = (node.start_byte, node.end_byte)
        if key not in self.plain_spans:
            plain = self.plain_words(key[0], key[1], node.child_count)
            self.plain_spans[key] = key if plain else None
        return self.plain_spans[key]

    def plain_words(self, start: int, end: int, nodes: int) -> bool:
        """Whether ``nodes`` nodes from ``start`` to ``end`` are many plain words, one
        node each, or a run of them tree-sitter read as one (`kfd.policy.shell.runs`)."""
        if nodes < _MANY_VALUES and not self.merged:
            return False
        merged = sum(
            count - 1 for (first, last), count in self.merged.items() if start <= first < end
        )
        return (
            nodes + merged >= _MANY_VALUES
            and plain_run(self.source, start, end)
            and plain_run(self.parsed, start, end)
            and len(self.source[start:end].split()) == nodes + merged
        )

    def runs_hold(self, root: Node) -> bool:
        """Whether each merged run is one argument of a command of plain words or one
        value of a loop over plain words: what the walker reads as words from the
        source (`plain_values`). A command taking words after a redirection (which
        `command` reads one by one) does not count, nor does a run inside anything
        whose text is judged as text (a `${…}` expansion: `kfd.policy.shell.words.scan_node`
        reads the parsed text), nor a script with a syntax error (tree-sitter's
        recovery may differ)."""
        if root.has_error:
            return False
        for start, end in self.merged:
            node = root.descendant_for_byte_range(start, end)
            parent = node.parent if node is not None else None
            if (
                node is None
                or parent is None
                or (node.start_byte, node.end_byte) != (start, end)
                or node.type != "word"
                or node.child_count
            ):
                return False
            if parent.type == "command":
                outer = parent.parent
                if outer is not None and outer.type == "redirected_statement":
                    return False
            elif parent.type != "for_statement":
                return False
            if self.plain_values(parent) is None:
                return False
            outer = parent.parent
            while outer is not None:
                if outer.type not in _RUN_ANCESTORS:
                    return False
                outer = outer.parent
        return True


def _reading(redirects: tuple[Redirect, ...] | list[Redirect]) -> bool:
    for redirect in redirects:  # noqa: SIM110 (once per statement: no generator, 0.2 us)
        if redirect.direction == "read":
            return True
    return False
