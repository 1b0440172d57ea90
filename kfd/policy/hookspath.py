"""Where ``core.hooksPath`` sends git for hooks, as git itself reads the value.

One reading for both sides: the decisions (writing there always asks:
`kfd.policy.gitconfig.hooks_directories`) and the sandbox (read-only there:
`kfd.sandbox.hookspath`). The value is a path git expands as it does every
path-valued key (``interpolate_path`` in git's ``path.c``): ``~`` and ``~/``
are the home, ``~name/`` that user's home; a relative value is relative to
the directory hooks run in, the top of the work tree.
"""

from __future__ import annotations

import os
import pwd

__all__ = ["GIT_HOOKS", "expand", "guarded", "hooks_path"]

GIT_HOOKS = (
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-rebase",
    "post-checkout",
    "post-merge",
    "pre-push",
    "pre-receive",
    "update",
    "proc-receive",
    "post-receive",
    "post-update",
    "reference-transaction",
    "push-to-checkout",
    "pre-auto-gc",
    "post-rewrite",
    "sendemail-validate",
    "fsmonitor-watchman",
    "p4-changelist",
    "p4-prepare-changelist",
    "p4-post-changelist",
    "p4-pre-submit",
    "post-index-change",
)
"""Every hook githooks(5) names: what git runs from a hooks directory."""


def expand(value: str, home: str) -> str | None:
    """``value`` with a leading ``~``, ``~/`` or ``~name/`` expanded as git does; None
    when git cannot (an unknown user: git stops with an error, running nothing)."""
    if not value.startswith("~"):
        return value
    user, slash, rest = value[1:].partition("/")
    if not user:
        return home.rstrip(os.sep) + slash + rest if home else None
    try:
        directory = pwd.getpwnam(user).pw_dir
    except (KeyError, ValueError):
        return None
    return directory.rstrip(os.sep) + slash + rest


def hooks_path(value: str, work_tree: str, home: str) -> str | None:
    """The real path of the directory ``core.hooksPath`` ``value`` names for the work
    tree at ``work_tree``, or None (an empty value or one git cannot expand)."""
    expanded = expand(value, home) if value else None
    if not expanded:
        return None
    return os.path.realpath(os.path.join(work_tree, expanded))


def guarded(directory: str, work_tree: str) -> list[str]:
    """What to guard for hooks directory ``directory`` of the work tree at
    ``work_tree``: the directory, or, when it is the work tree itself
    (``core.hooksPath = .``), the hook names in it: guarding the whole tree would
    make every file ask, and git runs nothing else from there."""
    if directory != work_tree:
        return [directory]
    return [os.path.join(directory, name) for name in GIT_HOOKS]
