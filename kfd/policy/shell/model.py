"""What the shell analyser finds in a command line, as values.

`ShellAnalysis` is the parse step's answer: every simple command the line can
run (`SimpleCommand`), the file redirections, and every `Risk` (a reason a
human must look). The decision never sees tree-sitter: it reads these.
"""

from __future__ import annotations

import enum
import operator
from typing import Literal

import msgspec

__all__ = [
    "Assignment",
    "Redirect",
    "Risk",
    "RiskKind",
    "ShellAnalysis",
    "SimpleCommand",
    "command_key",
]


class RiskKind(enum.StrEnum):
    """Why a command line needs a human to look at it."""

    TOO_LONG = "too_long"
    """The line is longer than the analyzer accepts."""
    TOO_DEEP = "too_deep"
    """Nesting (subshells, `bash -c` inside `bash -c`, ...) is deeper than the analyzer follows."""
    PARSE_ERROR = "parse_error"
    """The line does not parse as bash (tree-sitter ERROR or MISSING nodes)."""
    UNPARSED = "unparsed"
    """Syntax the analyzer does not explicitly understand."""
    LOOKALIKE = "lookalike"
    """Invisible, control, bidirectional or look-alike characters."""
    COMMAND_SUBSTITUTION = "command_substitution"
    """`$(…)` or backticks: a command whose output becomes part of another."""
    PROCESS_SUBSTITUTION = "process_substitution"
    """`<(…)` or `>(…)`."""
    DYNAMIC_COMMAND = "dynamic_command"
    """The program to run is not known statically (expansion, glob, ...)."""
    DYNAMIC_ARGUMENT = "dynamic_argument"
    """An argument is not known statically (expansion, glob, xargs input, ...)."""
    EVAL = "eval"
    """`eval`, `trap`, `compgen -C` or similar: a string is run as shell code."""
    EXEC = "exec"
    """`exec` replaces the shell or rewires its file descriptors."""
    SOURCE = "source"
    """`source`/`.` runs the commands in a file."""
    FUNCTION_DEFINITION = "function_definition"
    """A function is defined; it can shadow any command name."""
    ALIAS = "alias"
    """An alias is defined; it can shadow any command name."""
    SHELL_STATE = "shell_state"
    """A builtin changes how later words are read or names resolve (`hash -p`, `enable`,
    `shopt -s dotglob`)."""
    SHELL_STDIN = "shell_stdin"
    """A shell reads its commands from standard input (pipe, here-document, here-string)."""
    REDIRECT_WRITE = "redirect_write"
    """Output is written to a file; `subject` is the target."""
    DYNAMIC_REDIRECT = "dynamic_redirect"
    """A redirection target is not known statically."""
    ENV_ASSIGNMENT = "env_assignment"
    """A variable that can change what programs run (PATH, LD_PRELOAD, GIT_*, ...) is set."""
    GIT_CONFIG = "git_config"
    """`git -c`, `--config-env`, `--exec-path`, `--git-dir`: configuration that can run programs."""
    PROGRAM_OPTION = "program_option"
    """An option known to make a program run another program (`git rebase -x`, ...)."""
    ARITHMETIC = "arithmetic"
    """Bash evaluates code from data: arithmetic on names, an array subscript in a name,
    an indirect expansion (`read 'a[$(cmd)]'`, `$((x))`, `${!x}`)."""
    COPROC = "coproc"
    """A coprocess is started."""
    PRIVILEGE = "privilege"
    """The command runs with other privileges or outside the sandbox (`sudo`, `systemd-run`)."""
    WRAPPER_OPTION = "wrapper_option"
    """A wrapper (`timeout`, `env`, ...) has an option the analyzer does not know."""


class Risk(msgspec.Struct, frozen=True, gc=False):
    """Something in a command line that a human should look at."""

    kind: RiskKind
    message: str
    """What was found and why it matters, for the person approving."""
    subject: str = ""
    """The part of the line concerned; for `redirect_write`, the target path."""


class Redirect(msgspec.Struct, frozen=True, gc=False):
    """A redirection to or from a file (descriptor duplication and closing are left out)."""

    direction: Literal["read", "write", "append"]
    target: str
    """The path after quote removal when `static`, else as written."""
    static: bool
    fd: int | None = None
    """The descriptor written before the operator (`2>`), if any."""


class Assignment(msgspec.Struct, frozen=True, gc=False):
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
    patterns: dict[int, str] = {}
    """For the `argv` words that are plain globs: the pattern as Python's `glob`
    reads it (quoted metacharacters escaped), to expand against the file system."""
    wrapper_words: list[str] = []
    """Every word of the wrappers' own (option values, durations, lock files): paths
    to check like any argument."""


class ShellAnalysis(msgspec.Struct, frozen=True):
    """Everything `analyze` found in one command line."""

    command: str
    commands: list[SimpleCommand]
    """Every simple command the line can run, in source order (substitutions first),
    each once: one met again that differs only in the files its redirections write
    (``echo $(date) > out1.txt; echo $(date) > out2.txt``) is listed the first time
    only, with that time's redirections. Every file written is in `redirects`;
    what a command reads by redirection (its input) always sets it apart."""
    risks: list[Risk]
    """Why a human should look; empty only if every command is static and accounted for."""
    redirects: list[Redirect]
    """Every file redirection in the line, once each."""
    expansions: bool = False
    """A word outside any command's argv is only known when the line runs (an assignment
    of a variable's value, a loop list): the line is not read-only by default."""
    inputs: list[str] = []
    """The text of every here-document and here-string, as written: what a program that
    reads code from its standard input (`python3 -`) would run."""

    @property
    def risk_kinds(self) -> frozenset[RiskKind]:
        """The kinds of `risks`, for quick membership tests."""
        return frozenset(risk.kind for risk in self.risks)


def command_key(command: SimpleCommand) -> bytes:
    """What makes two commands of a line the same command, whatever redirections
    surround each (``echo $(date) > out1; echo $(date) > out2``): their facts and
    verdicts are the same, so each is gathered and judged once. (The redirections are
    the line's, in `LineFacts.redirects`.)

    Every field but the redirections, by place: a tuple encodes in two thirds of the
    time a copy of the command without them takes, for each of a line's hundreds."""
    return _ENCODE(_KEYED(_FIELDS(command)))


_ENCODE = msgspec.msgpack.Encoder().encode
_FIELDS = msgspec.structs.astuple
_KEYED = operator.itemgetter(
    *(index for index, name in enumerate(SimpleCommand.__struct_fields__) if name != "redirects")
)
"""A command's fields but its redirections, picked in one call (no slices joined)."""
