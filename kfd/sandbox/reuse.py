"""The previous command's `Layout`, reused while nothing it was gathered from changed.

A session runs command after command in the same workspace, with the same
``[sandbox]`` settings and environment: gathering the `Layout` anew each time
(about forty paths looked at, several directories listed) costs more than
checking that none of it changed. `gather` remembers the last `Layout` of
each set of settings with the stamps of what it depends on:

- the directories that hold the paths to hide (a credential file created
  since changes its directory's mtime) and those of them kfd cannot read (one
  made readable changes its ctime), the workspace, its git directories
  and their ``hooks``, ``.kfd``, the directories in the workspace whose
  programs the host runs (those on ``PATH``, part of what is remembered by,
  with their parents: one installed since is read-only, not swept), the cache
  home, ``$XDG_RUNTIME_DIR`` and every socket and socket directory it covers;
- the repository the workspace belongs to (`kfd.git.repository.find`, run
  every time: an outer repository may appear above it);
- the repositories below it (`kfd.sandbox.repositories.find`, asked every
  time: it walks the workspace once and then reads what inotify saw);
- the paths sockets are bound to (``/proc/net/unix``, read every time: a
  socket bound since must be covered);
- what stands at each protected name (`kfd.sandbox.identities.intact`, one
  ``lstat`` each): a name holding another thing since, however its stamps
  look, is not the layout's any more.

Any difference, and the `Layout` is gathered anew. Nothing is remembered that
a stamp cannot vouch for: a path changed within
`kfd.sandbox.layout.RACY_NS` (a later change in the same tick of the file
system's clock would leave its timestamps as they were, as git knows of its
index), a glob whose directories no stamp watches, a protected name that is a
symbolic link (what it leads to lies elsewhere), a configured program's paths.
Blocking, like `kfd.sandbox.layout.gather`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from kfd.agent.instructions import NAMES as INSTRUCTION_FILES
from kfd.git import repository
from kfd.sandbox import hookspath, identities, repositories
from kfd.sandbox import layout as facts
from kfd.sandbox.layout import RC_FILES, Layout, Stamp, stamps, trusted


class _Remembered(NamedTuple):
    found: repository.Repository | repository.Refused | None
    listing: tuple[str, ...]
    watched: tuple[str, ...]
    stamps: tuple[Stamp, ...]
    layout: Layout


_remembered: dict[tuple[object, ...], _Remembered] = {}
_lock = threading.Lock()
MAX_REMEMBERED = 16
"""Settings remembered at once (sessions in different workspaces, language servers)."""


def gather(
    workspace: Path,
    *,
    writable: bool,
    hide: Sequence[str] = (),
    sockets: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    program: Sequence[str] = (),
) -> Layout:
    """`kfd.sandbox.layout.gather`, from the previous command's `Layout` where nothing
    it was gathered from changed. Blocking."""
    environ = os.environ if environ is None else environ
    root = os.path.realpath(workspace)
    found = repository.find(Path(root))
    listing = facts.unix_sockets()
    key = (
        root,
        writable,
        tuple(hide),
        tuple(sockets),
        tuple(program),
        environ.get("HOME", ""),
        environ.get("XDG_RUNTIME_DIR", ""),
        environ.get("PATH", ""),
        *(os.environ.get(name, "") for name in ("HOME", *facts.XDG_VARIABLES)),
    )
    with _lock:
        last = _remembered.get(key)
    if (
        last is not None
        and last.found == found
        and last.listing == listing
        and stamps(last.watched) == last.stamps
        and _same_repositories(last.layout)
        and identities.intact(last.layout.identities)
    ):
        return last.layout
    with _lock:
        _remembered.pop(key, None)
    # Stamped before gathering what they vouch for, as git stats a file before it
    # reads it: whatever changes while the facts are gathered moves a stamp.
    predicted = _predicted(root, found, hide, environ) if not program else None
    before = stamps(predicted or ())
    layout = facts.gather(
        Path(root),
        writable=writable,
        hide=hide,
        sockets=sockets,
        environ=environ,
        program=program,
        found=found,
        listing=listing,
        walker=repositories.find,
    )
    extra = _extra(layout, hide, sockets, environ)
    if predicted is None or extra is None:
        return layout
    taken = (*before, *stamps(extra))
    if not trusted(taken):
        return layout
    with _lock:
        if len(_remembered) >= MAX_REMEMBERED:
            _remembered.clear()
        _remembered[key] = _Remembered(found, listing, (*predicted, *extra), taken, layout)
    return layout


def _same_repositories(layout: Layout) -> bool:
    """Whether the repositories below the workspace are those ``layout`` protects."""
    if not layout.writable and not layout.incomplete:
        return True  # nothing in the workspace is written: nothing to protect
    now = repositories.find(layout.workspace, facts.layout_pruned(layout))
    if layout.incomplete:
        return not now.complete
    return now.complete and now.markers == layout.markers


def remembers(workspace: Path) -> bool:
    """Whether the next command in ``workspace`` may reuse a remembered `Layout`."""
    root = os.path.realpath(workspace)
    with _lock:
        return any(last.layout.workspace == root for last in _remembered.values())


def forget() -> None:
    """Remember nothing (tests that change what a stamp cannot see)."""
    with _lock:
        _remembered.clear()
    repositories.forget()


def _predicted(
    root: str,
    found: repository.Repository | repository.Refused | None,
    hide: Sequence[str],
    environ: Mapping[str, str],
) -> tuple[str, ...] | None:
    """The paths a `Layout` of ``root`` depends on that are known before gathering it;
    None if stamps cannot vouch for it."""
    home = _home(environ)
    candidates = facts.hidden_candidates(home, tuple(hide))
    if candidates.globs:
        return None
    # Under the private /tmp, what is hidden is out of reach anyway, but in the
    # workspace (bound back) or a configured program's directory (such a layout is
    # never remembered); and /tmp changes all the time.
    inside = (os.path.dirname(path) for path in candidates.in_tmp if _under(path, root))
    known: dict[str, bool] = {}
    watched = [_existing_ancestor(path, known) for path in (*candidates.parents, *inside)]
    watched += [root, os.path.join(root, ".git"), os.path.join(root, ".kfd")]
    if _under(home, root):
        watched.append(home)
    if isinstance(found, repository.Repository) and str(found.root) == root:
        for git_dir in dict.fromkeys((str(found.git_dir), str(found.common_dir))):
            watched += [git_dir, os.path.join(git_dir, "hooks")]
    return tuple(dict.fromkeys(watched))


def _extra(
    layout: Layout, hide: Sequence[str], sockets: Sequence[str], environ: Mapping[str, str]
) -> tuple[str, ...] | None:
    """The paths ``layout`` depends on that gathering it found; None if stamps cannot
    vouch for it."""
    root = layout.workspace
    protected = [os.path.join(root, name) for name in (*RC_FILES, *INSTRUCTION_FILES)]
    if layout.home:
        protected += [os.path.join(layout.home, name) for name in layout.home_entries]
    # A link is protected where it leads in the workspace, which no stamp watches.
    if any(os.path.islink(path) and _under(os.path.realpath(path), root) for path in protected):
        return None
    watched = [*layout.unreadable, *layout.git_files]  # a gitdir: file rewritten in place
    for git_dir in layout.git_dirs:
        watched += [git_dir.path, os.path.join(git_dir.path, "hooks")]
    # Where core.hooksPath is set (a file edited in place), and what it names.
    home = _home(environ)
    watched += hookspath.configuration_files(home, environ, (g.path for g in layout.git_dirs))
    for path in layout.hooks_dirs:
        watched += [path, os.path.dirname(path)]
    # Directories of programs the host runs (PATH, a key of what is remembered, names
    # them): one installed since must be read-only, not swept.
    for path in layout.program_dirs:
        watched += [path, os.path.dirname(path)]
    for path in (layout.cache_home, layout.runtime_dir):
        if path:
            watched.append(path)
    configured = (os.path.realpath(os.path.expanduser(path)) for path in sockets)
    for socket in (*layout.sockets, *configured):
        watched += [socket, os.path.dirname(socket)]
    watched += layout.socket_dirs
    return tuple(dict.fromkeys(watched))


def _home(environ: Mapping[str, str]) -> str:
    return os.path.realpath(environ.get("HOME") or os.path.expanduser("~"))


def _existing_ancestor(path: str, known: dict[str, bool]) -> str:
    """``path``, or if missing its nearest existing ancestor: whatever appears on the
    way down changes that one's mtime first. Fewer paths to stamp (most of the
    credential stores' directories do not exist on a given machine). ``known``:
    what is a directory, as found so far."""
    while os.path.dirname(path) != path:
        if path not in known:
            known[path] = os.path.isdir(path)
        if known[path]:
            break
        path = os.path.dirname(path)
    return path


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def remembered(layout: Layout) -> bool:
    """Whether ``layout`` is one `gather` remembers (the next command will likely get it
    again, unless something it was gathered from changes)."""
    with _lock:
        return any(last.layout is layout for last in _remembered.values())
