"""Static analysis of bash command lines for permission decisions: the parse step.

`analyze(line)` parses a command line with tree-sitter's bash grammar and lists
every simple command it would run, however it is composed: `&&`, `||`, `;`,
`|`, `&`, newlines, subshells, `{ …; }` groups, `!`, the bodies and conditions
of `if`/`while`/`until`/`for`/`select`/`case`, function bodies, command and
process substitutions, and the scripts of `bash -c`, `eval`, `su -c`,
`script -c`, `watch` and `trap`. Each command is unwrapped to the program
doing the work (`kfd.policy.shell.unwrap`: `sudo`, `env`, `timeout`,
`unshare`, `xargs`, `find -exec`, `git -C`, `docker run IMAGE CMD`...) and its
words are given after quote removal. Anything that means a human should
look is a `Risk`.

The guarantee a permission engine builds on: **an allowed verdict is only
possible if every simple command is fully static and accounted for**. When
`analyze` returns no risks,

- `commands` holds every program the line can run, each with the exact argv
  bash would pass (`static` is true for all of them; a statement repeated in
  the same context is listed once), and
- nothing in the line can run code the analyzer has not listed: no command or
  process substitution, expansion in a command position, `eval`, `source`,
  function or alias definition, sensitive variable assignment, file write,
  parse error, syntax the analyzer does not know, or word bash would
  evaluate as code (a name with a subscript, arithmetic on names, an
  indirect expansion, `compgen -C`, `mapfile -C`...: `kfd.policy.shell.evaluation`).

Modules: `model` (the values), `words` (quote removal, evaluation),
`evaluation` (what bash evaluates from data), `lookalike`, `repair`
(tree-sitter quirks), `runs` (long runs of plain words given to tree-sitter
as one), `fastpath` (provably simple lines read without tree-sitter),
`parse` (the syntax walker, with `plain` for the fast path's statements,
`simple` for simple commands and `redirects`), `unwrap` (wrappers, with
`handlers`, `gitwords`, `builtin_words`, `steps`).

Limits, by design:

- A program that runs code from its own arguments or files (`python -c`,
  `node -e`, `awk`, `make`, `npm run`, `./script.sh`) is one command: what
  that code does is contained by the sandbox, not seen by rules about other
  commands. (An argument that names a program a rule restricts asks: see
  `kfd.policy.judge_bash`.)
- Expansions are never evaluated: a variable, glob, tilde or brace expansion
  makes its word non-static, even when harmless. Plain globs are expanded
  later against the file system (`kfd.policy.line_facts`).
- Each line is analyzed alone: every `bash` call starts a new shell.
"""

from __future__ import annotations

import threading

import cachetools

from kfd.policy.shell.lookalike import suspicious_characters
from kfd.policy.shell.model import (
    Assignment,
    Redirect,
    Risk,
    RiskKind,
    ShellAnalysis,
    SimpleCommand,
    command_key,
)
from kfd.policy.shell.parse import MAX_DEPTH, Collector, Context

__all__ = [
    "MAX_COMMAND_BYTES",
    "MAX_DEPTH",
    "Assignment",
    "Redirect",
    "Risk",
    "RiskKind",
    "ShellAnalysis",
    "SimpleCommand",
    "analyze",
]

MAX_COMMAND_BYTES = 64 * 1024
"""Longer lines are not parsed: they get a single `too_long` risk."""
_KEPT_WEIGHT = 4096
"""Words, risks and redirections kept by `analyze` at the most, all lines together:
a thousand short lines, or a dozen of 4 KB with hundreds of words each. Bounded by
weight, not by lines: every object kept is one more the garbage collector walks
through at each full collection (256 long lines kept cost a 200 ms pause)."""


def _weight(analysis: ShellAnalysis) -> int:
    # Words, not commands: a 4 KB `git add` of 349 files is one command whose words
    # the collector walks; counted as one, two thousand of them were kept and each
    # full collection took 12-24 ms, the p99 of such lines (1.5 ms counted by words).
    words = sum(len(command.argv) for command in analysis.commands)
    return 1 + words + len(analysis.risks) + len(analysis.redirects)


@cachetools.cached(
    cachetools.LRUCache(maxsize=_KEPT_WEIGHT, getsizeof=_weight), lock=threading.Lock()
)
def analyze(command: str, *, fast_path: bool = True, runs: bool = True) -> ShellAnalysis:
    """List the simple commands `command` would run and the risks it carries.

    Pure, so kept for the lines seen last (`_KEPT_WEIGHT`): a line decided again (after an
    approval, by ``kfd explain``, the same command in the next turn) is not
    parsed again. The result is shared: never change it. ``fast_path=False``
    parses every script with tree-sitter, even a provably simple one
    (`kfd.policy.shell.fastpath`), and ``runs=False`` gives tree-sitter every word
    of a long run of plain words (`kfd.policy.shell.runs`): the same answer,
    slower; for tests.
    """
    collector = Collector(command, fast_path=fast_path, runs=runs)
    size = len(command)
    if (
        size > MAX_COMMAND_BYTES
        or len(command.encode("utf-8", "surrogatepass")) > MAX_COMMAND_BYTES
    ):
        collector.risk(
            RiskKind.TOO_LONG,
            f"the command line is longer than {MAX_COMMAND_BYTES} bytes and was not analyzed",
        )
    else:
        for description in suspicious_characters(command):
            collector.risk(RiskKind.LOOKALIKE, f"the command line contains {description}")
        collector.script(command, Context(), 0)
    risks = list(dict.fromkeys(collector.risks))
    return ShellAnalysis(
        command,
        _distinct(collector.commands),
        risks,
        collector.redirects,
        collector.expansions,
        collector.inputs,
    )


def _distinct(commands: list[SimpleCommand]) -> list[SimpleCommand]:
    """``commands`` but those met again with other files written by redirection only
    (`ShellAnalysis.commands`): the first of each. The walk leaves out most of them
    already (`kfd.policy.shell.plain.PlainWalk.emit_again`); this takes the rest."""
    if len(commands) < 2:
        return commands
    seen: set[tuple[bytes, tuple[Redirect, ...]]] = set()
    distinct: list[SimpleCommand] = []
    for command in commands:
        reads = tuple(r for r in command.redirects if r.direction == "read")
        key = (command_key(command), reads)
        if key not in seen:
            seen.add(key)
            distinct.append(command)
    return distinct
