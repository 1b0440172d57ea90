"""What a command left in git's state that the host's git would obey: undone when it ends.

The sandbox lets a command record work in a git directory (`GIT_WRITABLE`:
the index, refs, objects, a rebase's state) and create repositories of its
own. Some of what git records there makes the host's git, later, run a
program or write outside the work tree when the user runs an ordinary
command, and the rule is that code the sandbox ran never leaves anything the
host obeys that way. So after every command, for each git directory the
sandbox protected and each repository the command created:

- **the index**: an entry whose path git itself would never accept from a
  tree (absolute, empty, ``.`` or ``..`` components, a ``.git`` component in
  any case: ``.git/hooks/pre-commit``, ``../outside``) is written where it
  says by the host's ``git checkout -- .``. Such an index, or one kfd cannot
  read, is moved aside to ``index.kfd-unsafe`` (`ASIDE`, a name git ignores), never
  deleted: the user's files are untouched and ``git reset`` rebuilds the
  index from ``HEAD`` (what was staged is then unstaged; the moved file
  holds it still). Fail closed: a broken index is git's to repair, not to
  obey. Parsed only when its stamp differs from the one kfd last found safe
  (`kfd.sandbox.gitchecks`), so a command that does not touch it costs one ``stat``;
- **to-do lists** (``rebase-merge/git-rebase-todo``, ``sequencer/todo``):
  an ``exec`` line runs a shell command at ``git rebase --continue``; each
  is made a comment (`kfd.sandbox.gitchecks.disarmed`), and the result says so. A list the
  command left as it found it (`before`) is left alone: the user's own
  rebase, stopped on a conflict the model is asked to fix, keeps its
  ``exec`` lines;
- **symbolic links in the writable state** (``logs/HEAD``,
  ``COMMIT_EDITMSG``, ``rebase-merge/message``, ``rr-cache/<id>/postimage``):
  git never makes one there and follows it, to write or to read; each is
  removed (`kfd.sandbox.gitlinks`). A link that stood at the top of a git
  directory when the command started is the user's (never mounted over): one
  the command re-pointed or replaced is removed (or moved aside, not being a
  link any more) (`_repointed`);
- **files that name paths or programs** (``MERGE_RR``'s paths, which
  rerere writes and reads; a rebase's or cherry-pick's merge strategy, run
  as ``git merge-<strategy>``): one git would take out of the work tree, or
  to a program in it, is moved aside (`kfd.sandbox.gitnames`, which lists
  what else of that state was looked at and why it is harmless);
- **new names at the top of a protected git directory** that git does not
  record work in (``modules``, ``worktrees``, ``remotes``, anything else):
  moved aside (``modules.kfd-unsafe``: the host's git may have written it
  meanwhile, and nothing is deleted that could be the user's), a link
  removed. The mounts deny them by default where they exist; a name that
  did not exist cannot be mounted over without leaving a stand-in, so it is
  denied once the command ends (`unexpected_entries`);
- **repositories the command created** (below the workspace's top, or the
  top's own where there was none): the host's ``git status`` at the top
  enters one through a gitlink (an index entry, a commit, ``.gitmodules``)
  and obeys its configuration. Where that configuration runs programs
  (`kfd.policy.gitconfig.running_keys`: ``core.fsmonitor``, filters,
  ``diff.external``...) or names a hooks directory (``core.hooksPath``:
  the host's next ``git commit`` there runs what is in it), its ``config`` is
  moved aside (``config.kfd-unsafe``),
  and hooks it holds too; its index and to-do lists are checked as above.
  The git directories are those git would use (a link followed, a
  ``gitdir:`` file read, the ``commondir`` it names, where git reads the
  configuration), whatever their shape, wherever the command could write
  them (`in_reach`): the workspace, the project's cache home (writable in
  the sandbox, and the host's afterwards) and what git records work in of
  a protected git directory (``.git/refs/x``). Whatever leads git into such a
  repository, the check is on the repository itself: a gitlink can only
  lead git into a checkout in the work tree, and every checkout a command
  could configure is a new one (the configuration of those that existed is
  read-only).

Blocking (a listing and a few ``stat`` calls per git directory): called in a
worker thread once every process of the command is gone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from kfd.git import repository
from kfd.policy import gitconfig
from kfd.regular import NotRegular, TooLarge, read_regular
from kfd.sandbox import gitlinks, gitnames, repositories
from kfd.sandbox.aside import ASIDE, listing, move_aside
from kfd.sandbox.gitchecks import REMOVED_ENTRY, TODO_LISTS, check_git_dir, stamp
from kfd.sandbox.gitchecks import Before as Before  # part of this module's interface
from kfd.sandbox.layout import SWEPT_IN_GIT_DIR, GitDir, Layout, layout_pruned
from kfd.sandbox.mounts import GIT_WRITABLE
from kfd.sandbox.sweep import sweep

STAMPED = (*TODO_LISTS, *gitnames.STRATEGY_FILES, gitnames.SEQUENCER_OPTIONS)
"""What of a rebase's or cherry-pick's state is the user's while the command leaves it
as it was (`before`): the to-do lists, the strategy files."""

MOUNTED_IN_GIT_DIR = frozenset({"config", "hooks"})
"""Names the sandbox's own mounts create when missing (an empty, read-only ``config``;
an empty ``hooks``): made by kfd, not the command, and harmless."""

HOST_DAEMON = frozenset({"fsmonitor--daemon.ipc", "fsmonitor--daemon"})
"""What git's own file system monitor, running on the host, makes in a git directory
(meanwhile, perhaps): its socket and cookie directory."""


def unexpected_entries(before: Collection[str], now: Iterable[str]) -> list[str]:
    """The names at the top of a protected git directory that a command left and may
    not: new since ``before``, and neither where git records work (`GIT_WRITABLE`,
    a lock), nor swept by name already (`SWEPT_IN_GIT_DIR`), nor the sandbox's own
    stand-ins, nor the host's file system monitor's."""
    return sorted(
        name
        for name in now
        if name not in before
        and name not in GIT_WRITABLE
        and not name.endswith(".lock")
        and name not in SWEPT_IN_GIT_DIR
        and name not in MOUNTED_IN_GIT_DIR
        and name not in HOST_DAEMON
    )


def in_reach(path: str, places: Iterable[str], protected: Iterable[str]) -> bool:
    """Whether a sandboxed command could have made the git directory at ``path`` (a
    real path), so that what it holds is the command's to be checked: it lies in
    one of ``places`` (where the command's writes outlive it: the workspace, the
    project's cache home) or in what git records work in (`GIT_WRITABLE`, a lock)
    of a ``protected`` git directory, in the workspace or outside it (a linked
    worktree's). Not a protected one itself, nor in the read-only part of one
    (``.git/modules/<name>``): what those hold is the user's."""
    inner = max((d for d in protected if _under(path, d)), key=len, default=None)
    if inner is None:
        return any(_under(path, place) for place in places)
    first = os.path.relpath(path, inner).split(os.sep, 1)[0]
    return path != inner and (first in GIT_WRITABLE or first.endswith(".lock"))


def new_repositories(
    layout: Layout,
    markers: Iterable[tuple[str, int]],
    known: Iterable[tuple[str, int]] | None = None,
) -> list[str]:
    """The ``.git`` entries and bare-shaped directories in ``markers`` (as found after a
    command) that were not there before: repositories the command created. Before is
    ``known`` (the markers recorded while no command ran, `kfd.sandbox.expected`)
    where given, else ``layout``'s. The workspace's own ``.git`` too where it had
    none and could get one."""
    before = {path for path, _ in (layout.markers if known is None else known)}
    found = [path for path, _ in markers if path not in before]
    top = os.path.join(layout.workspace, ".git")
    if layout.marker == "none" and os.path.lexists(top):
        found.insert(0, top)
    return found


# The I/O shell.


def before(layout: Layout) -> Before:
    """What `undo` must tell the command's doing from the user's: the to-do lists of
    ``layout``'s git directories as they are now (two ``stat`` calls a directory).
    One the command left as it was is the user's rebase (their own ``exec`` lines),
    or was checked after the command that wrote it."""
    if not layout.writable or layout.incomplete:
        return {}
    found: Before = {}
    for git_dir in layout.git_dirs:
        for directory, name in STAMPED:
            path = os.path.join(git_dir.path, directory, name)
            if (now := stamp(path)) is not None:
                found[path] = now
    return found


def undo(
    layout: Layout,
    started: Before | None = None,
    known: tuple[Iterable[tuple[str, int]], Iterable[str]] | None = None,
) -> list[str]:
    """Undo what the command that had ``layout`` left in git's state and may not;
    one note per thing undone (blocking). ``started``: `before` the command.
    ``known``: the repositories that are the user's, as markers (`new_repositories`)
    and real git directories, where ``layout``'s are not (it was gathered while
    another session's command ran, and may have found that command's).

    Each git directory, and each repository the command created, is checked on its
    own: whatever one check raises, the others still run, and what it did not finish
    checking is taken as unsafe and moved aside (`_unchecked`), never only noted (a
    tree too deep for a recursion skipped every check after it, round 17)."""
    if not layout.writable or layout.incomplete:
        return []
    root = layout.workspace
    notes: list[str] = []
    work_trees = {repository.gitdir_of(path): os.path.dirname(path) for path in layout.git_files}
    for git_dir in layout.git_dirs:
        notes += _undo_protected(git_dir, root, work_trees.get(git_dir.path), started or {})
    if layout.cache_home:
        cache_home = os.path.realpath(layout.cache_home)
        notes += _in_cache_home(layout.markers, cache_home, root)
    try:
        new = _created(layout, None if known is None else known[0])
    except Exception as exc:  # fail closed: no gitlink leads into what was not found
        return notes + _no_gitlinks(layout.git_dirs, root, UNSEARCHED.format(_failure(exc)))
    if new is None:
        return notes + _no_gitlinks(layout.git_dirs, root, UNWALKED)
    # The cache home as git directories are found: real paths.
    places = (root, *([os.path.realpath(layout.cache_home)] if layout.cache_home else []))
    protected = (
        [os.path.realpath(git_dir.path) for git_dir in layout.git_dirs]
        if known is None
        else list(known[1])
    )
    created: dict[str, str] = {}
    for marker in new:
        try:
            git_dirs = _git_dirs_of(marker, places, protected)
        except Exception:
            git_dirs = None
        if git_dirs is None:  # fail closed: what kfd cannot follow, git may
            notes += _set_aside_each([marker], root, UNRESOLVED)
        for path in git_dirs or ():
            created.setdefault(path, marker)
    for path, marker in created.items():
        # Reached from where it lies (without a link on the way), or from the top.
        start = next((place for place in places if _under(path, place)), os.sep)
        notes += _disarm_or_set_aside(path, start, marker)
    return notes


def _created(layout: Layout, known: Iterable[tuple[str, int]] | None) -> list[str] | None:
    """The repositories the command created (`new_repositories`), or None when the
    walk could not go through every directory in time, or found something else each
    time (directories moved while it walked hide what is below them)."""
    root = layout.workspace
    pruned = layout_pruned(layout)
    found = repositories.find_settled(root, pruned)
    if not found.complete:
        # More directories than a walk before each command goes through: the command
        # made them, and perhaps a repository among them. Walk them all, for a while,
        # twice: nothing moved meanwhile if both find the same.
        found = repositories.walk_until(root, pruned, MAX_WALK_SECONDS)
        again = repositories.walk_until(root, pruned, MAX_WALK_SECONDS) if found.complete else None
        if again != found:
            return None
    if not found.complete:
        return None
    return new_repositories(layout, found.markers, known)


def _undo_protected(
    git_dir: GitDir, root: str, work_tree: str | None, started: Before
) -> list[str]:
    """The checks of one protected git directory, each run whatever another raised;
    where one raised, what it covers is moved aside (`_unchecked`)."""
    path = git_dir.path
    kept = dict(zip(git_dir.links, git_dir.targets, strict=False))
    try:
        names = listing(path, root)
    except Exception as exc:
        return _unchecked(path, root, kept, _failure(exc))
    if names is None:
        return []
    listed = names  # for the steps, as a name mypy knows is not None
    steps: list[Callable[[], list[str]]] = [
        lambda: _repointed(path, kept, root),
        lambda: gitlinks.remove_links(path, root, kept),
        lambda: _unexpected(path, git_dir.entries, listed, root),
        lambda: check_git_dir(path, listed, root, work_tree or _work_tree(path), started),
    ]
    notes: list[str] = []
    failures: list[str] = []
    for step in steps:
        try:
            notes += step()
        except Exception as exc:
            failures.append(_failure(exc))
    if failures:
        notes += _unchecked(path, root, kept, failures[0])
    return notes


def _unexpected(path: str, before: Collection[str], names: Iterable[str], root: str) -> list[str]:
    """The `unexpected_entries` of the git directory at ``path`` undone: a link
    removed, anything else moved aside."""
    notes: list[str] = []
    for name in unexpected_entries(before, names):
        entry = os.path.join(path, name)
        if os.path.islink(entry):  # nothing of anyone's in there: gone
            notes += sweep([(entry, REMOVED_ENTRY)], root)
        else:  # perhaps the host's git wrote it meanwhile: kept, where git never looks
            notes.append(move_aside(entry, name + ASIDE, root, REMOVED_ENTRY))
    return notes


UNCHECKED_STATE = (
    "index",
    "rebase-merge",
    "rebase-apply",
    "sequencer",
    "MERGE_RR",
    "rr-cache",
    "logs",
)
"""What of a git directory's writable state the host's git obeys or follows, moved
aside when kfd could not finish checking it (`_unchecked`): the index (paths it
writes, gitlinks it enters), a rebase's or cherry-pick's state (``exec`` lines,
strategies), rerere's (paths it writes), the logs (appended to through a link)."""


def _unchecked(git_dir: str, root: str, kept: Mapping[str, str], failure: str) -> list[str]:
    """Fail closed on the git directory at ``git_dir``, which kfd could not finish
    checking (``failure`` says why): its `UNCHECKED_STATE`, and each link at its top
    that is not one of the user's ``kept`` ones, moved aside (one note each), each
    whatever moving another raised. ``refs``, ``objects`` and ``HEAD`` stay: git
    does not run what they hold, and without them there is no repository."""
    why = (
        f"kfd could not finish checking {git_dir} after this command ({failure}), and "
        "the host's git would obey or follow what it holds"
    )
    try:
        names = listing(git_dir, root) or []
    except Exception:
        names = list(UNCHECKED_STATE)  # not listed: each looked for by its name
    moved = [name for name in UNCHECKED_STATE if name in names]
    for name in sorted(set(names) & GIT_WRITABLE):
        entry = os.path.join(git_dir, name)
        if name not in moved and os.path.islink(entry) and kept.get(name) != _target(entry):
            moved.append(name)
    paths = [os.path.join(git_dir, name) for name in moved]
    return _set_aside_each(paths, root, why) or [f"{why}; look at it before you run git there"]


def _target(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _set_aside_each(paths: Iterable[str], root: str, why: str) -> list[str]:
    """Each of ``paths`` moved aside (`move_aside`: its name and `ASIDE`), whatever
    moving another raised; one note each, what could not be done said too."""
    notes = []
    for path in paths:
        try:
            notes.append(move_aside(path, os.path.basename(path) + ASIDE, root, why))
        except Exception as exc:
            notes.append(
                f"kfd could not move aside {path} ({_failure(exc)}): {why}; look at it "
                "before you run anything there"
            )
    return notes


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


UNRESOLVED = (
    "kfd cannot tell which git directory it leads to, and the host's git may find one "
    "there whose configuration runs programs"
)

MAX_WALK_SECONDS = 10.0
"""How long `undo` walks a workspace a command filled with more directories than
`kfd.sandbox.repositories.MAX_DIRECTORIES` (once: the next command finds it too large
and gets it read-only), looking for repositories it created."""

UNWALKED = (
    "this command left more directories than kfd could look through for repositories it "
    "created (or they moved while kfd looked), and your git would enter one through a "
    "gitlink the index lists and obey its configuration; run `git reset` (what was "
    "staged is unstaged) only once you know what the command created, and look for "
    "`.git` directories first"
)


UNSEARCHED = (
    "kfd could not look through the workspace for repositories this command created "
    "({}), and your git would enter one through a gitlink the index lists and obey its "
    "configuration; run `git reset` (what was staged is unstaged) only once you know what "
    "the command created, and look for `.git` directories first"
)


def _no_gitlinks(git_dirs: Iterable[GitDir], root: str, why: str) -> list[str]:
    """Fail closed where the repositories a command may have created are not known:
    every protected index moved aside, so that no gitlink it lists leads the host's
    git into one (``git status`` enters a submodule the index lists, never one only
    ``HEAD`` does). The rest of each git directory was checked already."""
    indexes = [os.path.join(git_dir.path, "index") for git_dir in git_dirs]
    return _set_aside_each([index for index in indexes if os.path.lexists(index)], root, why)


def _work_tree(git_dir: str) -> str | None:
    """The work tree of the git directory at ``git_dir``, as git finds it: where its
    ``.git`` is, or a linked worktree's (its ``gitdir`` file names that one's
    ``.git``); None for a bare repository or one kfd cannot tell."""
    if os.path.basename(git_dir) == ".git":
        return os.path.dirname(git_dir)
    marker = repository.read_pointer(os.path.join(git_dir, "gitdir"), "")
    return os.path.dirname(marker) if marker and os.path.isabs(marker) else None


def _repointed(git_dir: str, kept: dict[str, str], root: str) -> list[str]:
    """The links at the top of ``git_dir`` when the command started (the user's, never
    mounted over) that it re-pointed or replaced: git would follow one to what the
    command chose (a ``config`` of its own). A link is removed; anything else (a
    name git records work in stays, `kfd.sandbox.gitlinks` looks at it) moved aside."""
    notes = []
    for name, target in kept.items():
        path = os.path.join(git_dir, name)
        try:
            now = os.readlink(path)
        except FileNotFoundError:
            continue
        except OSError:
            now = None  # no longer a link
        if now == target or (now is None and name in GIT_WRITABLE):
            continue
        if now is not None:
            notes += sweep([(path, REMOVED_ENTRY)], root)
        else:
            notes.append(move_aside(path, name + ASIDE, root, REMOVED_ENTRY))
    return notes


def _git_dirs_of(marker: str, places: Sequence[str], protected: Sequence[str]) -> list[str] | None:
    """The git directories git uses for a new marker, as git resolves them: the one
    it leads to (a link followed, a ``gitdir:`` file read) and the common one its
    ``commondir`` names (where git reads ``config`` and ``hooks`` from); those the
    command could have made (`in_reach` of ``places`` and ``protected``). None when
    kfd cannot resolve the marker: never taken for a harmless one."""
    git_dir = resolved(marker)
    if git_dir is None:
        return None
    found = [git_dir]
    common = repository.read_pointer(os.path.join(git_dir, "commondir"), "")
    if common:
        found.append(os.path.realpath(os.path.join(git_dir, common)))
    return [path for path in found if in_reach(path, places, protected)]


def resolved(marker: str) -> str | None:
    """The real path of the git directory ``marker`` (a ``.git``, a bare-shaped
    directory) leads git to, read as git reads it (`kfd.git.repository.read_pointer`);
    None when there is none kfd can find."""
    git_dir = os.path.realpath(marker) if os.path.isdir(marker) else repository.gitdir_of(marker)
    return git_dir if git_dir and os.path.isdir(git_dir) else None


def _in_cache_home(markers: Iterable[tuple[str, int]], cache: str, root: str) -> list[str]:
    """The git directories in the project's ``cache`` home that a ``.git`` file or link
    of ``markers`` leads git to, checked after every command, not only when new: the
    command could write there whatever mounts protect (a parent renamed away, a copy
    made in its place), and the host's ``git status`` at the top obeys them. ``root``:
    the workspace, where the markers are."""
    notes: list[str] = []
    seen: set[str] = set()
    for marker, _inode in markers:
        if os.path.basename(marker) != ".git" or not _leads_away(marker):
            continue
        try:
            git_dirs = _git_dirs_of(marker, (cache,), ()) or ()
        except Exception as exc:  # fail closed: git is not led where kfd did not look
            why = f"kfd could not tell where it leads git ({_failure(exc)}): {UNRESOLVED}"
            notes += _set_aside_each([marker], root, why)
            continue
        for path in git_dirs:
            if path not in seen:
                seen.add(path)
                notes += _disarm_or_set_aside(path, cache, marker)
    return notes


def _leads_away(marker: str) -> bool:
    """Whether ``marker`` is a ``.git`` file or link (a directory leads nowhere else)."""
    return os.path.islink(marker) or os.path.isfile(marker)


def _disarm_or_set_aside(git_dir: str, root: str, marker: str) -> list[str]:
    """`_disarm_repository`; where it raises, what it did not finish checking is moved
    aside: the configuration and hooks, and what `_unchecked` moves."""
    try:
        return _disarm_repository(git_dir, root, marker)
    except Exception as exc:
        failure = _failure(exc)
    why = (
        f"kfd could not finish checking {git_dir}, a repository this command created "
        f"({failure}), and the host's git would run programs its configuration names"
    )
    programs = [os.path.join(git_dir, name) for name in ("config", "config.worktree", "hooks")]
    notes = _set_aside_each([path for path in programs if os.path.lexists(path)], root, why)
    return notes + _unchecked(git_dir, root, {}, failure)


def _disarm_repository(git_dir: str, root: str, marker: str | None = None) -> list[str]:
    """A repository the command created (found by ``marker``, its ``.git`` or the bare
    directory): its configuration moved aside where it runs programs, its hooks moved
    aside, its links removed, its index, to-do lists and other state checked."""
    names = listing(git_dir, root)
    if names is None:
        return []
    notes = gitlinks.remove_links(git_dir, root)
    for name in ("config", "config.worktree"):
        keys = _config_keys(os.path.join(git_dir, name)) if name in names else []
        if keys:
            why = f"it sets {', '.join(dict.fromkeys(keys))}, which the host's git would run"
            notes.append(move_aside(os.path.join(git_dir, name), name + ASIDE, root, why))
    if "hooks" in names and _real_hooks(os.path.join(git_dir, "hooks")):
        why = "they would run at the host's next git command there"
        notes.append(move_aside(os.path.join(git_dir, "hooks"), "hooks" + ASIDE, root, why))
    at_marker = marker is not None and os.path.basename(marker) == ".git"
    work_tree = os.path.dirname(marker) if marker and at_marker else _work_tree(git_dir)
    return notes + check_git_dir(git_dir, names, root, work_tree)


def _config_keys(path: str) -> list[str]:
    """What in a new repository's configuration ``path`` the host's git would run, or
    why kfd cannot say (then it is moved aside): never waiting on a FIFO (round 18:
    one held the checks, and every later one, for good), never through a link."""
    try:
        text = read_regular(path, gitconfig.MAX_CONFIG_BYTES, follow=False)
    except FileNotFoundError:
        return []
    except TooLarge:
        return ["(a configuration too large to read)"]
    except NotRegular:
        return ["(a configuration that is not a regular file)"]
    except OSError:  # a link (git would follow it), a loop
        return ["(a configuration kfd cannot read as a file)"]
    keys = gitconfig.running_keys(text.decode("utf-8", "replace"))
    # Hooks from a directory of the work tree, run by the host's next `git commit` there.
    return keys + (["core.hooksPath"] if gitconfig.hooks_path_values(path) else [])


def _real_hooks(path: str) -> bool:
    try:
        return any(not name.endswith(".sample") for name in os.listdir(path))
    except OSError:
        return False


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)
