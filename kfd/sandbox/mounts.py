"""The bubblewrap arguments of one command: a pure function of its `Layout`.

Order matters: a later mount covers an earlier one, a mount point inside
a hidden directory is created in that directory's empty tmpfs, and a bind's
source is the host's (a read-only bind of ``~/.config`` brings back the
``~/.config/gcloud`` a tmpfs hid in the sandbox). So: the base (everything
read-only, private ``/tmp``), then what is hidden, then the writable places
(the cache home, the workspace), then what is read-only inside the workspace,
then what is hidden inside it, and the cache home again where it lies in
there.
"""

from __future__ import annotations

import os

from kfd.sandbox.layout import GitDir, Layout

GIT_WRITABLE = frozenset(
    {
        "objects",
        "refs",
        "logs",
        "index",
        "HEAD",
        "ORIG_HEAD",
        "FETCH_HEAD",
        "MERGE_HEAD",
        "MERGE_MSG",
        "MERGE_MODE",
        "MERGE_RR",
        "MERGE_AUTOSTASH",
        "AUTO_MERGE",
        "CHERRY_PICK_HEAD",
        "REVERT_HEAD",
        "REBASE_HEAD",
        "BISECT_LOG",
        "BISECT_START",
        "BISECT_EXPECTED_REV",
        "BISECT_ANCESTORS_OK",
        "BISECT_NAMES",
        "BISECT_TERMS",
        "BISECT_FIRST_PARENT",
        "BISECT_RUN",
        "COMMIT_EDITMSG",
        "TAG_EDITMSG",
        "SQUASH_MSG",
        "NOTES_MERGE_PARTIAL",
        "NOTES_MERGE_REF",
        "NOTES_MERGE_WORKTREE",
        "packed-refs",
        "shallow",
        "rebase-merge",
        "rebase-apply",
        "sequencer",
        "rr-cache",
        "lost-found",
        "gc.pid",
        "gc.log",
        # Data, read by nothing that runs a program (info: exclude, attributes that can
        # only name drivers the read-only config defines): not worth a mount.
        "description",
        "branches",
        "info",
    }
)
"""What ``git add``, ``commit``, ``checkout``, ``stash``, ``merge``, ``rebase`` and
``bisect`` write at the top of a git directory, and inert data. Everything else
there (``config``, ``hooks``, ``worktrees``, ``modules``, ``commondir``,
``remotes``, names git may add later) is read-only: deny by default; one that
did not exist, and that a command creates, is removed when it ends
(`kfd.sandbox.gitstate`). Each
read-only entry is a bind mount, which costs about 0.3 ms of wall time."""


PROC_READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs")
"""Parts of the sandbox's ``/proc`` that set the host's kernel, not the sandbox's:
read-only (the list container runtimes keep read-only). bubblewrap covers some of
them only where it finds them writable as it starts, and as root it passed over
``/proc/sys``: a command set ``kernel.core_pattern`` to a workspace script and
crashed, and the kernel ran the script as root on the host, outside every
namespace. Dropped capabilities do not help: sysctl files are checked by owner.
Each is the sandbox's own ``/proc`` (mounted just before), bound read-only."""


def base(network: bool) -> list[str]:
    """The namespaces and mounts of every sandbox, before anything of the workspace's."""
    args = [
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        *(arg for name in PROC_READ_ONLY for arg in ("--ro-bind-try", name, name)),
        "--tmpfs",
        "/tmp",
    ]
    if not network:
        args.insert(1, "--unshare-net")
    return args


def arguments(layout: Layout, *, network: bool) -> list[str]:
    """Every bubblewrap option for a command in ``layout.workspace`` (no program, no ``--``)."""
    workspace = layout.workspace
    args = base(network)
    covered = [path for path in ("/tmp", layout.runtime_dir) if path]
    if layout.runtime_dir:
        args += ["--tmpfs", layout.runtime_dir]
    for directory in layout.programs:
        args += ["--ro-bind", directory, directory]  # a configured program's, under /tmp
    inside: list[tuple[str, bool]] = []
    for path, is_dir in layout.hidden:
        if _under(workspace, path):
            continue  # the user chose to work in there
        if _under(path, workspace):
            inside.append((path, is_dir))
        elif not any(_under(path, other) for other in covered) or any(
            _under(path, directory) for directory in layout.programs
        ):
            args += _hide(path, is_dir)
    for directory in layout.socket_dirs:
        args += ["--tmpfs", directory]  # only sockets in there: an empty tmpfs is free
    for socket in layout.sockets:
        args += ["--ro-bind", os.devnull, socket]
    for socket in layout.allowed_sockets:
        if any(_under(socket, other) for other in covered):
            args += ["--bind", socket, socket]  # back in reach, under a hidden directory
    cache_inside = bool(layout.cache_home) and _under(layout.cache_home, workspace)
    if layout.cache_home and not cache_inside:
        args += ["--bind", layout.cache_home, layout.cache_home]
    args += ["--bind" if layout.writable else "--ro-bind", workspace, workspace]
    if layout.writable:
        args += _protections(layout)
    for path, is_dir in inside:
        args += _hide(path, is_dir)
    if cache_inside:
        # A home workspace: under ~/.cache, read-only, and kfd's cache, hidden.
        args += ["--bind", layout.cache_home, layout.cache_home]
    if layout.writable and layout.cache_home:
        # A git directory in the cache home that the workspace leads git to: read-only
        # over the cache home's own (writable) bind.
        for git_dir in layout.git_dirs:
            if cache_inside and _under(git_dir.path, layout.cache_home):
                args += _git_dir(git_dir)
    return [*args, "--chdir", workspace]


def _protections(layout: Layout) -> list[str]:
    """Read-only ``.git`` internals (the workspace's and those of the repositories
    below it), ``.kfd``, shell start-up files and a home's configuration (a writable
    workspace)."""
    workspace = layout.workspace
    marker = os.path.join(workspace, ".git")
    args: list[str] = []
    if layout.marker == "gitfile":
        args += _read_only(marker)
    elif layout.marker == "blocked":
        args += _stand_in(marker) if not layout.marker_is_file else _empty_file(marker)
    for git_dir in layout.git_dirs:
        args += _git_dir(git_dir)
    for path in layout.git_files:
        args += _read_only(path)
    if layout.project_root and not layout.kfd_link:
        kfd = os.path.join(workspace, ".kfd")
        args += _read_only(kfd) if layout.kfd_dir else _stand_in(kfd)
    for path in layout.rc_files:
        args += _read_only(path)
    return args


def _git_dir(git_dir: GitDir) -> list[str]:
    """The git directory as its own mount point (it cannot be renamed or replaced),
    writable where git records work, read-only everywhere else."""
    path = git_dir.path
    args = ["--bind", path, path]
    links = set(git_dir.links)
    for name in git_dir.entries:
        if name in GIT_WRITABLE or name.endswith(".lock") or name == "hooks" or name in links:
            continue  # a link is never mounted over: the bind would follow it
        args += _read_only(os.path.join(path, name))
    if "config" not in git_dir.entries:
        args += _empty_file(os.path.join(path, "config"))
    hooks = os.path.join(path, "hooks")
    if "hooks" not in links:
        # Real hooks run in the sandbox as they are; none (or git's samples only): a
        # stand-in. A linked hooks directory is left as it is: what it leads to is
        # the workspace's (writable anyway) or out of reach.
        args += _read_only(hooks) if git_dir.real_hooks else _stand_in(hooks)
    return args


def _hide(path: str, is_dir: bool) -> list[str]:
    """An existing path made empty: a directory becomes a private tmpfs (what is written
    there vanishes with the command; the cache home may be mounted inside kfd's), a
    file reads as empty."""
    return ["--tmpfs", path] if is_dir else _empty_file(path)


def _read_only(path: str) -> list[str]:
    """``path`` mounted read-only over itself. Never a symbolic link (the layout
    leaves links out): bubblewrap resolves a bind's source on the host and its
    destination in the sandbox, so a relative link would mount the real target
    over what hides it."""
    return ["--ro-bind", path, path]


def _stand_in(path: str) -> list[str]:
    """An empty directory nothing can be written to (mode 0555, and a tmpfs: whatever a
    command forces in vanishes with it). Cheaper than a read-only bind: no bind mount,
    no remount. For a missing path bubblewrap creates the directory, which stays
    behind empty, harmless to git and kfd."""
    return ["--perms", "0555", "--tmpfs", path]


def _empty_file(path: str) -> list[str]:
    """An empty, read-only file in place of ``path`` (created empty if missing)."""
    return ["--ro-bind", os.devnull, path]


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)
