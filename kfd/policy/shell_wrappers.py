"""Which program an argv really runs: unwrapping wrappers and spotting risky builtins.

Part of the shell analyzer (see `kfd.policy.shell`). `unwrap` takes the words
of one simple command and follows the programs that only start another
program — `sudo`, `env`, `timeout`, `nice`, `nohup`, `setsid`, `stdbuf`,
`ionice`, `command`, `builtin`, `exec`, `time`, `xargs`, `busybox`, `coproc`
— to the command that does the work, recording each wrapper it went through.
Shells given `-c SCRIPT`, `eval`, `su -c` and `trap` hand back their script
text for the analyzer to parse; `find -exec … ;` yields the command it runs
in addition to `find` itself; `git` global options (`-C`, `-c`, ...) are
stripped so that `git -C dir status` is `git status`.

Anything it cannot follow (an unknown wrapper option, a non-static word before
the command) stops the unwrapping *and* yields a finding, so a wrapper can
never hide the command it runs from a verdict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kfd.policy.shell_words import RiskKind, Word

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Finding", "Invocation", "NestedScript", "Unwrapped", "sensitive_variable", "unwrap"]


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


@dataclass(slots=True)
class NestedScript:
    """Shell code a command runs (`bash -c`, `eval`, `su -c`, `trap`), to parse in turn."""

    text: str
    wrappers: list[list[str]]
    assignments: list[tuple[str, Word]]
    chdir: list[str]
    open_ended: bool = False


@dataclass(slots=True)
class Unwrapped:
    """Everything `unwrap` found in one simple command."""

    invocations: list[Invocation] = field(default_factory=list)
    scripts: list[NestedScript] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def unwrap(words: list[Word]) -> Unwrapped:
    """Follow wrappers in `words` to the programs they run (see the module docstring)."""
    out = Unwrapped()
    _unwrap(words, Invocation(), out)
    return out


# A handler looks at words starting with its program name and returns how many
# words to strip before unwrapping continues, None to stop (the words are the
# command), _DONE when a nested script replaces the command entirely, or a new
# word list that is the effective command.
_DONE = -1
_Step = int | list[Word] | None


def _unwrap(words: list[Word], state: Invocation, out: Unwrapped) -> None:
    while words:
        head = words[0].value
        if head is None:
            break
        handler = _HANDLERS.get(head.rsplit("/", 1)[-1])
        if handler is None:
            break
        step = handler(words, state, out)
        if step == _DONE:
            return
        if isinstance(step, list):
            words = step
            break
        if step is None or step < 1 or step >= len(words):
            break
        state.wrappers.append([w.text for w in words[:step]])
        words = words[step:]
    state.words = words
    if words:
        out.invocations.append(state)


def _names(text: str) -> frozenset[str]:
    """A set of names written as one whitespace-separated string."""
    return frozenset(text.split())


@dataclass(frozen=True, slots=True)
class _Spec:
    """The options of a wrapper, as a getopt-style parser needs them."""

    flags: frozenset[str] = frozenset()
    valued: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()  # value only when attached: -e[EOF], --eof[=EOF]
    terminal: frozenset[str] = frozenset()  # after these, no command follows
    numeric: bool = False  # `nice -10`


def _spec(
    flags: str = "", valued: str = "", optional: str = "", terminal: str = "", numeric: bool = False
) -> _Spec:
    return _Spec(_names(flags), _names(valued), _names(optional), _names(terminal), numeric)


@dataclass(slots=True)
class _Parsed:
    index: int
    options: list[tuple[str, str]]
    problem: Finding | None = None
    terminal: bool = False


def _dynamic(words: list[Word], i: int) -> Finding:
    return Finding(
        RiskKind.DYNAMIC_COMMAND,
        f"{words[i].source!r} among the options of {words[0].text!r} is not static "
        f"({words[i].reason}), so the program it runs is unknown",
        words[i].source,
    )


def _operand_like(word: Word) -> bool:
    """Whether a non-static word starts with literal text that cannot make it an option."""
    return word.source[:1].isalnum() or word.source[:1] in "_./"


def _unknown(words: list[Word], option: str) -> Finding:
    return Finding(
        RiskKind.WRAPPER_OPTION,
        f"{words[0].text} option {option!r} is not known to the analyzer, so the command "
        "it runs cannot be found",
        option,
    )


def _parse(words: list[Word], spec: _Spec, start: int = 1) -> _Parsed:
    """Parse wrapper options getopt-style, stopping at the first operand."""
    i = start
    options: list[tuple[str, str]] = []
    while i < len(words):
        value = words[i].value
        if value is None:
            if _operand_like(words[i]):
                break
            return _Parsed(i, options, _dynamic(words, i))
        if value == "--":
            return _Parsed(i + 1, options)
        if value.startswith("--"):
            name, eq, attached = value.partition("=")
            if name in spec.terminal:
                return _Parsed(i, options, terminal=True)
            if (
                name in spec.optional
                or (name in spec.flags and not eq)
                or (name in spec.valued and eq)
            ):
                options.append((name, attached))
                i += 1
            elif name in spec.valued and i + 1 < len(words):
                nxt = words[i + 1].value
                if nxt is None:
                    return _Parsed(i, options, _dynamic(words, i + 1))
                options.append((name, nxt))
                i += 2
            else:
                return _Parsed(i, options, _unknown(words, value))
            continue
        if not value.startswith("-") or value == "-":
            break
        if spec.numeric and value[1:].isdigit():
            options.append(("-n", value[1:]))
            i += 1
            continue
        consumed = 1
        for j in range(1, len(value)):
            option, rest = "-" + value[j], value[j + 1 :]
            if option in spec.terminal:
                return _Parsed(i, options, terminal=True)
            if option in spec.flags:
                options.append((option, ""))
                continue
            if option in spec.optional or (option in spec.valued and rest):
                options.append((option, rest))
                break
            if option in spec.valued and i + 1 < len(words):
                nxt = words[i + 1].value
                if nxt is None:
                    return _Parsed(i, options, _dynamic(words, i + 1))
                options.append((option, nxt))
                consumed = 2
                break
            return _Parsed(i, options, _unknown(words, value))
        i += consumed
    return _Parsed(i, options)


def _wrapper(
    spec: _Spec,
    *,
    positionals: int = 0,
    finding: tuple[RiskKind, str] | None = None,
    after: Callable[[list[Word], _Parsed, Invocation, Unwrapped], int | None] | None = None,
) -> Callable[[list[Word], Invocation, Unwrapped], _Step]:
    """A handler for a wrapper that takes options, then `positionals` words, then a command."""

    def handle(words: list[Word], state: Invocation, out: Unwrapped) -> _Step:
        if finding is not None:
            out.findings.append(Finding(finding[0], f"{words[0].text} {finding[1]}", words[0].text))
        parsed = _parse(words, spec)
        if parsed.problem is not None:
            out.findings.append(parsed.problem)
            return None
        if parsed.terminal:
            return None
        index = parsed.index
        for _ in range(positionals):
            if index >= len(words):
                return None
            if words[index].value is None:
                out.findings.append(_dynamic(words, index))
                return None
            index += 1
        if after is not None:
            return after(words, parsed, state, out)
        return index

    return handle


_ASSIGNMENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _assignments(
    words: list[Word], index: int, state: Invocation, out: Unwrapped, *, any_name: bool
) -> int:
    """Consume `NAME=value` words (as `env` and `sudo` accept them) from `index`."""
    while index < len(words):
        word = words[index]
        name, eq, rest = word.text.partition("=")
        valid = bool(name) if any_name else bool(_ASSIGNMENT_NAME.fullmatch(name))
        if not eq or not valid:
            break
        if word.value is None and not _ASSIGNMENT_NAME.fullmatch(name):
            break
        if word.value is None:
            out.findings.append(
                Finding(
                    RiskKind.DYNAMIC_COMMAND,
                    f"{word.source!r} is not static ({word.reason}); unquoted, it can split into "
                    f"several words and change which program {words[0].text} runs",
                    word.source,
                )
            )
        value = Word(rest, rest if word.value is not None else None, word.reason)
        state.assignments.append((name, value))
        index += 1
    return index


def _env_after(words: list[Word], parsed: _Parsed, state: Invocation, out: Unwrapped) -> int:
    state.chdir.extend(v for o, v in parsed.options if o in ("-C", "--chdir"))
    index = parsed.index
    if index < len(words) and words[index].value == "-":
        index += 1
    return _assignments(words, index, state, out, any_name=True)


def _sudo_after(words: list[Word], parsed: _Parsed, state: Invocation, out: Unwrapped) -> int:
    state.chdir.extend(v for o, v in parsed.options if o in ("-D", "--chdir"))
    return _assignments(words, parsed.index, state, out, any_name=False)


def _time_after(words: list[Word], parsed: _Parsed, state: Invocation, out: Unwrapped) -> int:
    for option, value in parsed.options:
        if option in ("-o", "--output"):
            out.findings.append(_writes(value, f"{words[0].text} {option}"))
    return parsed.index


def _writes(target: str, how: str) -> Finding:
    return Finding(RiskKind.REDIRECT_WRITE, f"{how} writes to {target!r}", target)


def _xargs(words: list[Word], state: Invocation, out: Unwrapped) -> _Step:
    state.open_ended = True
    out.findings.append(
        Finding(
            RiskKind.DYNAMIC_ARGUMENT,
            f"{words[0].text} adds arguments read from standard input to the command it runs",
            words[0].text,
        )
    )
    parsed = _parse(words, _XARGS)
    if parsed.problem is not None:
        out.findings.append(parsed.problem)
        return None
    return None if parsed.terminal else parsed.index


_XARGS = _spec(
    flags="-0 -r -t -p -x -o --null --no-run-if-empty --verbose --interactive --exit --open-tty",
    valued="-a -d -E -I -L -n -P -s --arg-file --delimiter --max-args --max-procs --max-chars "
    "--process-slot-var",
    optional="-e -i -l --eof --replace --max-lines",
    terminal="--help --version --show-limits",
)

_SHELLS = _names("sh bash rbash zsh dash ksh ksh93 mksh ash yash posh")
_FOREIGN_SHELLS = _names("fish csh tcsh pwsh powershell nu nushell xonsh elvish")


def _shell(words: list[Word], state: Invocation, out: Unwrapped) -> _Step:
    command_mode = stdin_mode = False
    i = 1
    while i < len(words):
        value = words[i].value
        if value is None:
            if command_mode:
                break  # the script operand; reported below
            out.findings.append(_dynamic(words, i))
            return None
        if value in ("--", "-"):
            i += 1
            break
        if value in ("--version", "--help"):
            return None
        if value.startswith("--"):
            i += 2 if value in ("--rcfile", "--init-file") else 1
            continue
        if len(value) < 2 or value[0] not in "-+":
            break
        letters = value[1:]
        command_mode = command_mode or "c" in letters
        stdin_mode = stdin_mode or "s" in letters or "i" in letters
        i += 1 + sum(letters.count(c) for c in "oO")
    if command_mode:
        if i >= len(words):
            return None
        script = words[i]
        if script.value is None:
            out.findings.append(
                Finding(
                    RiskKind.DYNAMIC_COMMAND,
                    f"the script given to {words[0].text} -c is not static ({script.reason})",
                    script.source,
                )
            )
            return None
        prefix = [w.text for w in words[:i]]
        _nested(script.value, prefix, state, out)
        return _DONE
    if i >= len(words) or stdin_mode:
        out.findings.append(
            Finding(
                RiskKind.SHELL_STDIN,
                f"{words[0].text} reads commands from standard input (a pipe, here-document or "
                "here-string), which the analyzer does not see",
                words[0].text,
            )
        )
    return None


def _nested(text: str, prefix: list[str], state: Invocation, out: Unwrapped) -> None:
    out.scripts.append(
        NestedScript(
            text,
            [*state.wrappers, prefix],
            list(state.assignments),
            list(state.chdir),
            state.open_ended,
        )
    )


def _foreign_shell(words: list[Word], state: Invocation, out: Unwrapped) -> _Step:
    if any(w.value is None or (w.value.startswith("-") and "c" in w.value.lower()) for w in words):
        out.findings.append(
            Finding(
                RiskKind.UNPARSED,
                f"{words[0].text} runs code in a shell language the analyzer does not read",
                words[0].text,
            )
        )
    elif len(words) == 1:
        out.findings.append(
            Finding(RiskKind.SHELL_STDIN, f"{words[0].text} reads commands from standard input")
        )
    return None


def _su(words: list[Word], state: Invocation, out: Unwrapped) -> _Step:
    out.findings.append(_privilege(words))
    parsed = _parse(words, _SU)
    if parsed.problem is not None:
        out.findings.append(parsed.problem)
        return None
    scripts = [v for o, v in parsed.options if o in ("-c", "--command", "--session-command")]
    for script in scripts:
        _nested(script, [w.text for w in words[: parsed.index]], state, out)
    return _DONE if scripts else None


_SU = _spec(
    flags="-l --login -m -p --preserve-environment -f --fast -P --pty",
    valued="-c --command --session-command -s --shell -g --group -G --supp-group -w "
    "--whitelist-environment",
    terminal="-h --help -V --version",
)


def _privilege(words: list[Word]) -> Finding:
    return Finding(
        RiskKind.PRIVILEGE,
        f"{words[0].text} runs the command with other privileges",
        words[0].text,
    )


def _eval(words: list[Word], state: Invocation, out: Unwrapped) -> _Step:
    out.findings.append(
        Finding(RiskKind.EVAL, f"{words[0].text} runs its arguments as shell code", words[0].text)
    )
    arguments = words[1:]
    if arguments and arguments[0].value == "--":
        arguments = arguments[1:]
    if not arguments:
        return None
    dynamic = [w for w in arguments if w.value is None]
    if dynamic:
        out.findings.append(
            Finding(
                RiskKind.DYNAMIC_COMMAND,
                f"the code given to {words[0].text} is not static ({dynamic[0].reason})",
                dynamic[0].source,
            )
        )
        return None
    _nested(" ".join(w.text for w in arguments), [words[0].text], state, out)
    return _DONE


def _trap(words: list[Word], state: Invocation, out: Unwrapped) -> _Step:
    arguments = [w for w in words[1:] if w.value not in ("-l", "-p", "--")]
    if len(arguments) < 2 or arguments[0].value in ("-", ""):
        return None
    action = arguments[0]
    out.findings.append(
        Finding(RiskKind.EVAL, f"trap runs {action.source} as shell code later", action.source)
    )
    if action.value is None:
        out.findings.append(
            Finding(RiskKind.DYNAMIC_COMMAND, f"the trap action is not static ({action.reason})")
        )
    else:
        _nested(action.value, [words[0].text], state, out)
    return None


def _finding(kind: RiskKind, message: str) -> Callable[[list[Word], Invocation, Unwrapped], _Step]:
    def handle(words: list[Word], state: Invocation, out: Unwrapped) -> _Step:
        out.findings.append(Finding(kind, f"{words[0].text} {message}", words[0].text))
        return None

    return handle


def _alias(words: list[Word], state: Invocation, out: Unwrapped) -> _Step:
    if any(w.value is None or "=" in w.value for w in words[1:]):
        out.findings.append(
            Finding(
                RiskKind.ALIAS, "alias defines a name that can shadow any command", words[0].text
            )
        )
    return None


def _shell_state(words: list[Word], state: Invocation, out: Unwrapped) -> _Step:
    name = words[0].text
    options = [w.text for w in words[1:] if w.text.startswith("-")]
    if (name == "hash" and any("p" in o for o in options)) or (name != "hash" and len(words) > 1):
        out.findings.append(
            Finding(
                RiskKind.SHELL_STATE,
                f"{name} changes which program or builtin a command name runs",
                " ".join(w.text for w in words),
            )
        )
    return None


_SETTER_NAMES = _names("declare typeset local export readonly read mapfile readarray")


def _setters(words: list[Word], state: Invocation, out: Unwrapped) -> _Step:
    name = words[0].text.rsplit("/", 1)[-1]
    targets: list[str] = []
    if name == "printf":
        for i, word in enumerate(words[1:], 1):
            if word.text == "-v" and i + 1 < len(words):
                targets.append(words[i + 1].text)
            elif word.text.startswith("-v"):
                targets.append(word.text[2:])
            elif word.text == "--" or not word.text.startswith("-"):
                break
    elif name == "getopts":
        targets.extend(w.text for w in words[2:3])
    else:
        for word in words[1:]:
            text = word.text
            if text[:1] in "-+" and text not in ("-", "+"):
                if name in ("declare", "typeset", "local") and "n" in text[1:]:
                    out.findings.append(
                        Finding(
                            RiskKind.ENV_ASSIGNMENT,
                            f"{name} {text} makes a name refer to another variable",
                            text,
                        )
                    )
                if name in ("mapfile", "readarray") and "C" in text[1:]:
                    out.findings.append(
                        Finding(RiskKind.EVAL, f"{name} -C runs a callback as shell code", text)
                    )
                continue
            targets.append(re.split(r"\+?=", text, maxsplit=1)[0])
    for target in targets:
        base = target.split("[", 1)[0]
        if _ASSIGNMENT_NAME.fullmatch(base) and sensitive_variable(base):
            out.findings.append(_sensitive(base))
    return None


def _sensitive(name: str) -> Finding:
    return Finding(
        RiskKind.ENV_ASSIGNMENT,
        f"sets {name}, which programs may read to decide what to run or load "
        "(PATH, LD_PRELOAD, GIT_*, PAGER, ... are common bypasses)",
        name,
    )


_INERT_VARIABLES = _names(
    "CI NO_COLOR FORCE_COLOR CLICOLOR CLICOLOR_FORCE TERM COLUMNS LINES LANG LANGUAGE "
    "TZ NODE_ENV RUST_BACKTRACE RUST_LOG PYTHONUNBUFFERED PYTHONDONTWRITEBYTECODE "
    "PYTHONHASHSEED PYTHONIOENCODING DEBUG VERBOSE"
)
_PROXY_VARIABLES = _names("http_proxy https_proxy ftp_proxy all_proxy no_proxy")


def sensitive_variable(name: str) -> bool:
    """Whether setting `name` can change what programs run or load.

    Fail closed: every name with an upper-case letter is sensitive unless it is
    on a short list of known-inert ones (CI, NO_COLOR, LANG, LC_*, TZ, ...);
    lower-case names are shell-local by convention, except the proxy variables.
    """
    if name in _INERT_VARIABLES or (name.startswith("LC_") and name[3:].isalpha()):
        return False
    return any(c.isupper() for c in name) or name in _PROXY_VARIABLES


_FIND_EXEC = frozenset({"-exec", "-execdir", "-ok", "-okdir"})
_FIND_WRITES = frozenset({"-fprint", "-fprint0", "-fprintf", "-fls"})


def _find(words: list[Word], state: Invocation, out: Unwrapped) -> _Step:
    state.words = words
    out.invocations.append(state)
    i = 1
    while i < len(words):
        value = words[i].value
        if value in _FIND_WRITES and i + 1 < len(words):
            out.findings.append(_writes(words[i + 1].text, f"find {value}"))
        if value not in _FIND_EXEC:
            i += 1
            continue
        end = i + 1
        while end < len(words) and words[end].value not in (";", "+"):
            end += 1
        command = words[i + 1 : end]
        if command:
            placeholder = any("{}" in w.text for w in command)
            if placeholder:
                out.findings.append(
                    Finding(
                        RiskKind.DYNAMIC_ARGUMENT,
                        f"find {value} puts each path it finds in place of {{}}",
                        " ".join(w.text for w in command),
                    )
                )
            inner = Invocation(
                wrappers=[*state.wrappers, [w.text for w in words[: i + 1]]],
                assignments=list(state.assignments),
                chdir=list(state.chdir),
                open_ended=placeholder,
            )
            _unwrap(command, inner, out)
        i = end + 1
    return _DONE


_GIT_INERT = _names(
    "-p --paginate -P --no-pager --no-replace-objects --no-lazy-fetch "
    "--no-optional-locks --no-advice --literal-pathspecs --glob-pathspecs "
    "--noglob-pathspecs --icase-pathspecs"
)
_GIT_VALUED = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--config-env"})
_GIT_RISKY_KEY = re.compile(
    r"(core\.(fsmonitor|pager|sshcommand|editor|hookspath|askpass|gitproxy)|pager\..*|alias\..*"
    r"|.*\.(command|driver|program|helper|textconv|clean|smudge|process|path|cmd|uploadpack"
    r"|receivepack|proxy)|diff\.external|sequence\.editor|include(if)?\b.*|gpg\..*"
    r"|credential\..*|protocol\..*|url\..*)",
    re.IGNORECASE,
)
# Subcommand options that make git run a program named on the command line.
_GIT_PROGRAM_OPTIONS = {
    "rebase": ("-x", "--exec"),
    "difftool": ("-x", "--extcmd"),
    "grep": ("-O", "--open-files-in-pager"),
    "fetch": ("--upload-pack",),
    "pull": ("--upload-pack",),
    "clone": ("-u", "--upload-pack", "-c", "--config", "--template"),
    "ls-remote": ("--upload-pack",),
    "push": ("--receive-pack", "--exec"),
    "archive": ("--exec",),
    "send-pack": ("--receive-pack", "--exec"),
    "fetch-pack": ("--upload-pack", "--exec"),
}
# Subcommands that run shell code, and the first argument that makes them do so ("" = always).
_GIT_RUNS_SHELL = {"filter-branch": "", "bisect": "run", "submodule": "foreach"}


def _git(words: list[Word], state: Invocation, out: Unwrapped) -> _Step:
    i = 1
    while i < len(words):
        value = words[i].value
        if value is None:
            out.findings.append(_dynamic(words, i))
            return None
        name, eq, attached = value.partition("=")
        if value in _GIT_INERT:
            i += 1
            continue
        if name not in _GIT_VALUED or (name in ("-C", "-c") and eq):
            break
        if eq:
            argument, i = attached, i + 1
        elif i + 1 >= len(words):
            break
        elif words[i + 1].value is None:
            out.findings.append(_dynamic(words, i + 1))
            return None
        else:
            argument, i = words[i + 1].text, i + 2
        if name == "-C":
            state.chdir.append(argument)
        elif name == "--namespace":
            continue
        else:
            state.git_config.append(argument if name == "-c" else f"{name}={argument}")
            out.findings.append(
                Finding(
                    RiskKind.GIT_CONFIG,
                    f"git {name} {argument} changes configuration or the repository, which can run "
                    "programs (core.fsmonitor, core.pager, core.sshCommand, hooks, ...)",
                    argument,
                )
            )
    effective = [words[0], *words[i:]]
    if i > 1:
        state.wrappers.append([w.text for w in words[:i]])
    _git_subcommand(effective, out)
    return effective


def _git_subcommand(words: list[Word], out: Unwrapped) -> None:
    if len(words) < 2:
        return
    subcommand = words[1].text
    arguments = [w.text for w in words[2:]]
    risky = _GIT_PROGRAM_OPTIONS.get(subcommand, ())
    for argument in arguments:
        name = argument.partition("=")[0]
        if name in risky or (len(name) > 2 and name[:2] in risky and not name.startswith("--")):
            out.findings.append(
                Finding(
                    RiskKind.PROGRAM_OPTION,
                    f"git {subcommand} {name} runs or installs a program given on the command line",
                    argument,
                )
            )
        if name == "--output" and subcommand in ("log", "diff", "show", "format-patch"):
            out.findings.append(_writes(argument.partition("=")[2], f"git {subcommand} --output"))
    trigger = _GIT_RUNS_SHELL.get(subcommand)
    if trigger == "" or (trigger is not None and arguments[:1] == [trigger]):
        out.findings.append(
            Finding(RiskKind.PROGRAM_OPTION, f"git {subcommand} runs shell commands", subcommand)
        )
    if subcommand == "config" and any(_GIT_RISKY_KEY.fullmatch(a) for a in arguments):
        out.findings.append(
            Finding(
                RiskKind.GIT_CONFIG,
                "git config touches a key that makes git run a program",
                " ".join(arguments),
            )
        )


def _builtin_or_command(words: list[Word], state: Invocation, out: Unwrapped) -> _Step:
    parsed = _parse(words, _COMMAND)
    if parsed.problem is not None:
        out.findings.append(parsed.problem)
        return None
    return None if parsed.terminal else parsed.index


_COMMAND = _spec(flags="-p", terminal="-v -V")

_HANDLERS: dict[str, Callable[[list[Word], Invocation, Unwrapped], _Step]] = {
    "timeout": _wrapper(
        _spec(
            flags="--foreground --preserve-status -v --verbose",
            valued="-k --kill-after -s --signal",
        ),
        positionals=1,
    ),
    "nice": _wrapper(_spec(valued="-n --adjustment", numeric=True)),
    "nohup": _wrapper(_spec()),
    "setsid": _wrapper(_spec(flags="-c --ctty -f --fork -w --wait")),
    "stdbuf": _wrapper(_spec(valued="-i -o -e --input --output --error")),
    "ionice": _wrapper(
        _spec(
            flags="-t --ignore",
            valued="-c --class -n --classdata",
            terminal="-p --pid -P --pgid -u --uid -h --help -V --version",
        )
    ),
    "command": _builtin_or_command,
    "builtin": _wrapper(_spec()),
    "busybox": _wrapper(_spec(terminal="--list --list-full --help --install")),
    "time": _wrapper(
        _spec(
            flags="-p -a --append -v --verbose -q --quiet --portability",
            valued="-f --format -o --output",
        ),
        after=_time_after,
    ),
    "exec": _wrapper(
        _spec(flags="-c -l", valued="-a"),
        finding=(RiskKind.EXEC, "replaces the shell or redirects its file descriptors"),
    ),
    "coproc": _wrapper(_spec(), finding=(RiskKind.COPROC, "starts a coprocess")),
    "env": _wrapper(
        _spec(
            flags="-i --ignore-environment -0 --null -v --debug",
            valued="-u --unset -C --chdir",
            terminal="--help --version",
        ),
        after=_env_after,
    ),
    "sudo": _wrapper(
        _spec(
            flags="-A --askpass -b --background -E -H --set-home -n --non-interactive -P "
            "--preserve-groups -S --stdin -i --login -s --shell -k --reset-timestamp -B --bell "
            "-N --no-update",
            optional="--preserve-env",
            valued="-C --close-from -D --chdir -g --group -p --prompt -R --chroot -r --role -t "
            "--type -T --command-timeout -U --other-user -u --user --host",
            terminal="-l --list -v --validate -K --remove-timestamp -V --version -e --edit -h "
            "--help",
        ),
        finding=(RiskKind.PRIVILEGE, "runs the command with other privileges"),
        after=_sudo_after,
    ),
    "doas": _wrapper(
        _spec(flags="-n -s -L", valued="-u -a", terminal="-C"),
        finding=(RiskKind.PRIVILEGE, "runs the command with other privileges"),
    ),
    "pkexec": _wrapper(
        _spec(
            flags="--disable-internal-agent --keep-cwd",
            valued="-u --user",
            terminal="--help --version",
        ),
        finding=(RiskKind.PRIVILEGE, "runs the command with other privileges"),
    ),
    "su": _su,
    "xargs": _xargs,
    "eval": _eval,
    "trap": _trap,
    "source": _finding(RiskKind.SOURCE, "runs the commands in a file"),
    ".": _finding(RiskKind.SOURCE, "runs the commands in a file"),
    "alias": _alias,
    "hash": _shell_state,
    "enable": _shell_state,
    "bind": _shell_state,
    "let": _finding(RiskKind.ARITHMETIC, "evaluates arithmetic, which can run commands"),
    "printf": _setters,
    "getopts": _setters,
    "find": _find,
    "git": _git,
    **dict.fromkeys(_SETTER_NAMES, _setters),
    **dict.fromkeys(_SHELLS, _shell),
    **dict.fromkeys(_FOREIGN_SHELLS, _foreign_shell),
}
