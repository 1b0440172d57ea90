"""The words of a bash builtin that bash would evaluate as code, found.

Part of the shell analyser (`kfd.policy.shell.unwrap`). For each builtin,
``programs/data/builtins.toml`` says which words name variables (their array
subscripts are evaluated), which are arithmetic, which options run code
(``compgen -C``, ``mapfile -C``, ``bind -x``) and which change how later
words are read (``shopt -s dotglob``, ``enable -f``). Every such word must be
proven inert (`kfd.policy.shell.evaluation`) or it is a finding: fail closed.
"""

from __future__ import annotations

from kfd.policy.programs.builtins import BuiltinSpec, builtin_for
from kfd.policy.shell.evaluation import (
    literal_arithmetic,
    plain_assignment_target,
    plain_name,
    sensitive_variable,
)
from kfd.policy.shell.model import RiskKind
from kfd.policy.shell.steps import Finding
from kfd.policy.shell.words import Word

__all__ = ["check_builtin"]

_TEST_NAME_OPERATORS = frozenset({"-v", "-R"})


def check_builtin(words: list[Word]) -> list[Finding]:
    """What in this builtin call (``words[0]`` is its name) may evaluate code."""
    head = words[0].value
    spec = builtin_for(head) if head is not None else None
    if spec is None or head is None:
        return []
    if head in ("test", "["):
        return _test(words)
    if head == "set":
        return _set(words, spec)
    if head == "shopt":
        return _shopt(words, spec)
    if spec.handled:
        return []
    options, operands, problems = _options(words, spec)
    found = list(problems)
    label = head
    exported = head == "export" or any(letter == "x" for letter, _ in options)
    for letter, value in options:
        kind = spec.risky.get(letter)
        if kind is not None and (letter != "W" or _expands(value)):
            found.append(_risk(kind, f"{label} -{letter} makes bash evaluate code or change state"))
        if letter in spec.name_options:
            found += _name(value, f"{label} -{letter}")
    safe = any(letter in spec.safe_with for letter, _ in options) or (
        spec.safe_alone and not operands and not options
    )
    if spec.risk and not safe:
        found.append(_risk(spec.risk, f"{label} can run code or change how names resolve"))
    if spec.names == "operands":
        for word in operands:
            found += _name(word, label, assignment=True, exported=exported)
    elif spec.names == "second" and len(operands) > 1:
        found += _name(operands[1], label)
    if spec.arithmetic:
        for word in operands:
            if word.value is None or not literal_arithmetic(word.value):
                found.append(
                    Finding(
                        RiskKind.ARITHMETIC,
                        f"{label} evaluates {word.source!r} as arithmetic: a name in it is "
                        "evaluated as code (x='a[$(cmd)]'); only literal arithmetic is inert",
                        word.source,
                    )
                )
    return found


def _options(
    words: list[Word], spec: BuiltinSpec
) -> tuple[list[tuple[str, Word]], list[Word], list[Finding]]:
    """(option letter, value) pairs, the operands, and words that hide options."""
    options: list[tuple[str, Word]] = []
    problems: list[Finding] = []
    i = 1
    while i < len(words):
        word = words[i]
        text = word.value
        if text is None:
            evaluates = spec.names or spec.name_options or spec.risky or spec.arithmetic
            if evaluates and word.source[:1] in "-+$\"'":
                problems.append(
                    Finding(
                        RiskKind.ARITHMETIC,
                        f"{word.source!r} is only known when {words[0].text} runs: it may be "
                        "an option or a name bash evaluates",
                        word.source,
                    )
                )
            break
        if text == "--":
            i += 1
            break
        if len(text) < 2 or text[0] not in "-+" or (text[0] == "+" and spec.name != "declare"):
            break
        j = 1
        while j < len(text):
            letter = text[j]
            if letter in spec.valued:
                rest = text[j + 1 :]
                if rest:
                    options.append((letter, Word(rest, rest)))
                elif i + 1 < len(words):
                    i += 1
                    options.append((letter, words[i]))
                break
            options.append((letter, Word("", "")))
            j += 1
        i += 1
    return options, words[i:], problems


def _name(
    word: Word, label: str, *, assignment: bool = False, exported: bool = False
) -> list[Finding]:
    """A word naming a variable must be plain, and setting it must not change what runs."""
    # `declare x="$y"`: the value is only known at run time, the name is not.
    text = word.source if word.value is None and assignment else word.value
    plain = plain_assignment_target if assignment else plain_name
    if text is None or not plain(text):
        return [
            Finding(
                RiskKind.ARITHMETIC,
                f"{label} names the variable {word.source!r}: bash evaluates the subscript of a "
                "name, and a name only known at run time may hide one (a[$(cmd)])",
                word.source,
            )
        ]
    base = text.split("=", 1)[0].rstrip("+").split("[", 1)[0]
    if sensitive_variable(base, exported=exported):
        return [
            Finding(
                RiskKind.ENV_ASSIGNMENT,
                f"sets {base}, which programs may read to decide what to run or load "
                "(PATH, LD_PRELOAD, GIT_*, PAGER, ... are common bypasses)",
                base,
            )
        ]
    return []


def _expands(word: Word) -> bool:
    """Whether a ``compgen -W`` word list holds an expansion bash runs when it completes."""
    text = word.text
    return word.value is None or "$" in text or "`" in text


def _test(words: list[Word]) -> list[Finding]:
    """``test -v name`` and ``[ -v name ]`` evaluate the subscript of ``name``."""
    found: list[Finding] = []
    for i, word in enumerate(words[1:-1], 1):
        if word.value in _TEST_NAME_OPERATORS:
            found += _name(words[i + 1], f"{words[0].text} {word.value}")
    return found


def _set(words: list[Word], spec: BuiltinSpec) -> list[Finding]:
    """``set`` with options that change nothing kfd relies on; ``set -- args`` is inert."""
    found: list[Finding] = []
    i = 1
    while i < len(words):
        word = words[i]
        text = word.value
        if text is None:
            return [_risk("shell_state", f"set {word.source!r} is only known when it runs")]
        if text == "--" or text[:1] not in "-+" or text in ("-", "+"):
            break
        if text in ("-o", "+o"):
            if i + 1 < len(words):
                i += 1
                value = words[i].value
                if value is None or value not in spec.allowed:
                    found.append(
                        _risk("shell_state", f"set {text} {words[i].text} changes the shell")
                    )
        else:
            for letter in text[1:]:
                if letter == "o" and i + 1 < len(words):
                    i += 1  # `set -euo pipefail`: the cluster's o takes the next word
                    value = words[i].value
                    if value is None or value not in spec.allowed:
                        found.append(
                            _risk("shell_state", f"set -o {words[i].text} changes the shell")
                        )
                elif letter not in spec.allowed:
                    found.append(
                        _risk("shell_state", f"set {text} changes how the shell reads words")
                    )
                    break
        i += 1
    return found


def _shopt(words: list[Word], spec: BuiltinSpec) -> list[Finding]:
    """``shopt -s dotglob`` (and any option kfd relies on) changes what globs match."""
    setting = any(w.value in ("-s", "-u") for w in words[1:])
    if not setting:
        return []
    for word in words[1:]:
        if word.value is None or (word.value[:1] != "-" and word.value not in spec.allowed):
            return [
                _risk(
                    "shell_state",
                    f"shopt {word.text} changes how the shell reads later words "
                    "(which files a glob matches, what a name runs)",
                )
            ]
    return []


def _risk(kind: str, message: str) -> Finding:
    return Finding(RiskKind(kind), message)
