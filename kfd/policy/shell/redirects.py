"""Redirections: which files a line reads and writes, and the words they hide.

Part of the shell analyser (`kfd.policy.shell`), mixed into its syntax walker.
Every ``<``, ``>``, ``>>``, ``&>``, here-document and here-string is read
here; a redirection to a file is a `Redirect` (a write is a risk the engine
weighs like any write), one to a descriptor (``2>&1``) or a closed one is
nothing, and words tree-sitter attaches to a redirection (``git status >
/dev/null --short``) go back to the command they belong to.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from kfd.policy.shell.model import Redirect, Risk, RiskKind
from kfd.policy.shell.steps import SAFE_WRITE_TARGETS
from kfd.policy.shell.words import (
    Scan,
    Word,
    decode,
    evaluate_word,
    hides_code,
    merge_adjacent,
    scan_node,
)

if TYPE_CHECKING:
    from tree_sitter import Node

__all__ = ["SAFE_WRITE_TARGETS", "RedirectReader", "Redirections"]

_REDIRECT_WRITE = RiskKind.REDIRECT_WRITE
"""Read once: an enum member looked up on its class costs 70 ns, for each of a long
line's hundreds of redirections."""
_SOCKETS = ("/dev/tcp/", "/dev/udp/")


@dataclass(slots=True)
class Redirections:
    """Redirect nodes, digested."""

    redirects: list[Redirect] = field(default_factory=list)
    arguments: list[list[Node]] = field(default_factory=list)
    """Words after a redirection target: bash passes them to the command."""
    statements: list[Node] = field(default_factory=list)
    """Statements tree-sitter nests in a here-document redirect (`cat <<EOF | sh`)."""


class RedirectReader(abc.ABC):
    """The redirection half of the syntax walker (`kfd.policy.shell.parse`)."""

    source: bytes

    @abc.abstractmethod
    def text(self, node: Node) -> str: ...

    @abc.abstractmethod
    def check_gaps(self, node: Node) -> None: ...

    @abc.abstractmethod
    def risk(self, kind: RiskKind, message: str, subject: str = "") -> None: ...

    @abc.abstractmethod
    def found_redirects(self, redirects: list[Redirect]) -> None: ...

    @abc.abstractmethod
    def found_risks(self, risks: list[Risk]) -> None: ...

    @abc.abstractmethod
    def found_input(self, text: str) -> None: ...

    def redirect(self, node: Node, scan: Scan, digest: Redirections) -> None:
        """Digest one redirect node of a command or a compound statement."""
        self.check_gaps(node)
        named = self.named_descriptor(node)
        if named is not None:
            # `{fd}>x`: bash opens a descriptor and assigns its number to the name, a
            # subscript evaluated (`{a[$(cmd)]}>/dev/null`), PATH and the like changed.
            self.risk(
                RiskKind.ENV_ASSIGNMENT,
                f"{named} before a redirection assigns a descriptor's number to a variable "
                "the line names",
                named,
            )
        kind = node.type
        if kind == "file_redirect":
            self.file_redirect(node, scan, digest)
        elif kind == "herestring_redirect":
            groups = merge_adjacent(node.children[1:], self.source)
            for group in groups[:1]:
                self.found_input(evaluate_word(group, self.source, scan).text)
            digest.arguments.extend(groups[1:])
        elif kind == "heredoc_redirect":
            self.heredoc(node, scan, digest)
        elif node.is_error or node.is_missing:
            scan.errors.append(node)
        else:
            scan.unparsed.append(node)

    def named_descriptor(self, node: Node) -> str | None:
        """The word glued before a redirection when it is ``{…}`` (bash's named
        descriptor: ``{fd}>x``, ``{a[i]}<y``), else None. A group's closing brace
        (``{ ls; }>x``) is not one: its ``{`` is followed by a blank."""
        before = node.prev_sibling
        end = node.start_byte
        if before is None or before.end_byte != end or self.source[end - 1 : end] != b"}":
            return None
        word = before.descendant_for_byte_range(end - 1, end)
        while (
            word is not None
            and word.parent is not None
            and word.parent != before
            and word.parent.end_byte == end
        ):
            word = word.parent
        if word is None:
            return None
        text = self.source[word.start_byte : end]
        if len(text) < 3 or text[:1] != b"{" or text[1:2].isspace():
            return None
        return text.decode(errors="replace")

    def heredoc(self, node: Node, scan: Scan, digest: Redirections) -> None:
        start = next((c for c in node.children if c.type == "heredoc_start"), None)
        end = next((c for c in node.children if c.type == "heredoc_end"), None)
        # A quoted delimiter (<<'EOF', <<"EOF", <<\EOF) keeps the body literal.
        expanded = start is None or not any(q in self.text(start) for q in "'\"\\")
        delimiter = _unquoted(self.text(start)) if start is not None else None
        tabs = any(c.type == "<<-" for c in node.children)
        body = next((c for c in node.children if c.type == "heredoc_body"), None)
        lines = self.text(body).split("\n") if body is not None else []
        if (
            end is None
            or self.text(end) != delimiter
            or any((line.lstrip("\t") if tabs else line) == delimiter for line in lines)
        ):
            # Where the body ends is not where bash ends it: at the first line that is
            # the delimiter (round 25: tree-sitter read a `${` across it, and the lines
            # after it as body; bash ran them), or at the end when none is (round 24:
            # tree-sitter called the rest of the body, backquotes and all, its end).
            scan.unparsed.append(node)
        for index, child in enumerate(node.children):
            role = node.field_name_for_child(index)
            kind = child.type
            if kind == "heredoc_body":
                scan_node(child, scan)
                if expanded and hides_code(self.plain_part(child)):
                    # tree-sitter leaves backquotes (and more) in a body as plain text,
                    # between its expansions too (round 24).
                    scan.hidden.append(child)
                self.found_input(self.text(child))
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

    def plain_part(self, body: Node) -> str:
        """A here-document body's text with its expansions and substitutions blanked
        (each is scanned as a node); what is left, tree-sitter took as text."""
        start = body.start_byte
        text = bytearray(self.source[start : body.end_byte])
        for child in body.named_children:
            if child.type != "heredoc_content":
                text[child.start_byte - start : child.end_byte - start] = b" " * (
                    child.end_byte - child.start_byte
                )
        return decode(bytes(text))

    def file_redirect(self, node: Node, scan: Scan, digest: Redirections) -> None:
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
        """Record a command's redirections, and the risks of those that need a look."""
        # All at once, the redirections and then the risks (other lists: the same
        # lists), for the hundreds of a long line (`PlainWalk.plain`).
        self.found_redirects(redirects)
        risks: list[Risk] = []
        for redirect in redirects:
            target = redirect.target
            if not redirect.static:
                risks.append(
                    Risk(
                        RiskKind.DYNAMIC_REDIRECT,
                        f"redirection target {target!r} is not static",
                        target,
                    )
                )
            elif target.startswith(_SOCKETS):
                risks.append(
                    Risk(
                        _REDIRECT_WRITE,
                        f"redirection to {target!r} opens a network connection",
                        target,
                    )
                )
            elif redirect.direction != "read" and target not in SAFE_WRITE_TARGETS:
                risks.append(Risk(_REDIRECT_WRITE, f"output is written to {target!r}", target))
        self.found_risks(risks)


def _unquoted(delimiter: str) -> str:
    """A here-document's delimiter after quote removal (`cat <<'E F'` ends at `E F`)."""
    return _DELIMITER_QUOTES.sub(lambda m: next(g for g in m.groups() if g is not None), delimiter)


_DELIMITER_QUOTES = re.compile(r"\\(.)|'([^']*)'|\"([^\"]*)\"", re.DOTALL)


def dash_word() -> Word:
    """The `-` tree-sitter drops before a here-document (`python3 - <<EOF`)."""
    return Word("-", "-")


def _descriptor(target: str) -> bool:
    """Whether a `>&`/`<&` target duplicates or closes a descriptor rather than naming a file."""
    return target.isdigit() or target == "-"
