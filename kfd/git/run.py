"""Running git on the host, on kfd's own behalf, so that no repository state runs code.

Git runs programs named by configuration (``core.fsmonitor``,
``core.hooksPath``, ``filter.<driver>.clean``, ``diff.<driver>.textconv``,
``diff.external``, ``core.pager``, ``core.sshCommand``, ...), reached
through includes, ``commondir`` and ``GIT_*`` variables. Listing those keys
to switch them off one by one is a deny-list that the next git release
outgrows; instead kfd's git never reads the repository's configuration at
all:

- git sees a *shadow* git directory, made fresh for each call in a private
  temporary directory: symbolic links to the repository's objects, refs,
  index and logs (what status, diff and check-ignore read), a copy of
  ``HEAD``, and a ``config`` kfd writes itself with only data keys copied
  from the repository's (`COPIED_KEYS`: the object format, line-ending and
  case settings, the upstream of each branch). No hooks, no ``commondir``, no
  includes, no drivers: there is nothing left that names a program;
- the system and global configuration are off (``GIT_CONFIG_NOSYSTEM``,
  ``GIT_CONFIG_GLOBAL=/dev/null``), ``-c`` overrides switch off the keys that
  run programs anyway, and ``--no-optional-locks`` keeps git from writing;
- the environment is built from nothing: ``PATH`` (absolute entries outside
  the workspace only, so a planted ``./git`` is never what runs), ``HOME``,
  ``LC_ALL=C`` and git's own variables set by kfd; no ``GIT_*`` of the
  daemon's and no secret reaches git;
- the repository is the one `kfd.git.repository.find` validated, passed as
  ``GIT_DIR`` and ``GIT_WORK_TREE``: git discovers nothing itself;
- git never enters another repository: a nested one (a submodule, or any
  repository a command created inside the workspace and added as a gitlink)
  has a configuration of its own that no shadow covers, and ``git diff`` or
  ``git status`` would start a git there to ask whether it changed. Every
  subcommand that can do so gets ``--ignore-submodules=all``
  (`SUBMODULE_FLAGS`: the command line wins over ``.gitmodules`` and every
  config key), and `run_git` runs no subcommand it has no entry for.

The repository's configuration is read only as data, with ``git config
--file ... --no-includes --list``, which runs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from stat import S_ISREG
from typing import NamedTuple

from kfd.git.repository import Repository
from kfd.hostpath import host_path
from kfd.regular import read_regular

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0

SKIPPED_ENTRIES = frozenset(
    {"config", "config.worktree", "hooks", "commondir", "gitdir", "worktrees", "modules", "HEAD"}
)
"""Entries of a git directory the shadow leaves out (``HEAD`` is copied instead)."""

COPIED_KEYS = (
    "core.repositoryformatversion",
    "core.ignorecase",
    "core.precomposeunicode",
    "core.filemode",
    "core.symlinks",
    "core.autocrlf",
    "core.eol",
    "core.safecrlf",
    "core.checkstat",
    "core.trustctime",
    "core.excludesfile",
    "extensions.objectformat",
)
"""Configuration keys copied into the shadow: data only, never a program."""

COPIED_PATTERNS = (("branch.", (".remote", ".merge")), ("remote.", (".fetch",)))
"""Keys copied by prefix and suffix: each branch's upstream, each remote's refspec."""

OVERRIDES = (
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.pager=cat",
    "core.editor=false",
    "core.sshCommand=false",
    "core.askPass=",
    "core.gitProxy=",
    "core.untrackedCache=false",
    "diff.external=",
    "credential.helper=",
    "gpg.program=false",
    "protocol.allow=never",
    "submodule.recurse=false",
    "diff.ignoreSubmodules=all",
    "status.submoduleSummary=false",
    "log.showSignature=false",
)
"""``-c`` settings on every call: a second lock on the doors the shadow already shut."""


SUBMODULE_FLAGS: dict[str, tuple[str, ...]] = {
    "diff": ("--ignore-submodules=all",),
    "status": ("--ignore-submodules=all",),
    "check-ignore": (),
    "ls-files": (),
}
"""The subcommands kfd runs on the host, each with what keeps it out of nested
repositories (``check-ignore`` and ``ls-files`` without ``--recurse-submodules``
never enter one)."""

NO_PATHSPECS = frozenset({"check-ignore"})
"""Subcommands that take paths, not pathspecs (git refuses ``GIT_LITERAL_PATHSPECS``
for them): every other one gets it, so a file named ``*`` is that file."""


class GitOutput(NamedTuple):
    """What a git call printed, and its exit status."""

    returncode: int
    stdout: bytes


class GitUnavailable(Exception):
    """Git is not installed (on a ``PATH`` entry outside the workspace), or timed out."""


def program(workspace: Path, environ: Mapping[str, str] | None = None) -> str | None:
    """The absolute path of git, found on ``PATH`` entries that are absolute and
    outside ``workspace`` (a relative entry would resolve inside it)."""
    found = shutil.which("git", path=os.pathsep.join(safe_path(workspace, environ)))
    return os.path.abspath(found) if found else None


def safe_path(workspace: Path, environ: Mapping[str, str] | None = None) -> list[str]:
    """``PATH`` without relative entries, entries inside ``workspace`` and those in
    another place sandboxed commands write (`kfd.hostpath.host_path`)."""
    return host_path(environ, also=[str(workspace)])


def environment(
    repo: Repository, shadow: Path, workspace: Path, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The whole environment of a host git call (nothing of the daemon's but these)."""
    environ = os.environ if environ is None else environ
    env = {
        "PATH": os.pathsep.join(safe_path(workspace, environ)) or os.defpath,
        "LC_ALL": "C",
        "GIT_DIR": str(shadow),
        "GIT_WORK_TREE": str(repo.root),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_OPTIONAL_LOCKS": "0",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_NO_REPLACE_OBJECTS": "1",
        # File names kfd hands git are names, never pathspecs: a changed file named
        # `*` made `git diff -- *` show `.env` in a trigger's prompt.
        "GIT_LITERAL_PATHSPECS": "1",
    }
    # HOME and XDG_CONFIG_HOME only locate the user's global ignore file.
    for name in ("HOME", "XDG_CONFIG_HOME"):
        value = environ.get(name, "")
        if os.path.isabs(value):
            env[name] = value
    return env


async def run_git(
    repo: Repository,
    workspace: Path,
    *args: str,
    stdin: bytes | None = None,
    timeout: float = TIMEOUT_S,
) -> GitOutput:
    """Run ``git args`` for ``repo`` with ``workspace`` as its current directory.

    Raises `GitUnavailable` when git is missing or does not finish in time, and
    ValueError for a subcommand not in `SUBMODULE_FLAGS` (a programming error).
    """
    args = with_submodules_ignored(args)
    git = program(workspace)
    if git is None:
        raise GitUnavailable("git is not installed")
    copied = await _copied_config(git, repo, workspace)
    try:
        shadow = await asyncio.to_thread(make_shadow, repo, copied)
    except OSError as exc:
        raise GitUnavailable(f"cannot prepare git's view of {repo.root}: {exc}") from exc
    try:
        env = environment(repo, shadow, workspace)
        if next((a for a in args if not a.startswith("-")), "") in NO_PATHSPECS:
            del env["GIT_LITERAL_PATHSPECS"]
        command = [git, "--no-optional-locks", *_overrides(), *args]
        return await _exec(command, workspace, env, stdin, timeout)
    finally:
        await asyncio.to_thread(shutil.rmtree, shadow, True)


def with_submodules_ignored(args: Sequence[str]) -> tuple[str, ...]:
    """``args`` with the subcommand's `SUBMODULE_FLAGS` right after it (options before
    the subcommand, such as ``--literal-pathspecs``, take no value)."""
    for index, arg in enumerate(args):
        if not arg.startswith("-"):
            flags = SUBMODULE_FLAGS.get(arg)
            if flags is None:
                raise ValueError(f"kfd does not run `git {arg}` on the host")
            return (*args[: index + 1], *flags, *args[index + 1 :])
    raise ValueError("a git call without a subcommand")


def _overrides() -> list[str]:
    return [part for setting in OVERRIDES for part in ("-c", setting)]


_CONFIG_READS: dict[str, tuple[tuple[int, int, int], list[tuple[str, str]]]] = {}
"""The `COPIED_KEYS` read from each repository config, with the file's identity
(inode, size, mtime) when it was read: every host git call needs them, and
twenty sessions starting at once should not start twenty ``git config``."""

CONFIG_READS_KEPT = 256


async def _copied_config(git: str, repo: Repository, workspace: Path) -> list[tuple[str, str]]:
    """The `COPIED_KEYS` of the repository's config, read as data.

    Read again whenever the file changes (inode, size or modification time);
    a stale answer could only be stale data, since no key copied names a program.
    """
    config = repo.common_dir / "config"
    try:
        info = config.stat()
    except OSError:
        return []
    if not S_ISREG(info.st_mode):
        return []
    identity = (info.st_ino, info.st_size, info.st_mtime_ns)
    known = _CONFIG_READS.get(str(config))
    if known is not None and known[0] == identity:
        return list(known[1])
    env = {
        "PATH": os.pathsep.join(safe_path(workspace)) or os.defpath,
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    command = [git, "config", "--file", str(config), "--no-includes", "--null", "--list"]
    try:
        output = await _exec(command, repo.common_dir, env, None, TIMEOUT_S)
    except GitUnavailable:
        return []
    if output.returncode != 0:
        return []
    pairs = wanted_keys(output.stdout)
    if len(_CONFIG_READS) >= CONFIG_READS_KEPT:
        _CONFIG_READS.clear()
    _CONFIG_READS[str(config)] = (identity, pairs)
    return list(pairs)


def wanted_keys(listing: bytes) -> list[tuple[str, str]]:
    """The (key, value) pairs of a ``git config --null --list`` that the shadow keeps."""
    kept = []
    for entry in listing.split(b"\0"):
        key, _, value = entry.decode("utf-8", "replace").partition("\n")
        key = key.lower()
        if key in COPIED_KEYS or any(
            key.startswith(prefix) and key.endswith(suffixes)
            for prefix, suffixes in COPIED_PATTERNS
        ):
            kept.append((key, value))
    return kept


def render_config(pairs: Sequence[tuple[str, str]]) -> str:
    """A git config file holding ``pairs`` (``section.sub.key``, value)."""
    sections: dict[tuple[str, str | None], list[tuple[str, str]]] = {}
    for key, value in pairs:
        section, _, rest = key.partition(".")
        subsection, _, name = rest.rpartition(".")
        sections.setdefault((section, subsection or None), []).append((name, value))
    lines = []
    for (section, sub), entries in sections.items():
        lines.append(f"[{section}]" if sub is None else f'[{section} "{_escape(sub)}"]')
        lines.extend(f'\t{name} = "{_escape(value)}"' for name, value in entries)
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")


def make_shadow(repo: Repository, config: Sequence[tuple[str, str]]) -> Path:
    """A private git directory that reads ``repo``'s data and none of its programs.

    Blocking; the caller removes it (``shutil.rmtree``) when git is done.
    """
    shadow = Path(tempfile.mkdtemp(prefix="kfd-git-"))
    try:
        sources = [repo.common_dir] if not repo.linked else [repo.common_dir, repo.git_dir]
        for source in sources:
            for name in os.listdir(source):
                if name in SKIPPED_ENTRIES:
                    continue
                link = shadow / name
                if os.path.lexists(link):
                    link.unlink()  # the worktree's own index and logs win over the common ones
                link.symlink_to(source / name)
        (shadow / "HEAD").write_bytes(read_regular(repo.git_dir / "HEAD", 4096))
        (shadow / "config").write_text(render_config(config))
    except BaseException:
        shutil.rmtree(shadow, ignore_errors=True)
        raise
    return shadow


async def _exec(
    command: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    stdin: bytes | None,
    timeout: float,
) -> GitOutput:
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
    except (OSError, RuntimeError, NotImplementedError) as exc:
        raise GitUnavailable(f"git cannot start: {exc}") from exc
    try:
        async with asyncio.timeout(timeout):
            out, _ = await process.communicate(stdin)
    except (TimeoutError, asyncio.CancelledError) as exc:
        # Cancelled too: no git is left running once its caller is gone.
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await asyncio.shield(process.wait())
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise GitUnavailable(f"git did not finish within {timeout:g} s") from None
    return GitOutput(process.returncode or 0, out)
