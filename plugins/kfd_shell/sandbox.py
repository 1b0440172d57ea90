"""Confining a command with bubblewrap, and the environment commands get.

Under `bwrap`, a command sees:

- the whole file system read-only, but the workspace (read-write) and a
  private, empty ``/tmp``;
- inside the workspace, ``.git/config``, ``.git/hooks`` and (when kfd reads
  the project config there) ``.kfd`` read-only: they run programs, or hold
  kfd's rules; shell start-up files at its root too. A missing ``.git/hooks``
  or ``.kfd`` is mounted as an empty read-only directory, so none can be
  created either (an empty directory of that name appears in the workspace);
- ``$XDG_RUNTIME_DIR`` replaced by an empty directory: the sockets there (kfd's
  own bus, the session D-Bus) stay out of reach, since a read-only file system
  does not stop a connection to a Unix socket;
- no network (a network namespace of its own, with only a loopback), unless
  allowed;
- a PID namespace of its own: it cannot see or signal other processes, and
  everything it started dies with it (background processes included);
- no capabilities (a root daemon's commands cannot remount anything), and it
  is killed if kfd dies (``--die-with-parent``).

If bubblewrap cannot run here (not installed, or user namespaces disabled),
`probe` says why, and the tool asks the user before running unconfined.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import shutil
from collections.abc import Collection, Mapping
from pathlib import Path

from kfd.api import looks_secret

PROBE_TIMEOUT_S = 5.0

_RC_FILES = (".bashrc", ".bash_profile", ".bash_login", ".profile", ".zshrc", ".zshenv")

_working: set[str] = set()
"""bwrap programs that started a sandbox once: not probed again."""


async def probe(bwrap: str, *, network: bool) -> str | None:
    """None if ``bwrap`` can start a sandbox here, else why not (for the user)."""
    program = shutil.which(bwrap)
    if program is None:
        return f"bubblewrap ({bwrap}) is not installed (Debian and Ubuntu: apt install bubblewrap)"
    key = f"{program}\0{network}"
    if key in _working:
        return None
    try:
        process = await asyncio.create_subprocess_exec(
            program,
            *_base(network),
            "--",
            "true",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        return f"{program} cannot be started: {exc.strerror}"
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), PROBE_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        return f"{program} did not start a sandbox within {PROBE_TIMEOUT_S:g} s"
    if process.returncode != 0:
        said = stderr.decode(errors="replace").strip().splitlines()
        detail = said[-1] if said else f"exit status {process.returncode}"
        return f"{program} cannot start a sandbox here: {detail}"
    _working.add(key)
    return None


def _base(network: bool) -> list[str]:
    """The namespaces and mounts of every sandbox, before the workspace's."""
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
        "--tmpfs",
        "/tmp",
    ]
    if not network:
        args.insert(1, "--unshare-net")
    return args


def command_prefix(
    bwrap: str, workspace: Path, *, network: bool, environ: Mapping[str, str]
) -> list[str]:
    """The bwrap command line that confines a command run in ``workspace``.

    Blocking (it looks at the workspace): call it through a thread.
    """
    program = shutil.which(bwrap) or bwrap
    args = [program, *_base(network)]
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime) and os.path.isdir(runtime):
        args += ["--tmpfs", runtime]
    root = str(workspace)
    args += ["--bind", root, root]
    git = workspace / ".git"
    if git.is_dir():
        args += _read_only(git / "config", optional=True)
        args += _read_only(git / "hooks")
    if _project_root(workspace):
        args += _read_only(workspace / ".kfd")  # a project's rules: never the command's to change
    for name in _RC_FILES:
        args += _read_only(workspace / name, optional=True)
    args += ["--chdir", root, "--"]
    return args


def _project_root(workspace: Path) -> bool:
    """Whether kfd reads the project config (``.kfd/config.toml``) from ``workspace``:
    it is a repository's root, or in no repository. (Above it, all is read-only.)"""
    if (workspace / ".git").exists():
        return True
    return not any((parent / ".git").exists() for parent in workspace.parents)


def _read_only(path: Path, *, optional: bool = False) -> list[str]:
    """Mount ``path`` read-only; a missing one as an empty read-only directory."""
    target = str(path)
    if path.exists() or path.is_symlink():
        # A symlink is mounted as its target: followed, so it cannot lead out of reach.
        return ["--ro-bind", target, target]
    if optional:
        return []
    return ["--tmpfs", target, "--remount-ro", target]


def environment(
    environ: Mapping[str, str], allow: Collection[str], *, sandboxed: bool
) -> dict[str, str]:
    """What commands get of the daemon's environment: every variable but those whose
    name looks secret (`kfd.api.looks_secret`) and ``allow`` does not name."""
    kept = {
        name: value
        for name, value in environ.items()
        if not looks_secret(name) or any(fnmatch.fnmatchcase(name, a) for a in allow)
    }
    if sandboxed:
        kept["TMPDIR"] = "/tmp"  # the only writable place besides the workspace
    return kept
