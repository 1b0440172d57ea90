"""The hooks directories ``core.hooksPath`` names: read-only in the sandbox, as ``.git/hooks``.

A project that keeps its hooks in the work tree (husky's ``.husky``,
``.githooks``) names that directory in the repository's configuration or in
the user's own: the host's next ``git commit`` runs what is there. In the
workspace, that directory is as writable as any other unless the sandbox
makes it read-only; where it does not exist yet, a command may not leave it
behind (`kfd.sandbox.sweep`).

Every protected repository's are: the workspace's own and each one below it
(`kfd.sandbox.layout`), a relative value of the user's taken from each work
tree (``.githooks`` is ``clones/app/.githooks`` for ``git -C clones/app``).

The configuration is read with kfd's own parser (`kfd.policy.gitconfig`),
never by running git. Every value found is protected, whichever file git
would let win: protecting one more directory costs a bind mount; missing
the one git uses runs a program on the host. Not followed: ``include.path``
in these files, ``GIT_CONFIG_GLOBAL`` and kin in the environment. A value
naming the work tree itself (``core.hooksPath = .``) protects the hook names
at its top, not the whole tree.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from kfd.policy.gitconfig import hooks_path_values
from kfd.policy.hookspath import guarded, hooks_path


def configuration_files(
    home: str, environ: Mapping[str, str], git_dirs: Iterable[str]
) -> list[str]:
    """The files git reads ``core.hooksPath`` from for a repository whose git
    directories (its own and the common one) are ``git_dirs``: the system's, the
    user's (both places) and the repository's."""
    xdg = environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    files = ["/etc/gitconfig", os.path.join(xdg, "git", "config"), os.path.join(home, ".gitconfig")]
    for git_dir in git_dirs:
        files += [os.path.join(git_dir, "config"), os.path.join(git_dir, "config.worktree")]
    return list(dict.fromkeys(files))


def hooks_directories(work_tree: str, files: Iterable[str], home: str) -> list[str]:
    """The real path of each directory ``core.hooksPath`` names in ``files`` for the
    work tree at ``work_tree`` (`kfd.policy.hookspath`), in the order found; for a
    value naming the work tree itself, the hook names in it."""
    found: dict[str, None] = {}
    real_tree = os.path.realpath(work_tree)
    for name in files:
        for value in hooks_path_values(name):
            if (directory := hooks_path(value, real_tree, home)) is not None:
                found.update(dict.fromkeys(guarded(directory, real_tree)))
    return list(found)
