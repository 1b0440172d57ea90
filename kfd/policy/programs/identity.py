"""What program a command name stands for, by name alone.

``git-push`` and ``/usr/lib/git-core/git-push`` are ``git push``; ``npx`` is
``npm exec``; ``yarnpkg`` is ``yarn``. The shell analyser rewrites such
names before it matches anything, so a rule about ``git push`` holds however
git is reached. Where a name does not say what runs (a symlink in the
workspace, a copy of a program) the gather step looks at the file
(`kfd.policy.line_facts`). Pure: no I/O.
"""

from __future__ import annotations

import os

__all__ = ["GIT_HELPER_PREFIX", "INTERPRETERS", "canonical"]

GIT_HELPER_PREFIX = "git-"
"""``git-<command>`` programs run as ``git <command>`` (git's exec path, git-core)."""

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "npx": ("npm", "exec"),
    "pnpx": ("pnpm", "dlx"),
    "yarnpkg": ("yarn",),
    "nodejs": ("node",),
}

INTERPRETERS = frozenset(
    [
        "sh",
        "bash",
        "rbash",
        "zsh",
        "dash",
        "ksh",
        "ksh93",
        "mksh",
        "ash",
        "yash",
        "posh",
        "fish",
        "csh",
        "tcsh",
        "pwsh",
        "powershell",
        "nu",
        "python",
        "python2",
        "python3",
        "pypy",
        "pypy3",
        "node",
        "nodejs",
        "deno",
        "bun",
        "ruby",
        "perl",
        "php",
        "lua",
        "luajit",
        "tclsh",
        "wish",
        "R",
        "Rscript",
        "julia",
        "awk",
        "gawk",
        "mawk",
        "nawk",
        "sed",
        "osascript",
        "java",
        "groovy",
        "scala",
        "kotlin",
        "swift",
        "dotnet",
        "erl",
        "elixir",
        "escript",
        "racket",
        "guile",
        "sbcl",
        "clisp",
        "gdb",
    ]
)
"""Programs that run code given on their own command line or in files (`python -c`,
`awk '{system(...)}'`): what that code does is contained by the sandbox, never
seen by a rule about another command."""


def canonical(program: str) -> tuple[str, ...] | None:
    """The words ``program`` stands for when it is another spelling of a command
    (``git-push`` → ``("git", "push")``), or None when it is itself."""
    name = os.path.basename(program)
    if name.startswith(GIT_HELPER_PREFIX) and len(name) > len(GIT_HELPER_PREFIX):
        return ("git", name[len(GIT_HELPER_PREFIX) :])
    return _SYNONYMS.get(name)
