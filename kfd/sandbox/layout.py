"""What the sandbox must know about the machine before a command: the I/O shell.

`gather` looks at the file system once per command (a few hundred
microseconds, in a worker thread, and a walk of the workspace for the
repositories below it, which `kfd.sandbox.repositories` keeps between
commands) and returns a `Layout`: plain facts that
`kfd.sandbox.mounts.arguments` turns into bubblewrap arguments without any
further I/O.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import os
import re
import stat
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import msgspec

from kfd import paths
from kfd.agent.instructions import NAMES as INSTRUCTION_FILES
from kfd.git import repository
from kfd.sandbox import hookspath, repositories
from kfd.sandbox.identities import Identity, record

HIDDEN_IN_HOME = (
    ".ssh",
    ".aws",
    ".azure",
    ".gnupg",
    ".netrc",
    ".kube",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    ".docker/config.json",
    ".config/gcloud",
    ".config/gh",
    ".config/hub",
    ".config/git/credentials",
    ".config/containers/auth.json",
    ".config/rclone",
    ".config/op",
    ".config/doctl",
    ".config/google-chrome",
    ".config/chromium",
    ".config/BraveSoftware",
    ".mozilla",
    ".oci",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".gem/credentials",
    ".m2/settings.xml",
    ".m2/settings-security.xml",
    ".gradle/gradle.properties",
    ".terraform.d/credentials.tfrc.json",
    ".vault-token",
    ".pgpass",
    ".my.cnf",
    ".s3cfg",
    ".boto",
    ".yarnrc",
    ".yarnrc.yml",
    ".password-store",
    ".local/share/keyrings",
    ".huggingface/token",
    ".cache/huggingface/token",
    ".claude/.credentials.json",
    ".codex/auth.json",
    ".bash_history",
    ".zsh_history",
    ".python_history",
    ".node_repl_history",
    ".psql_history",
    ".mysql_history",
    ".local/share/fish/fish_history",
)
"""Credential stores and shell histories under ``$HOME``: unreadable in the sandbox."""

HIDDEN_SYSTEM = ("/etc/shadow", "/etc/gshadow", "/etc/ssh/ssh_host_*_key")
"""Secrets outside ``$HOME`` (readable when kfd runs as root)."""

RC_FILES = (
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".zlogin",
    ".inputrc",
)
"""Shell start-up files: read-only where they exist at the workspace root."""

HOME_PROGRAMS = ("bin",)
"""Entries at the top of a home that are the host's configuration although they are no
dot-entries: Debian's and Ubuntu's ``~/.profile`` put ``~/bin`` first on ``PATH``, so
the next login shell runs what is there before ``/usr/bin``."""


TOOL_HOMES = (
    "miniconda3",
    "anaconda3",
    "miniforge3",
    "mambaforge",
    "micromamba",
    "perl5/bin",
    "go/bin",
)
"""Directories of a home whose programs the host's shells run although they are no
dot-entries, and that may be off the daemon's ``PATH`` (it was started from another
shell, or a service): ``conda init`` makes every interactive shell run
``miniconda3/bin/conda`` and source ``etc/profile.d/conda.sh``, then puts
``miniconda3/bin`` (and ``condabin``) first on ``PATH``; ``local::lib`` puts
``perl5/bin``, and Go's installer ``go/bin``, there from ``~/.profile`` or
``~/.bashrc``. Only a list can name them: the shell that reads those files is not
kfd's. Read-only where they exist; one a command creates is removed when it ends."""


def is_home_configuration(name: str) -> bool:
    """Whether entry ``name`` at the top of a home is the host's configuration: a
    dot-entry, or one of `HOME_PROGRAMS`."""
    return name.startswith(".") or name in HOME_PROGRAMS


HOME_KEPT = (".git", ".kfd")
"""Dot-entries of a ``$HOME`` that is the workspace's top with rules of their own (its
git directory and project config), not those of `home_entries`; below the top, only
``.git`` (a repository below the workspace's top)."""

SWEPT_IN_GIT_DIR = ("commondir", "gitdir", "config.worktree")
"""Names that redirect or configure git when created in a git directory. They cannot
be made read-only before they exist without leaving a file git would misread, so a
command that creates one has it removed when it ends (`kfd.sandbox.sweep`)."""

_SOCKET_LINE = re.compile(r"^\s*[0-9A-Fa-f]+: (?:\S+ ){6}(/.*)$", re.MULTILINE)
"""A line of ``/proc/net/unix`` that names a socket bound to a path (one pass over
the text: a desktop lists thousands of connected sockets, with no path)."""

MAX_SOCKETS = 512
"""More bound sockets than this are masked by their directories' hiding only."""


class GitDir(msgspec.Struct, frozen=True):
    """A git directory commands may write objects and refs to, and nothing else."""

    path: str
    entries: tuple[str, ...]
    """Its top-level names when the command starts."""
    real_hooks: bool = False
    """Its ``hooks`` holds more than git's ``*.sample`` files."""
    links: tuple[str, ...] = ()
    """Top-level names that are symbolic links (a command may plant them): never
    mounted over, since a bind follows a link, on the host for its source and in
    the sandbox for its target, and would bring back what is hidden (``~/.ssh``)."""
    targets: tuple[str, ...] = ()
    """Where each of `links` leads (as ``readlink`` says), in the same order: one a
    command re-pointed is not the user's any more (`kfd.sandbox.gitstate`)."""


MarkerKind = Literal["repository", "gitfile", "blocked", "none"]
"""What the workspace's own ``.git`` is: a repository's git directory, a ``gitdir:``
file, missing (or empty) inside an outer repository (so none may be planted), or
missing outside any repository (``git init`` may create one)."""


class Layout(msgspec.Struct, frozen=True, kw_only=True):
    """The facts one sandboxed command's mounts are a pure function of."""

    workspace: str
    writable: bool
    runtime_dir: str = ""
    hidden: tuple[tuple[str, bool], ...] = ()
    """Existing paths to hide, with whether each is a directory."""
    sockets: tuple[str, ...] = ()
    """Unix sockets outside the workspace to make unreachable, one by one."""
    socket_dirs: tuple[str, ...] = ()
    """Directories holding nothing but sockets: covered whole."""
    allowed_sockets: tuple[str, ...] = ()
    """Sockets the user configured as reachable (``[sandbox] sockets``)."""
    cache_home: str = ""
    programs: tuple[str, ...] = ()
    """Directories under the private ``/tmp`` that hold the program a user or an
    editor configured (a server installed in a checkout under ``/tmp``): bound
    back read-only, what is hidden inside them hidden again."""
    marker: MarkerKind = "none"
    marker_is_file: bool = False
    """A blocked ``.git`` that exists as a file (it is covered by an empty file)."""
    git_dirs: tuple[GitDir, ...] = ()
    project_root: bool = False
    """kfd reads ``.kfd/config.toml`` from the workspace (it is its project's root)."""
    kfd_dir: bool = False
    """``<workspace>/.kfd`` exists and holds something (an empty one gets a stand-in)."""
    kfd_link: bool = False
    """``<workspace>/.kfd`` is a symbolic link: never mounted over (a bind would
    follow it out of reach); its target, when in the workspace, is in `rc_files`."""
    rc_files: tuple[str, ...] = ()
    """Existing shell start-up files (and the workspace's instruction files, which kfd
    reads into every session, and the hooks directories of `hooks_dirs`) to mount
    read-only."""
    swept: tuple[str, ...] = ()
    """Paths that must not exist after the command; none does now (names that would
    redirect git, missing instruction files and hooks directories)."""
    hooks_dirs: tuple[str, ...] = ()
    """The directories in the workspace that ``core.hooksPath`` names
    (`kfd.sandbox.hookspath`): read-only where they exist, swept where not."""
    unreadable: tuple[str, ...] = ()
    """Paths to hide that kfd's user cannot read, so not mounted over (no mount is
    needed: its commands cannot read them either); `kfd.sandbox.reuse` stamps them."""
    markers: tuple[tuple[str, int], ...] = ()
    """Every ``.git`` and bare-shaped directory below the workspace's top, with its
    inode (`kfd.sandbox.repositories.Found`): after the command each is the same or
    gone, never another (`kfd.sandbox.sweep.leftovers`)."""
    git_files: tuple[str, ...] = ()
    """``.git`` files (``gitdir:`` links) below the workspace's top: read-only."""
    incomplete: bool = False
    """The workspace holds more directories than `kfd.sandbox.repositories` walks, so
    not every repository in it is known: it is read-only (fail closed)."""
    home: str = ""
    """``$HOME`` when it is in a writable workspace: its dot-entries are the host's
    configuration (`home_entries`)."""
    program_dirs: tuple[str, ...] = ()
    """The directories in the workspace whose programs the host runs (on the daemon's
    ``PATH``, a home's tool homes: `program_directories`): read-only where they
    exist, swept where not."""
    top_entries: tuple[str, ...] = ()
    """The names at the workspace's top when the command starts, where the top is
    itself on the daemon's ``PATH`` (``~/bin`` as the workspace): the user's own."""
    later_on_path: tuple[str, ...] = ()
    """Where the top is on ``PATH``: the directories of ``PATH`` outside the workspace.
    A new name at the top that names a program in one of them
    would shadow it for the host's shells and is removed when the command ends
    (`program_shadows`)."""
    home_entries: tuple[str, ...] = ()
    """The configuration entries at the top of `home` when the command starts
    (`is_home_configuration`): read-only (but `HOME_KEPT`); any other one found
    there after the command is removed."""
    identities: tuple[Identity, ...] = ()
    """What stands at each name on the way to every path above that is protected (or
    that the host looks up: the literal entries of ``PATH``, a home strictly inside
    the workspace), links included (`kfd.sandbox.identities.record`): a read-only
    mount moves with a parent renamed away, so after the command another thing at
    one of these names is moved aside. The repositories below the top are
    `markers`' to watch."""


def _protect(
    path: str, root: str, read_only: list[str], swept: list[str], *, missing: bool
) -> None:
    """Make ``path`` read-only for a command; if ``missing``, it may not appear either.

    A symlink is protected where it leads: its target inside the workspace (kept, or
    swept if it does not exist yet, as the link would bring it to life); a target
    outside is out of the command's reach already, and a bind of a link to a hidden
    file would bring the file back (or stop bubblewrap: every command would fail).
    """
    if not os.path.islink(path):
        if os.path.lexists(path):
            read_only.append(path)
        elif missing:
            swept.append(path)
        return
    real = os.path.realpath(path)
    if real != root and real.startswith(root.rstrip(os.sep) + os.sep):
        (read_only if os.path.lexists(real) else swept).append(real)


def gather(
    workspace: Path,
    *,
    writable: bool,
    hide: Sequence[str] = (),
    sockets: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    program: Sequence[str] = (),
    found: repository.Repository | repository.Refused | Literal[False] | None = False,
    listing: Sequence[str] | None = None,
    walker: Callable[[str, Collection[str]], repositories.Found] = repositories.walk,
) -> Layout:
    """Look at the machine for one command in ``workspace``. Blocking.

    ``program``: the paths of a configured program (its executable, its
    script), which must stay reachable where they are. ``found`` (what
    `kfd.git.repository.find` said of the workspace) and ``listing`` (the text
    of `unix_sockets`) if the caller looked already; ``walker`` finds the
    repositories below the workspace (`kfd.sandbox.repositories.find` keeps
    them between commands).
    """
    environ = os.environ if environ is None else environ
    root = os.path.realpath(workspace)
    home = os.path.realpath(environ.get("HOME") or os.path.expanduser("~"))
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    runtime = runtime if os.path.isabs(runtime) and os.path.isdir(runtime) else ""
    if found is False:
        found = repository.find(Path(root))
    # One cache home per project: the repository's root, or the workspace outside one.
    project = found.root if isinstance(found, repository.Repository) else Path(root)
    cache = cache_home(project)
    hidden, unreadable = _existing(hidden_candidates(home, tuple(hide)))
    allowed = tuple(os.path.realpath(os.path.expanduser(path)) for path in sockets)
    programs = program_dirs(program, hidden)
    sockets = bound_sockets(
        root,
        allowed,
        (runtime, "/tmp", *(p for p, d in hidden if d)),
        reopened=programs,
        listing=listing,
    )
    socket_dirs, single = _group_sockets(sockets, allowed)
    layout = Layout(
        workspace=root,
        writable=writable,
        runtime_dir=runtime,
        hidden=hidden,
        sockets=single,
        socket_dirs=socket_dirs,
        allowed_sockets=tuple(path for path in allowed if _is_socket(path)),
        cache_home=str(cache),
        programs=programs,
        unreadable=unreadable,
    )
    if not writable:
        return layout
    entries = home_entries(home, root) if _under(home, root) else None
    nested = walker(root, pruned(root, hidden, home, entries))
    if not nested.complete:
        return msgspec.structs.replace(layout, writable=False, incomplete=True)
    facts = _workspace_facts(Path(root), home, found, entries, hidden, environ)
    nested_facts = _nested_facts(root, nested, facts, home, environ, str(cache))
    layout = msgspec.structs.replace(layout, **{**facts, **nested_facts})
    return msgspec.structs.replace(layout, identities=record(guarded(layout, environ), root))


def guarded(layout: Layout, environ: Mapping[str, str]) -> list[str]:
    """The paths whose names `Layout.identities` watches: all that is read-only in the
    workspace and the names that led there (a protected link's own name), the
    literal entries of ``PATH`` (the host looks them up as written, through links
    the realpath skips), and a home strictly inside the workspace."""
    top = layout.workspace
    paths = [*layout.rc_files, *layout.hooks_dirs, *layout.program_dirs]
    paths += [os.path.join(top, name) for name in (*RC_FILES, *INSTRUCTION_FILES, ".kfd")]
    if layout.home:
        paths += [os.path.join(layout.home, name) for name in layout.home_entries]
        if layout.home != top:
            paths.append(layout.home)
    paths += [p for p in environ.get("PATH", "").split(os.pathsep) if os.path.isabs(p)]
    return paths


def home_entries(home: str, root: str) -> tuple[str, ...]:
    """The configuration entries at the top of ``home`` (in the workspace at ``root``;
    `is_home_configuration`) but `HOME_KEPT`, sorted (one listing)."""
    try:
        names = os.listdir(home)
    except OSError:
        return ()
    kept = HOME_KEPT if home == root else HOME_KEPT[:1]
    return tuple(sorted(n for n in names if is_home_configuration(n) and n not in kept))


def pruned(
    root: str,
    hidden: Iterable[tuple[str, bool]],
    home: str,
    entries: Iterable[str] | None,
) -> tuple[str, ...]:
    """What the walk for repositories need not enter: hidden directories (a command
    sees them empty) and the dot-entries of a home in the workspace (read-only)."""
    covered = [path for path, is_dir in hidden if is_dir and _under(path, root)]
    covered += [os.path.join(home, name) for name in entries or ()]
    return tuple(sorted(covered))


def layout_pruned(layout: Layout) -> tuple[str, ...]:
    """`pruned` for the workspace of ``layout`` as it was gathered."""
    entries = layout.home_entries if layout.home else None
    return pruned(layout.workspace, layout.hidden, layout.home, entries)


def _nested_facts(
    root: str,
    nested: repositories.Found,
    facts: Mapping[str, object],
    home: str,
    environ: Mapping[str, str],
    cache: str = "",
) -> dict[str, object]:
    """The protections of the repositories below the workspace's top: each git
    directory as the top one's, each ``gitdir:`` file read-only with the git
    directory it names (or a ``.git`` link leads to) when that lies where commands
    write: the workspace, or the project's ``cache`` home (a directory made there
    in one command and armed in the next would be checked by no one), and the hooks directories
    ``core.hooksPath`` names for each (its own configuration's, or the user's
    relative value taken from its work tree) read-only as the top one's."""
    git_dirs = list(facts["git_dirs"])  # type: ignore[call-overload]
    swept = list(facts["swept"])  # type: ignore[call-overload]
    rc_files = list(facts["rc_files"])  # type: ignore[call-overload]
    hooks = list(facts["hooks_dirs"])  # type: ignore[call-overload]
    known = {git_dir.path for git_dir in git_dirs}
    cache_home = os.path.realpath(cache) if cache else ""
    git_files: list[str] = []
    work_trees: list[tuple[str, str]] = []

    def protect(path: str, work_tree: str) -> None:
        if path not in known and not any(_under(path, other) for other in known):
            known.add(path)
            git_dirs.append(_git_dir(path, swept))
            work_trees.append((work_tree, path))

    for path, _inode in nested.markers:
        if os.path.basename(path) != ".git":
            protect(path, path)  # shaped like a bare repository: hooks run in it
        elif os.path.islink(path):
            # What it leads to in the workspace is found where it is; in the cache
            # home, nothing else finds it.
            leads = os.path.realpath(path)
            if cache_home and _under(leads, cache_home) and os.path.isdir(leads):
                protect(leads, os.path.dirname(path))
        elif os.path.isdir(path):
            if repository.is_marker(Path(path)):
                protect(path, os.path.dirname(path))
        elif os.path.isfile(path):
            # Read-only whatever it holds now: a later command may not make it lead
            # anywhere (a file kfd cannot read as git does is no harmless one).
            git_files.append(path)
            target = repository.gitdir_of(path)
            writable = _under(target or "", root) or bool(
                cache_home and _under(target or "", cache_home)
            )
            if target and writable and os.path.isdir(target):
                protect(target, os.path.dirname(path))
    for work_tree, git_dir in work_trees:
        for path in _named_hooks(root, home, environ, work_tree, [git_dir], known):
            if path not in hooks:
                hooks.append(path)
                _protect(path, root, rc_files, swept, missing=True)
    return {
        "git_dirs": tuple(git_dirs),
        "swept": tuple(swept),
        "rc_files": tuple(dict.fromkeys(rc_files)),
        "hooks_dirs": tuple(hooks),
        "markers": nested.markers,
        "git_files": tuple(git_files),
    }


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _workspace_facts(
    root: Path,
    home: str,
    found: repository.Repository | repository.Refused | None,
    home_names: tuple[str, ...] | None,
    hidden: Iterable[tuple[str, bool]],
    environ: Mapping[str, str],
) -> dict[str, object]:
    top = str(root)
    marker = os.path.join(top, ".git")
    try:
        names = set(os.listdir(top))  # one listing, not two lstat calls per name
    except OSError:  # unreadable: look at each name on its own
        names = {".git", ".kfd", *RC_FILES, *INSTRUCTION_FILES}
    kind: MarkerKind
    git_dirs: list[GitDir] = []
    swept: list[str] = []
    if ".git" in names and repository.is_marker(Path(marker)):
        if os.path.isdir(marker):
            kind = "repository"
            git_dirs.append(_git_dir(marker, swept))
        else:
            kind = "gitfile"
            if isinstance(found, repository.Repository) and found.root == root and found.linked:
                # The worktree's own git directories, outside the workspace.
                git_dirs.append(_git_dir(str(found.common_dir), swept))
                git_dirs.append(_git_dir(str(found.git_dir), swept))
    elif found is not None:
        kind = "blocked"  # no nested repository may appear under the outer one's rules
    else:
        kind = "none"
        # ``git init`` may create a repository here; not one that redirects git.
        swept.extend(os.path.join(marker, name) for name in SWEPT_IN_GIT_DIR)
    project_root = kind in ("repository", "gitfile", "none")
    rc_files: list[str] = []
    for name in (*RC_FILES, *INSTRUCTION_FILES):
        if name in names:
            _protect(os.path.join(top, name), top, rc_files, swept, missing=False)
    # kfd reads these into every later session: a command may not plant one either.
    swept += [os.path.join(top, name) for name in INSTRUCTION_FILES if name not in names]
    hooks = _hooks_dirs(top, home, found, environ)
    for path in hooks:
        _protect(path, top, rc_files, swept, missing=True)
    if home_names is not None:
        # The host's configuration: read-only, but what is hidden (a tmpfs already).
        covered = {path for path, _ in hidden}
        for name in home_names:
            path = os.path.join(home, name)
            if path not in covered:
                _protect(path, top, rc_files, swept, missing=False)
    # In any workspace: a virtual environment activated when kfd started puts its
    # ``bin`` on the host's PATH, a home's tool homes on its shells'.
    programs = program_directories(top, home, environ)
    for path in programs:
        _protect(path, top, rc_files, swept, missing=True)
    kfd = os.path.join(top, ".kfd")
    kfd_link = ".kfd" in names and os.path.islink(kfd)
    if kfd_link:
        _protect(kfd, top, rc_files, swept, missing=False)
    return {
        "marker": kind,
        "marker_is_file": os.path.isfile(marker) and not os.path.islink(marker),
        "git_dirs": tuple(git_dirs),
        "project_root": project_root,
        "kfd_dir": ".kfd" in names and not kfd_link and _holds_something(kfd),
        "kfd_link": kfd_link,
        "rc_files": tuple(dict.fromkeys(rc_files)),
        "swept": tuple(swept),
        "home": home if home_names is not None else "",
        "home_entries": home_names or (),
        "hooks_dirs": hooks,
        "program_dirs": tuple(programs),
        **_path_top(top, names, environ),
    }


def _path_top(top: str, names: Iterable[str], environ: Mapping[str, str]) -> dict[str, object]:
    """`Layout.top_entries` and `Layout.later_on_path` when the workspace's ``top`` is
    itself a directory on ``PATH`` (its whole content cannot be read-only: it is the
    command's to write), else nothing."""
    listed = [p for p in environ.get("PATH", "").split(os.pathsep) if os.path.isabs(p)]
    real = [os.path.realpath(p) for p in listed]
    if top not in real:
        return {}
    later = tuple(dict.fromkeys(p for p in real if not _under(p, top)))
    return {"top_entries": tuple(sorted(names)), "later_on_path": later}


def program_shadows(name: str, later: Sequence[str]) -> bool:
    """Whether a new entry ``name`` at the top of a workspace on ``PATH`` names a
    program in one of the ``later`` directories (it would run in its place)."""
    return any(_executable(os.path.join(d, name)) for d in later if name)


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def program_directories(top: str, home: str, environ: Mapping[str, str]) -> list[str]:
    """The directories in the workspace at ``top`` whose programs the host runs: each
    on the daemon's ``PATH`` (the ``bin`` of a virtual environment activated in the
    shell that started kfd, a checkout's scripts: the daemon looks programs up
    there, and that shell, or its like, runs ``ls`` and ``git`` from there) and,
    when the home is in the workspace, each of `TOOL_HOMES`. Not the workspace
    itself (it is the command's to write), nor, of a home in it, the home itself
    or what lies in its configuration entries (`is_home_configuration`: read-only,
    or removed when new, already). The outermost of nested ones only."""
    found: dict[str, None] = {}
    listed = (p for p in environ.get("PATH", "").split(os.pathsep) if os.path.isabs(p))
    in_home = _under(home, top)
    named = (os.path.join(home, name) for name in TOOL_HOMES) if in_home else ()
    for path in (*(os.path.realpath(p) for p in listed), *named):
        if path == top or not _under(path, top):
            continue
        if in_home and _under(path, home):
            first = os.path.relpath(path, home).split(os.sep, 1)[0]
            if path == home or is_home_configuration(first):
                continue
        found[path] = None
    return [path for path in found if not any(_under(path, o) for o in found if o != path)]


def _hooks_dirs(
    top: str,
    home: str,
    found: repository.Repository | repository.Refused | None,
    environ: Mapping[str, str],
) -> tuple[str, ...]:
    """The directories in the workspace at ``top`` that ``core.hooksPath`` names for its
    repository (or, outside one, for a repository a command may create there)."""
    work_tree, git_dirs = top, []
    if isinstance(found, repository.Repository):
        work_tree, git_dirs = str(found.root), [str(found.common_dir), str(found.git_dir)]
    return tuple(_named_hooks(top, home, environ, work_tree, git_dirs, ()))


def _named_hooks(
    top: str,
    home: str,
    environ: Mapping[str, str],
    work_tree: str,
    git_dirs: Sequence[str],
    protected: Collection[str],
) -> list[str]:
    """The directories in the workspace at ``top`` that ``core.hooksPath`` names for the
    repository with ``work_tree`` and ``git_dirs`` (the user's files and its own). One
    inside a git directory (a ``.git``, or one of ``protected``) is that directory's
    to protect (`_git_dir`)."""
    files = hookspath.configuration_files(home, environ, dict.fromkeys(git_dirs))
    return [
        path
        for path in hookspath.hooks_directories(work_tree, files, home)
        if path != top
        and _under(path, top)
        and f"{os.sep}.git{os.sep}" not in path + os.sep
        and not any(_under(path, other) for other in protected)
    ]


def _git_dir(path: str, swept: list[str]) -> GitDir:
    try:
        entries = tuple(sorted(os.listdir(path)))
    except OSError:
        entries = ()
    swept.extend(os.path.join(path, name) for name in SWEPT_IN_GIT_DIR if name not in entries)
    links = tuple(name for name in entries if os.path.islink(os.path.join(path, name)))
    targets = tuple(_readlink(os.path.join(path, name)) for name in links)
    try:
        listed = "hooks" in entries and "hooks" not in links
        hooks = os.listdir(os.path.join(path, "hooks")) if listed else []
    except OSError:
        hooks = []
    real = any(not name.endswith(".sample") for name in hooks)
    return GitDir(path, entries, real, links, targets)


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def _holds_something(path: str) -> bool:
    """Whether ``path`` exists and is not an empty directory (a stand-in left behind)."""
    try:
        with os.scandir(path) as entries:
            return any(True for _ in entries)
    except NotADirectoryError:
        return True
    except OSError:
        return os.path.lexists(path)


def _group_sockets(
    sockets: Sequence[str], allowed: Sequence[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(directories holding only sockets, the other sockets): a directory is covered by
    a tmpfs, which costs nothing, where a socket needs a bind mount each."""
    by_directory: dict[str, list[str]] = {}
    for path in sockets:
        by_directory.setdefault(os.path.dirname(path), []).append(path)
    whole: list[str] = []
    single: list[str] = []
    for directory, members in by_directory.items():
        try:
            with os.scandir(directory) as entries:
                only_sockets = all(
                    stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode)
                    or (entry.is_dir(follow_symlinks=False) and entry.name.startswith("."))
                    for entry in entries
                )
        except OSError:
            only_sockets = False
        keeps_allowed = any(os.path.dirname(path) == directory for path in allowed)
        if only_sockets and directory not in ("/", "/run", "/var/run") and not keeps_allowed:
            whole.append(directory)
        else:
            single.extend(members)
    return tuple(whole), tuple(single)


def cache_home(project: Path) -> Path:
    """The writable cache home of the project at ``project``, created (0700) if missing.

    Under ``$XDG_CACHE_HOME/kfd/sandbox/``, one per project: what a package
    manager caches for one project never reaches another's commands.
    """
    home = _cache_home_path(project, _kfd_dirs()[3])
    try:
        info = os.lstat(home)  # there already, each command but the first: no mkdir
    except FileNotFoundError:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(home)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(f"{home} is not a directory of ours; remove it and retry")
    return home


@functools.lru_cache(maxsize=64)
def _cache_home_path(project: Path, cache_dir: str) -> Path:
    digest = hashlib.sha256(str(project).encode()).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", project.name)[:40] or "root"
    return Path(cache_dir, "sandbox", f"{slug}-{digest}")


def program_dirs(program: Sequence[str], hidden: Iterable[tuple[str, bool]]) -> tuple[str, ...]:
    """The top directories under ``/tmp`` holding any of ``program``'s paths (as
    given and resolved): what a private ``/tmp`` must not cover. Never one that
    is itself hidden or inside something hidden."""
    found: dict[str, None] = {}
    covered = [path for path, _ in hidden]
    for given in program:
        if not os.path.isabs(given):
            continue
        for path in (os.path.normpath(given), os.path.realpath(given)):
            if not path.startswith("/tmp/"):
                continue
            top = os.path.join("/tmp", path[len("/tmp/") :].split(os.sep, 1)[0])
            if os.path.isdir(top) and not any(
                top == other or top.startswith(other.rstrip(os.sep) + os.sep) for other in covered
            ):
                found[top] = None
    return tuple(found)


def bound_sockets(
    workspace: str,
    allowed: Sequence[str],
    covered: Iterable[str],
    *,
    reopened: Sequence[str] = (),
    listing: Sequence[str] | None = None,
) -> tuple[str, ...]:
    """Unix sockets bound to a path outside ``workspace`` and outside the ``covered``
    directories (hidden anyway) unless inside a ``reopened`` one, from
    ``/proc/net/unix`` (``listing``: `unix_sockets`, read already); ``allowed`` ones
    excepted."""
    inside = workspace.rstrip(os.sep) + os.sep
    prefixes = tuple(directory.rstrip(os.sep) + os.sep for directory in covered if directory)
    reopen = tuple(directory.rstrip(os.sep) + os.sep for directory in reopened)
    found: dict[str, None] = {}
    for path in unix_sockets() if listing is None else listing:
        hidden_anyway = path.startswith(prefixes) and not path.startswith(reopen)
        if path.startswith(inside) or hidden_anyway or path in allowed or not _is_socket(path):
            continue
        found[path] = None
        if len(found) >= MAX_SOCKETS:
            break
    return tuple(found)


def unix_sockets() -> tuple[str, ...]:
    """The path of each Unix socket bound to one, from ``/proc/net/unix`` (none if
    unreadable). A path bound twice is listed twice: a socket bound anew where a
    stale one still is changes the listing."""
    try:
        with open("/proc/net/unix", encoding="utf-8", errors="replace") as listing:
            return tuple(_SOCKET_LINE.findall(listing.read()))
    except OSError:
        return ()


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


class Candidates(NamedTuple):
    """The paths to hide if they exist, and how to tell when that changes."""

    paths: tuple[str, ...]
    parents: tuple[str, ...]
    """Directories whose mtimes say whether any of the others appeared or went."""
    globs: tuple[str, ...]
    """Patterns with magic above their last part ("~/projects/*/.env"), which can
    match in directories no mtime watches: looked at anew every time."""
    in_tmp: tuple[str, ...]
    """Paths under ``/tmp``, which changes all the time: looked at anew every time
    (a couple of stats) rather than let ``/tmp`` decide for the others."""


def hidden_candidates(home: str, hide: tuple[str, ...]) -> Candidates:
    """The `Candidates` for ``$HOME`` at ``home`` and ``[sandbox] hide``."""
    return _candidates(home, hide, *_kfd_dirs())


@functools.lru_cache(maxsize=8)
def _candidates(home: str, hide: tuple[str, ...], *kfd_dirs: str) -> Candidates:
    paths = (
        *(os.path.join(home, name) for name in HIDDEN_IN_HOME),
        *HIDDEN_SYSTEM,
        *(os.path.expanduser(path) for path in hide),
        *kfd_dirs,
    )
    globs = tuple(c for c in paths if glob.has_magic(os.path.dirname(c)))
    in_tmp = tuple(c for c in paths if c.startswith("/tmp/") and c not in globs)
    parents = sorted({os.path.dirname(c) for c in paths if c not in globs and c not in in_tmp})
    return Candidates(paths, tuple(parents), globs, in_tmp)


def _kfd_dirs() -> tuple[str, str, str, str]:
    """kfd's own config, state, runtime and cache directories (from the daemon's
    environment, as `kfd.paths` has them), remembered per environment."""
    return _kfd_dirs_for(
        os.environ.get("HOME", ""),
        *(os.environ.get(name, "") for name in XDG_VARIABLES),
    )


XDG_VARIABLES = ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME")
"""The variables `kfd.paths` reads kfd's own directories from (with ``HOME``)."""


@functools.lru_cache(maxsize=4)
def _kfd_dirs_for(*environment: str) -> tuple[str, str, str, str]:
    del environment  # the key: `kfd.paths` reads the same variables itself
    return (
        str(paths.config_dir()),
        str(paths.state_dir()),
        str(paths.runtime_dir()),
        str(paths.cache_dir()),
    )


RACY_NS = 2_000_000_000
"""A path changed this recently (ns) may change again within the same tick of its
file system's clock without its timestamps moving (a second on ext3, two on FAT):
what it holds is not remembered."""


def stamps(paths: Iterable[str]) -> tuple[Stamp, ...]:
    """The `Stamp` of each path (symbolic links followed, as mounts follow them)."""
    taken: list[Stamp] = []
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            taken.append(None)
        else:
            taken.append(
                (info.st_ino, info.st_mtime_ns, info.st_ctime_ns, info.st_mode, info.st_uid)
            )
    return tuple(taken)


Stamp = tuple[int, int, int, int, int] | None
"""A path's inode, mtime and ctime (ns), mode and owner; None if it does not exist.
A directory's mtime moves when an entry appears, goes or is renamed; its ctime
also when its mode or owner changes."""


def trusted(taken: Iterable[Stamp]) -> bool:
    """Whether none of ``taken`` changed within `RACY_NS`."""
    recent = time.time_ns() - RACY_NS
    return all(stamp is None or max(stamp[1], stamp[2]) < recent for stamp in taken)


def _existing(candidates: Candidates) -> tuple[tuple[tuple[str, bool], ...], tuple[str, ...]]:
    """(the candidates that exist and that kfd's user can read, the ones that exist
    but it cannot read: what it cannot read, its commands cannot either, so no mount
    is needed, and mounts cost).

    Remembered while the directories that hold them are unchanged, and the ones it
    cannot read still the same (`stamps`): a credential file created later changes
    its directory, one made readable its ctime. As git does with its index, a path
    changed too recently to tell a later change apart is not trusted. Globs over
    directories and paths under ``/tmp`` are looked at every time.
    """
    fresh = (*candidates.globs, *candidates.in_tmp)
    key = (candidates.paths, stamps(candidates.parents))
    cached = _EXISTING.get(key)
    if cached is not None and stamps(cached[1]) == cached[2]:
        found, unreadable = cached[0], cached[1]
    else:
        found, unreadable = _look(c for c in candidates.paths if c not in fresh)
        _EXISTING.clear()  # one machine, one list of candidates: keep the latest only
        taken = stamps(unreadable)
        if trusted((*key[1], *taken)):
            _EXISTING[key] = (found, unreadable, taken)
    if not fresh:
        return found, unreadable
    more, closed = _look(fresh)
    return tuple(dict((*found, *more)).items()), (*unreadable, *closed)


_EXISTING: dict[
    tuple[tuple[str, ...], tuple[Stamp, ...]],
    tuple[tuple[tuple[str, bool], ...], tuple[str, ...], tuple[Stamp, ...]],
] = {}


def _look(candidates: Iterable[str]) -> tuple[tuple[tuple[str, bool], ...], tuple[str, ...]]:
    """(the readable candidates, as real paths with whether each is a directory; the
    existing ones kfd's user cannot read)."""
    found: dict[str, bool] = {}
    unreadable: list[str] = []
    for candidate in candidates:
        for path in glob.glob(candidate) if glob.has_magic(candidate) else (candidate,):
            try:
                info = os.stat(path)
            except OSError:
                continue
            if not os.access(path, os.R_OK):
                unreadable.append(path)
                continue
            # A symlink is hidden where it points (bwrap follows it), and named so here.
            found[os.path.realpath(path)] = stat.S_ISDIR(info.st_mode)
    return tuple(found.items()), tuple(unreadable)
