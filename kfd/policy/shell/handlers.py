"""Programs and builtins whose words hold other commands, each read its own way.

Part of the shell analyser (`kfd.policy.shell.unwrap`): shells given ``-c``
(their script is parsed in turn), shells reading standard input, ``eval``,
``trap``, ``alias``, ``source``, ``exec``, ``coproc``, ``command``,
``builtin``, ``xargs`` and ``find -exec``. Plain wrappers (``timeout``,
``sudo``, ``unshare``...) are data, read by `kfd.policy.shell.unwrap`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kfd.policy.shell.model import RiskKind
from kfd.policy.shell.steps import DONE, Invocation, Step, Unwrapped, dynamic_word
from kfd.policy.shell.words import Word

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["HANDLERS"]

_SHELLS = frozenset(
    ["sh", "bash", "rbash", "zsh", "dash", "ksh", "ksh93", "mksh", "ash", "yash", "posh"]
)
_BASH = frozenset(["bash", "rbash"])
_PLAIN_OPTIONS = frozenset("cseuxvilrp")
"""Shell options that leave a script's words read as here: `-c`, `-s`, `-i` (read
above), `-e`, `-u`, `-x`, `-v`, `-l`, `-r` (restricted), `-p` (privileged: no
startup files). Any other changes how it is read or run."""
_LONG_OPTIONS = frozenset(
    {"posix", "login", "rcfile", "init-file", "norc", "noprofile", "noediting", "restricted"}
    | {"verbose", "version", "help", "debugger", "dump-strings", "dump-po-strings"}
    | {"pretty-print", "wordexp", "protected", "rpm-requires"}
)
"""bash's long options, which it takes with one dash too."""
_PLAIN_MODES = frozenset({"pipefail", "errexit", "nounset", "xtrace", "verbose", "noclobber"})
"""The same for `-o NAME` (`-o posix`, `-o keyword`, `-o allexport`... do not)."""
_FOREIGN_SHELLS = frozenset(
    ["fish", "csh", "tcsh", "pwsh", "powershell", "nu", "nushell", "xonsh", "elvish"]
)


def _shell(words: list[Word], state: Invocation, out: Unwrapped) -> Step:
    command_mode = stdin_mode = False
    # Only bash reads a script as bash does: `sh` is dash on Debian (and bash in POSIX
    # mode elsewhere), which reads `&>`, `((`, `$'…'` otherwise (round 24).
    bash = (words[0].value or "").rsplit("/", 1)[-1] in _BASH
    i = 1
    while i < len(words):
        value = words[i].value
        if value is None:
            if command_mode:
                break  # the script operand; reported below
            out.findings.append(dynamic_word(words, i))
            return None
        if value in ("--", "-"):
            i += 1
            break
        if value in ("--version", "--help"):
            return None
        if value[1:] in _LONG_OPTIONS:
            value = "-" + value  # bash takes `-posix` as `--posix` (round 26)
        if value.startswith("--"):
            bash = bash and value != "--posix"
            if value in ("--rcfile", "--init-file"):
                # A file of commands it runs first (`-i`): as the script itself would.
                out.finding(
                    RiskKind.PROGRAM_OPTION,
                    f"{words[0].text} {value} runs the file given as shell code",
                    words[i + 1].text if i + 1 < len(words) else value,
                )
                if i + 1 < len(words):
                    state.wrapper_words.append(words[i + 1].value or words[i + 1].text)
            i += 2 if value in ("--rcfile", "--init-file") else 1
            continue
        if len(value) < 2 or value[0] not in "-+":
            break
        letters = value[1:]
        command_mode = command_mode or "c" in letters
        stdin_mode = stdin_mode or "s" in letters or "i" in letters
        names = [w.value for w in words[i + 1 : i + 1 + letters.count("o") + letters.count("O")]]
        changes = (set(letters) - _PLAIN_OPTIONS - {"o"}) | {
            f"o {name}" for name in names if name not in _PLAIN_MODES
        }
        if changes:
            # `bash -k` takes `NAME=value` words anywhere as assignments (round 25:
            # `git status GIT_CONFIG_…=…` ran a program), `-a` exports every one,
            # `-f` globs nothing, `-o keyword`…: the script is not read as it is here.
            out.finding(
                RiskKind.UNPARSED,
                f"{words[0].text} {value} changes how the script is read "
                f"(-{', -'.join(sorted(changes))})",
                value,
            )
            return None
        i += 1 + sum(letters.count(c) for c in "oO")
    if command_mode:
        if i >= len(words):
            return None
        script = words[i]
        if script.value is None:
            out.finding(
                RiskKind.DYNAMIC_COMMAND,
                f"the script given to {words[0].text} -c is not static ({script.reason})",
                script.source,
            )
            return None
        out.script(script.value, [w.text for w in words[:i]], state, bash=bash)
        return DONE
    if i >= len(words) or stdin_mode:
        out.finding(
            RiskKind.SHELL_STDIN,
            f"{words[0].text} reads commands from standard input (a pipe, here-document or "
            "here-string), which the analyzer does not see",
            words[0].text,
        )
    return None


def _foreign_shell(words: list[Word], state: Invocation, out: Unwrapped) -> Step:
    if any(w.value is None or (w.value.startswith("-") and "c" in w.value.lower()) for w in words):
        out.finding(
            RiskKind.UNPARSED,
            f"{words[0].text} runs code in a shell language the analyzer does not read",
            words[0].text,
        )
    elif len(words) == 1:
        out.finding(RiskKind.SHELL_STDIN, f"{words[0].text} reads commands from standard input")
    return None


def _eval(words: list[Word], state: Invocation, out: Unwrapped) -> Step:
    out.finding(RiskKind.EVAL, f"{words[0].text} runs its arguments as shell code", words[0].text)
    arguments = words[1:]
    if arguments and arguments[0].value == "--":
        arguments = arguments[1:]
    if not arguments:
        return None
    dynamic = [w for w in arguments if w.value is None]
    if dynamic:
        out.finding(
            RiskKind.DYNAMIC_COMMAND,
            f"the code given to {words[0].text} is not static ({dynamic[0].reason})",
            dynamic[0].source,
        )
        return None
    out.script(" ".join(w.text for w in arguments), [words[0].text], state, bash=True)
    return DONE


def _trap(words: list[Word], state: Invocation, out: Unwrapped) -> Step:
    arguments = [w for w in words[1:] if w.value not in ("-l", "-p", "--")]
    if len(arguments) < 2 or arguments[0].value in ("-", ""):
        return None
    action = arguments[0]
    out.finding(RiskKind.EVAL, f"trap runs {action.source} as shell code later", action.source)
    if action.value is None:
        out.finding(RiskKind.DYNAMIC_COMMAND, f"the trap action is not static ({action.reason})")
    else:
        out.script(action.value, [words[0].text], state, bash=True)
    return None


def _always(kind: RiskKind, message: str) -> Callable[[list[Word], Invocation, Unwrapped], Step]:
    def handle(words: list[Word], state: Invocation, out: Unwrapped) -> Step:
        out.finding(kind, f"{words[0].text} {message}", words[0].text)
        return None

    return handle


def _alias(words: list[Word], state: Invocation, out: Unwrapped) -> Step:
    if any(w.value is None or "=" in w.value for w in words[1:]):
        out.finding(RiskKind.ALIAS, "alias defines a name that can shadow any command", "alias")
    return None


def _strip(
    flags: str, valued: str = "", terminal: str = "", finding: tuple[RiskKind, str] | None = None
) -> Callable[[list[Word], Invocation, Unwrapped], Step]:
    """A builtin that runs the command after its options: ``command -p``, ``exec -a x``."""

    def handle(words: list[Word], state: Invocation, out: Unwrapped) -> Step:
        if finding is not None:
            out.finding(finding[0], f"{words[0].text} {finding[1]}", words[0].text)
        i = 1
        while i < len(words):
            value = words[i].value
            if value is None:
                out.findings.append(dynamic_word(words, i))
                return None
            if value == "--":
                return i + 1
            if not value.startswith("-") or value == "-":
                return i
            letters = value[1:]
            if any(letter in terminal for letter in letters):
                return None
            if letters[-1] in valued:
                i += 2
            elif all(letter in flags for letter in letters):
                i += 1
            else:
                out.finding(
                    RiskKind.WRAPPER_OPTION,
                    f"{words[0].text} option {value!r} is not known to the analyzer",
                    value,
                )
                return None
        return i

    return handle


_XARGS_VALUED = frozenset(
    [
        "-a",
        "-d",
        "-E",
        "-I",
        "-L",
        "-n",
        "-P",
        "-s",
        "--arg-file",
        "--delimiter",
        "--max-args",
        "--max-procs",
        "--max-chars",
        "--process-slot-var",
    ]
)
_XARGS_FLAGS = frozenset(
    [
        "-0",
        "-r",
        "-t",
        "-p",
        "-x",
        "-o",
        "--null",
        "--no-run-if-empty",
        "--verbose",
        "--interactive",
        "--exit",
        "--open-tty",
    ]
)
_XARGS_OPTIONAL = frozenset(["-e", "-i", "-l", "--eof", "--replace", "--max-lines"])
_XARGS_TERMINAL = frozenset(["--help", "--version", "--show-limits"])


def _xargs(words: list[Word], state: Invocation, out: Unwrapped) -> Step:
    state.open_ended = True
    out.finding(
        RiskKind.DYNAMIC_ARGUMENT,
        f"{words[0].text} adds arguments read from standard input to the command it runs",
        words[0].text,
    )
    i = 1
    while i < len(words):
        value = words[i].value
        if value is None:
            out.findings.append(dynamic_word(words, i))
            return None
        name = value.partition("=")[0]
        if value == "--":
            return i + 1
        if value in _XARGS_TERMINAL:
            return None
        if not value.startswith("-") or value == "-":
            return i
        if name in ("--arg-file", "-a") or value[:2] == "-a":
            # The file it reads the arguments from: a path read like any (round 26:
            # `xargs -a secrets/k echo` printed it).
            glued = value.partition("=")[2] if "=" in value else value[2:]
            if glued or i + 1 < len(words):
                state.wrapper_words.append(glued or (words[i + 1].value or words[i + 1].text))
        if (
            name in _XARGS_FLAGS
            or name in _XARGS_OPTIONAL
            or (name in _XARGS_VALUED and "=" in value)
        ):
            i += 1
        elif value in _XARGS_VALUED or (value[:2] in _XARGS_VALUED and len(value) > 2):
            i += 1 if len(value) > 2 and not value.startswith("--") else 2
        elif value[:2] in _XARGS_OPTIONAL or value[:2] in _XARGS_FLAGS:
            i += 1
        else:
            out.finding(
                RiskKind.WRAPPER_OPTION,
                f"xargs option {value!r} is not known to the analyzer, so the command it runs "
                "cannot be found",
                value,
            )
            return None
    return i


_FIND_EXEC = frozenset({"-exec", "-execdir", "-ok", "-okdir"})
_FIND_WRITES = frozenset({"-fprint", "-fprint0", "-fprintf", "-fls"})


def _find(words: list[Word], state: Invocation, out: Unwrapped) -> Step:
    state.words = words
    out.invocations.append(state)
    i = 1
    while i < len(words):
        value = words[i].value
        if value in _FIND_WRITES and i + 1 < len(words):
            out.write(words[i + 1].text, f"find {value}")
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
                out.finding(
                    RiskKind.DYNAMIC_ARGUMENT,
                    f"find {value} puts each path it finds in place of {{}}",
                    " ".join(w.text for w in command),
                )
            prefix = [w.text for w in words[: i + 1]]
            out.pending.append((command, state.nested(prefix, open_ended=placeholder)))
        i = end + 1
    return DONE


HANDLERS: dict[str, Callable[[list[Word], Invocation, Unwrapped], Step]] = {
    "xargs": _xargs,
    "eval": _eval,
    "trap": _trap,
    "alias": _alias,
    "find": _find,
    "source": _always(RiskKind.SOURCE, "runs the commands in a file"),
    ".": _always(RiskKind.SOURCE, "runs the commands in a file"),
    "command": _strip("p", terminal="vV"),
    "builtin": _strip(""),
    "exec": _strip(
        "cl", "a", finding=(RiskKind.EXEC, "replaces the shell or redirects its file descriptors")
    ),
    "coproc": _strip("", finding=(RiskKind.COPROC, "starts a coprocess")),
    **dict.fromkeys(_SHELLS, _shell),
    **dict.fromkeys(_FOREIGN_SHELLS, _foreign_shell),
}
"""Handlers by program name (bare; ``/bin/bash`` is looked up as ``bash``)."""
