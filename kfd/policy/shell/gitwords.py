"""git's own global options, and configuration that makes git run programs.

Part of the shell analyser (`kfd.policy.shell.unwrap`). ``git -C dir -c k=v
--no-pager push`` runs ``git push`` in ``dir`` with ``k=v``: the globals are
stripped so rules match the subcommand, the directory is recorded (paths are
resolved from it), and configuration given on the command line is a risk:
``core.fsmonitor``, ``core.pager``, ``alias.*``, ``core.sshCommand``... run
programs of the caller's choosing. What git's subcommand options do is data
(``programs/data/meaning.toml``), read by `kfd.policy.shell.unwrap`.
"""

from __future__ import annotations

import re

from kfd.policy.shell.model import RiskKind
from kfd.policy.shell.steps import Invocation, Step, Unwrapped, dynamic_word
from kfd.policy.shell.words import Word

__all__ = ["RISKY_KEY", "git_globals"]

_INERT = frozenset(
    [
        "-p",
        "--paginate",
        "-P",
        "--no-pager",
        "--no-replace-objects",
        "--no-lazy-fetch",
        "--no-optional-locks",
        "--no-advice",
        "--literal-pathspecs",
        "--glob-pathspecs",
        "--noglob-pathspecs",
        "--icase-pathspecs",
        "--bare",
    ]
)
_VALUED = frozenset(
    {
        "-C",
        "-c",
        "--git-dir",
        "--work-tree",
        "--namespace",
        "--config-env",
        "--exec-path",
        "--super-prefix",
    }
)
RISKY_KEY = re.compile(
    r"(core\.(fsmonitor|pager|sshcommand|editor|hookspath|askpass|gitproxy|alternaterefscommand)"
    r"|pager\..*|alias\..*|.*\.(command|driver|program|helper|textconv|clean|smudge|process|path"
    r"|cmd|uploadpack|receivepack|proxy|packobjectshook)|diff\.external|sequence\.editor"
    r"|include(if)?\b.*|gpg\..*|credential\..*|protocol\..*|url\..*|help\.autocorrect"
    r"|uploadpack\..*|receive\..*|remote\..*\.(vcs|pushurl|url))",
    re.IGNORECASE,
)
"""Configuration keys that make git run a program (or reach another one)."""
_COMMAND_TRANSPORTS = ("ext::", "fd::")
"""Remote URLs whose transport is a command (``ext::sh -c …``): git runs them if the
repository's configuration allows the protocol."""


def git_globals(words: list[Word], state: Invocation, out: Unwrapped) -> Step:
    """Strip git's global options: ``git -C d push`` is ``git push`` run in ``d``."""
    i = 1
    while i < len(words):
        value = words[i].value
        if value is None:
            out.findings.append(dynamic_word(words, i))
            return None
        name, eq, attached = value.partition("=")
        if value in _INERT:
            i += 1
            continue
        if name not in _VALUED or (name in ("-C", "-c") and eq):
            if name == "--exec-path" and not eq:
                out.finding(
                    RiskKind.GIT_CONFIG,
                    "git --exec-path changes where git finds the programs it runs",
                    value,
                )
                i += 1
                continue
            break
        if eq:
            argument, i = attached, i + 1
        elif i + 1 >= len(words):
            break
        elif words[i + 1].value is None:
            out.findings.append(dynamic_word(words, i + 1))
            return None
        else:
            argument, i = words[i + 1].text, i + 2
        if name == "-C":
            state.chdir.append(argument)
        elif name == "--namespace":
            continue
        else:
            state.git_config.append(argument if name == "-c" else f"{name}={argument}")
            state.wrapper_words.append(argument)
            out.finding(
                RiskKind.GIT_CONFIG,
                f"git {name} {argument} changes configuration or the repository, which can run "
                "programs (core.fsmonitor, core.pager, core.sshCommand, aliases, hooks, ...)",
                argument,
            )
    effective = [words[0], *words[i:]]
    if i > 1:
        state.wrappers.append([w.text for w in words[:i]])
    for word in effective[2:]:
        if "::" in word.source and word.text.startswith(_COMMAND_TRANSPORTS):
            out.finding(
                RiskKind.PROGRAM_OPTION,
                f"git's {word.text.split('::', 1)[0]}:: transport runs a command: {word.text!r}",
                word.text,
            )
    if len(effective) > 2 and effective[1].value == "config":
        keys = [w.text for w in effective[2:]]
        if any(RISKY_KEY.fullmatch(k) for k in keys):
            out.finding(
                RiskKind.GIT_CONFIG,
                "git config touches a key that makes git run a program",
                " ".join(keys),
            )
    return effective
