"""The values unwrapping passes around: findings, invocations, nested scripts.

Part of the shell analyser (`kfd.policy.shell.unwrap`). A handler of a
wrapper or builtin looks at words starting with its program name and returns
a `Step`: how many words to strip before unwrapping goes on, `STOP` (the
words are the command), `DONE` (a nested script replaced the command), or a
new word list that is the effective command.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kfd.policy.shell.model import RiskKind
from kfd.policy.shell.words import Word

__all__ = [
    "DONE",
    "SAFE_WRITE_TARGETS",
    "STOP",
    "Finding",
    "Invocation",
    "NestedScript",
    "Step",
    "Unwrapped",
    "dynamic_word",
    "unknown_option",
    "writes",
]


@dataclass(slots=True)
class Finding:
    """A risk found while unwrapping, before it becomes a `Risk`."""

    kind: RiskKind
    message: str
    subject: str = ""


@dataclass(slots=True)
class Invocation:
    """One program the words would run, after unwrapping."""

    words: list[Word] = field(default_factory=list)
    wrappers: list[list[str]] = field(default_factory=list)
    assignments: list[tuple[str, Word]] = field(default_factory=list)
    chdir: list[str] = field(default_factory=list)
    git_config: list[str] = field(default_factory=list)
    open_ended: bool = False
    wrapper_words: list[str] = field(default_factory=list)
    """Words of the wrappers' own (option values, a lock file): paths to check."""

    def nested(self, prefix: list[str], *, open_ended: bool = False) -> Invocation:
        """The state of a command this one runs from its own words (``find -exec``)."""
        return Invocation(
            wrappers=[*self.wrappers, prefix],
            assignments=list(self.assignments),
            chdir=list(self.chdir),
            open_ended=self.open_ended or open_ended,
            wrapper_words=list(self.wrapper_words),
        )


@dataclass(slots=True)
class NestedScript:
    """Shell code a command runs (`bash -c`, `eval`, `su -c`, `trap`), to parse in turn."""

    text: str
    wrappers: list[list[str]]
    assignments: list[tuple[str, Word]]
    chdir: list[str]
    open_ended: bool = False
    wrapper_words: list[str] = field(default_factory=list)
    bash: bool = False
    """Run by bash itself (`bash -c`, `eval`, `trap`); else by another shell or one
    not known (`sh -c`, `watch`, `flock -c`, `su -c`), which reads some of bash's
    syntax otherwise (`kfd.policy.shell.simple.SimpleCommandReader.emit`)."""


@dataclass(slots=True)
class Unwrapped:
    """Everything `unwrap` found in one simple command."""

    invocations: list[Invocation] = field(default_factory=list)
    scripts: list[NestedScript] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    pending: list[tuple[list[Word], Invocation]] = field(default_factory=list)
    """Commands a handler found inside its words (``find -exec``), to unwrap in turn."""

    def script(
        self, text: str, prefix: list[str], state: Invocation, *, bash: bool = False
    ) -> None:
        """Record shell code ``prefix`` runs (``bash``: run by bash itself), with the
        wrappers it went through."""
        self.scripts.append(
            NestedScript(
                text,
                [*state.wrappers, prefix],
                list(state.assignments),
                list(state.chdir),
                state.open_ended,
                list(state.wrapper_words),
                bash,
            )
        )

    def finding(self, kind: RiskKind, message: str, subject: str = "") -> None:
        self.findings.append(Finding(kind, message, subject))

    def write(self, target: str, how: str) -> None:
        """An option or operand that writes the file ``target`` (not ``/dev/null``)."""
        if target not in SAFE_WRITE_TARGETS:
            self.findings.append(writes(target, how))


SAFE_WRITE_TARGETS = frozenset(
    {"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/fd/1", "/dev/fd/2", "/dev/tty"}
)
"""Targets a write may name without writing a file."""

STOP = None
DONE = -1
Step = int | list[Word] | None


def dynamic_word(words: list[Word], i: int) -> Finding:
    """A word only known at run time where a wrapper's options or command are."""
    return Finding(
        RiskKind.DYNAMIC_COMMAND,
        f"{words[i].source!r} among the words of {words[0].text!r} is not static "
        f"({words[i].reason}), so the program it runs is unknown",
        words[i].source,
    )


def unknown_option(program: str, option: str) -> Finding:
    """An option of a wrapper kfd does not know: it may take the command as its value."""
    return Finding(
        RiskKind.WRAPPER_OPTION,
        f"{program} option {option!r} is not known to the analyzer, so the command "
        "it runs cannot be found",
        option,
    )


def writes(target: str, how: str) -> Finding:
    """An option that writes the file ``target`` (``find -fprint``, ``git log --output``)."""
    return Finding(RiskKind.REDIRECT_WRITE, f"{how} writes to {target!r}", target)
