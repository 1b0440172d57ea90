"""Which program an argv really runs: wrappers followed, builtins checked.

Part of the shell analyser (`kfd.policy.shell`). `unwrap` takes the words of
one simple command and follows the programs that only start another program
(``sudo``, ``env``, ``timeout``, ``unshare``, ``flock``, ``watch``,
``busybox``... every one in ``programs/data/wrappers.toml``) to the command
doing the work, recording each wrapper it went through. Shells given ``-c
SCRIPT``, ``eval``, ``trap``, ``su -c``, ``script -c``, ``watch``, ``env -S``
and options that take shell code (``git rebase -x``) hand back their script
text for the analyser to parse; ``find -exec`` and ``docker run IMAGE CMD``
yield the command they run in addition to themselves. Another spelling of a
program is rewritten first (``git-push`` is ``git push``, ``npx`` is ``npm
exec``). Builtins are checked for the words bash would evaluate as code
(`kfd.policy.shell.builtin_words`).

Anything it cannot follow (an unknown wrapper option, a word only known at
run time before the command) stops the unwrapping *and* yields a finding, so
a wrapper can never hide the command it runs from a verdict. A program kfd
does not know at all is the engine's business: an argument naming a program
a rule restricts makes it ask (`kfd.policy.judge_bash`).
"""

from __future__ import annotations

import functools
import os
import re

from kfd.policy.programs.argv import Arg, args_of, parse, parse_argv
from kfd.policy.programs.identity import canonical
from kfd.policy.programs.wrappers import WrapperSpec, wrapper_for
from kfd.policy.shell.builtin_words import check_builtin
from kfd.policy.shell.gitwords import git_globals
from kfd.policy.shell.handlers import HANDLERS
from kfd.policy.shell.model import RiskKind
from kfd.policy.shell.steps import (
    DONE,
    Finding,
    Invocation,
    NestedScript,
    Step,
    Unwrapped,
    dynamic_word,
    unknown_option,
)
from kfd.policy.shell.words import Word

__all__ = ["Finding", "Invocation", "NestedScript", "Unwrapped", "forget_unwrapped", "unwrap"]

_MAX_STEPS = 64
"""Wrappers followed in one command (``nice nice nice ... rm``) before giving up."""
_MAX_NESTED = 8
"""Commands inside commands (``docker run img find -exec ...``) followed."""
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def unwrap(words: list[Word]) -> Unwrapped:
    """Follow wrappers in `words` to the programs they run (see the module docstring).

    Pure, so kept by the words: a line repeats its commands (``echo $(date) > outN``
    a hundred times). The result is shared: never change it."""
    return _unwrapped(tuple(words))


@functools.lru_cache(maxsize=4096)
def _unwrapped(words: tuple[Word, ...]) -> Unwrapped:
    out = Unwrapped()
    _unwrap(list(words), Invocation(), out, 0)
    return out


def forget_unwrapped() -> None:
    """Drop the unwrapped commands kept (`kfd.policy.engine.forget_words`)."""
    _unwrapped.cache_clear()


def _unwrap(words: list[Word], state: Invocation, out: Unwrapped, depth: int) -> None:
    step: Step = None
    for _ in range(_MAX_STEPS):
        if not words or words[0].value is None:
            break
        rewritten = canonical(words[0].value)
        if rewritten is not None:
            state.wrappers.append([words[0].text])
            words = [Word(w, w) for w in rewritten] + words[1:]
            continue
        step = _step(words, state, out)
        if step == DONE:
            break
        if isinstance(step, list):
            words = step
            break
        if step is None or step < 1 or step >= len(words):
            break
        state.wrappers.append([w.text for w in words[:step]])
        words = words[step:]
    else:
        out.finding(RiskKind.TOO_DEEP, "the command goes through more wrappers than kfd follows")
    if step != DONE and words:
        state.words = words
        out.invocations.append(state)
        if depth < _MAX_NESTED:
            _program_effects(words, state, out)
    pending, out.pending = out.pending, []
    for command, inner in pending:
        if depth < _MAX_NESTED:
            _unwrap(command, inner, out, depth + 1)


def _step(words: list[Word], state: Invocation, out: Unwrapped) -> Step:
    """What the first word makes of the words (see `kfd.policy.shell.steps`)."""
    value = words[0].value
    assert value is not None
    name = os.path.basename(value)
    handler = HANDLERS.get(name)
    if handler is not None:
        return handler(words, state, out)
    if name == "git":
        return git_globals(words, state, out)
    wrapper = wrapper_for(name)
    if wrapper is not None:
        return _wrapped(wrapper, words, state, out)
    if "/" not in value:
        out.findings.extend(check_builtin(words))
    return None


def _wrapped(spec: WrapperSpec, words: list[Word], state: Invocation, out: Unwrapped) -> Step:
    """A wrapper of ``wrappers.toml``: its options, then the command it runs."""
    label = words[0].text
    if spec.privilege:
        out.finding(
            RiskKind.PRIVILEGE,
            f"{label} runs the command with other privileges, or outside the sandbox",
            label,
        )
    for i, word in enumerate(words[1:], 1):
        if word.value is None and not _operand_like(word):
            out.findings.append(dynamic_word(words, i))
            return None
        if word.value is None or not word.value.startswith("-") or word.value == "--":
            break
    parsed = parse(spec.program, _args(words[1:]))
    if parsed.unknown or parsed.ambiguous:
        option = (parsed.unknown or list(parsed.ambiguous))[0]
        out.findings.append(unknown_option(label, option))
        return None
    options = spec.program.options
    terminal = {options[s].name for s in spec.terminal if s in options}
    if terminal & set(parsed.options):
        return None
    if spec.clears & set(parsed.options) or (
        spec.clears and len(words) > 1 and words[1].value == "-"
    ):
        out.finding(
            RiskKind.ENV_ASSIGNMENT,
            f"{label} starts the command with an empty environment, without the settings "
            "kfd gives every command",
            label,
        )
    for option, value in parsed.values:
        if option in spec.unsets:
            state.assignments.append((value, Word("", "")))  # removed: as if set to anything
            continue
        state.wrapper_words.append(value)
        if option in spec.runs:
            out.finding(
                RiskKind.PROGRAM_OPTION,
                f"{label} {_spelled(option)} {value!r} runs a program or loads code",
                value,
            )
        if option in spec.chdir:
            state.chdir.append(value)
        if option in spec.writes and value[:1] in ("|", "!"):
            # `strace -o '|cmd'`: output piped to a shell command, not written to a file.
            out.finding(
                RiskKind.PROGRAM_OPTION,
                f"{label} {_spelled(option)} {value!r} pipes its output to a command",
                value,
            )
            out.script(value[1:], [label, _spelled(option)], state)
        elif option in spec.writes:
            out.write(value, f"{label} {_spelled(option)}")
    scripts = [v for o, v in parsed.values if o in spec.scripts]
    for script in scripts:
        out.script(script, [label], state)
    for option, value in parsed.values:
        if option in spec.split and _SPLIT_OWN_WAY.search(value):
            # `env -S` splits by rules of its own: `\'` inside single quotes, `#`
            # comments, `${VAR}`, `\_` (round 25: `cat 'x\' ' secrets/k #'` read .env
            # and secrets/k where kfd read one odd word).
            out.finding(
                RiskKind.UNPARSED,
                f"{label} --{option} splits {value!r} by rules of its own",
                value,
            )
        elif option in spec.split:
            out.script(value, [label, f"--{option}"], state)
    start = 1 + parsed.positions[0] if parsed.positions else len(words)
    if spec.assignments:
        start = _assignments(words, start, state, out, any_name=spec.assignments == "any")
    for _ in range(spec.before):
        if start >= len(words):
            return None
        if words[start].value is None:
            out.findings.append(dynamic_word(words, start))
            return None
        state.wrapper_words.append(words[start].text)
        if spec.creates_before and (start + 1 < len(words) or not words[start].text.isdigit()):
            out.write(words[start].text, label)  # (a number alone is a descriptor: flock 9)
        start += 1
    script_spellings = {s for s, o in options.items() if o.name in spec.scripts}
    if start + 1 < len(words) and words[start].value in script_spellings:
        # `flock FILE -c CMD`: the script option may follow the wrapper's operands.
        code = words[start + 1]
        if code.value is None:
            out.findings.append(dynamic_word(words, start + 1))
            return None
        out.script(code.value, [w.text for w in words[: start + 1]], state)
        return DONE
    if spec.writes_operand:
        target = words[start].text if start < len(words) else spec.writes_operand
        out.write(target, label)
    if scripts or any(o in spec.split for o, _ in parsed.values):
        return DONE if spec.command == "none" or start >= len(words) else start
    if start >= len(words):
        if spec.optional:
            out.finding(
                RiskKind.SHELL_STDIN,
                f"{label} without a command runs a shell reading standard input",
                label,
            )
        return None
    if spec.command == "none":
        return None
    if spec.command == "joined" and not (set(parsed.options) & spec.argv_options):
        return _joined(words, start, state, out)
    return start


_SPLIT_OWN_WAY = re.compile(r"[\\'\"#$]")
"""What `env -S` reads otherwise than a shell: only plain words are read as the shell's."""


def _joined(words: list[Word], start: int, state: Invocation, out: Unwrapped) -> Step:
    """``watch 'a b'`` and ``watch a b`` run ``sh -c 'a b'``: the words joined are a script."""
    rest = words[start:]
    dynamic = [w for w in rest if w.value is None]
    if dynamic:
        out.finding(
            RiskKind.DYNAMIC_COMMAND,
            f"the command {words[0].text} runs is not static ({dynamic[0].reason})",
            dynamic[0].source,
        )
        return None
    out.script(" ".join(w.text for w in rest), [w.text for w in words[:start]], state)
    return DONE


def _operand_like(word: Word) -> bool:
    """Whether a non-static word starts with literal text that cannot make it an option."""
    return word.source[:1].isalnum() or word.source[:1] in "_./"


def _assignments(
    words: list[Word], index: int, state: Invocation, out: Unwrapped, *, any_name: bool
) -> int:
    """Consume `NAME=value` words (as `env` and `sudo` accept them) from `index`."""
    if index < len(words) and words[index].value == "-":
        index += 1
    while index < len(words):
        word = words[index]
        name, eq, rest = word.text.partition("=")
        valid = bool(name) if any_name else bool(_ASSIGNMENT.fullmatch(name))
        if not eq or not valid:
            break
        if word.value is None and not _ASSIGNMENT.fullmatch(name):
            break
        if word.value is None:
            out.finding(
                RiskKind.DYNAMIC_COMMAND,
                f"{word.source!r} is not static ({word.reason}); unquoted, it can split into "
                f"several words and change which program {words[0].text} runs",
                word.source,
            )
        value = Word(rest, rest if word.value is not None else None, word.reason)
        state.assignments.append((name, value))
        index += 1
    return index


def _program_effects(words: list[Word], state: Invocation, out: Unwrapped) -> None:
    """What the effective command's own options make it run or write (``meaning.toml``)."""
    head = words[0].value
    if head is None or len(words) < 2:
        return
    argv = tuple([w.source if w.value is None else w.value for w in words])
    dynamic = frozenset([i for i, w in enumerate(words) if w.value is None])
    parsed = parse_argv(os.path.basename(head), argv, dynamic, False)
    if parsed is None:
        return
    current = parsed.current
    label = " ".join([os.path.basename(words[0].text), *parsed.path])
    for name, values in parsed.options.items():
        effects = current.effect(name)
        for value in values:
            if "runs" in effects or "script" in effects:
                out.finding(
                    RiskKind.PROGRAM_OPTION,
                    f"{label} {_spelled(name)} runs a program or shell code given on the "
                    "command line",
                    value or name,
                )
            if "script" in effects and value:
                out.script(value, [label, _spelled(name)], state)
            if "writes" in effects and value:
                out.write(value, f"{label} {_spelled(name)}")
    if "runs" in current.traits and not (parsed.path and "runs" in parsed.spec.traits):
        out.finding(RiskKind.PROGRAM_OPTION, f"{label} runs shell commands", label)
    if parsed.command:
        command = [Word(a.text, a.text if a.static else None, "expansion") for a in parsed.command]
        out.pending.append((command, state.nested([w.text for w in words])))


def _args(words: list[Word]) -> list[Arg]:
    """Words as the option parser takes them (without the properties' cost: a command
    may have thousands)."""
    texts = [w.source if w.value is None else w.value for w in words]
    return args_of(texts, [w.value is not None for w in words])


def _spelled(name: str) -> str:
    return f"-{name}" if len(name) == 1 else f"--{name}"
