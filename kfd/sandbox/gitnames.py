"""Files in git's writable state that name paths or programs: checked when a command ends.

A command may write a git directory's merge and rebase state
(`kfd.sandbox.mounts.GIT_WRITABLE`). Most of it is data the host's git
checks itself (object names, ref names it validates, messages), but two
files name what git then writes or runs, unchecked:

- ``MERGE_RR`` (``<id>[.<n>]\\t<path>\\0`` records) names the paths rerere
  rewrites with ``rr-cache/<id>/postimage`` at the host's next ``git
  commit``, ``rebase --continue``, ``merge``, ``cherry-pick`` or ``am`` (an
  ``rr-cache`` directory turns rerere on). git takes each path as it is:
  ``../../.bashrc`` is written outside the work tree, and a path through a
  link of the work tree (rerere opens it with ``fopen``) wherever the link
  leads. Each path must be one git accepts from a tree
  (`kfd.policy.gitindex.canonical`) reached from the work tree without a
  link, each id an object name; else ``MERGE_RR`` and the ``rr-cache``
  entries it names are moved aside (`merge_rr_refusal`);
- a merge strategy (``rebase-merge/strategy``, ``rebase-apply/strategy``,
  ``strategy`` in ``sequencer/opts``) is run as ``git merge-<strategy>``:
  with a ``/`` in it, that is a program of the work tree (``x/evil`` runs
  ``git-merge-x/evil``) at the host's ``rebase --continue`` or
  ``cherry-pick --continue``. It must be a plain name, else the file is moved
  aside (`strategy_refusal`); a plain one is a program of git's own or on the
  host's ``PATH``, whose directories in the workspace are read-only
  (`kfd.sandbox.layout.program_directories`).

Looked at and found harmless, because git checks them or only reads them as
data: ``strategy_opts`` / ``strategy-option`` (``-X`` options, passed to the
strategy as arguments, never a program); ``gpg_sign_opt`` / ``gpg-sign`` (a key
id: the program is ``gpg.program``, from the read-only configuration);
``head-name``, ``onto``, ``orig-head``, ``HEAD``, ``packed-refs``,
``update-refs``, ``BISECT_TERMS`` (ref names git validates, object names);
``author-script`` (parsed by git, never sourced by a shell since git 2.20);
``autostash`` / ``MERGE_AUTOSTASH`` (an object given to ``git stash apply``,
whose options run nothing); ``done``, ``message``, ``MERGE_MSG`` and kin
(text); ``BISECT_LOG`` (replayed only from a file the user names);
``BISECT_NAMES``, ``info/exclude``, ``info/sparse-checkout`` (patterns);
``info/attributes`` (can only name drivers the read-only configuration
defines); ``objects/info/alternates`` (directories git reads objects from,
never writes to: it reveals nothing a command could name); the to-do lists'
``exec`` lines are `kfd.sandbox.gitstate`'s, links anywhere in this state
`kfd.sandbox.gitlinks`'s.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Collection

from kfd.policy.gitconfig import file_entries
from kfd.policy.gitindex import canonical
from kfd.regular import read_regular
from kfd.sandbox.sweep import reach

STRATEGY_FILES = (("rebase-merge", "strategy"), ("rebase-apply", "strategy"))
"""Where a rebase keeps the strategy ``--continue`` runs (either backend's directory)."""
SEQUENCER_OPTIONS = ("sequencer", "opts")
"""The options of a cherry-pick or revert, as a configuration file (``options.strategy``)."""

MAX_STATE_BYTES = 1024 * 1024
"""A larger ``MERGE_RR`` or strategy file is not read: it is moved aside (fail closed)."""

_RECORD = re.compile(rb"\A([0-9a-f]{40}|[0-9a-f]{64})(?:\.[0-9]+)?\t(.*)\Z", re.DOTALL)


def merge_rr_refusal(
    data: bytes, linked: Callable[[str], bool] = lambda _path: False
) -> tuple[str | None, list[str]]:
    """(Why the host's rerere must not obey ``MERGE_RR`` ``data``, or None; the ids of
    ``rr-cache`` it names). ``linked``: whether a path, from the work tree, meets a
    link or leads out of it."""
    ids: list[str] = []
    why = None
    for record in data.split(b"\0"):
        if not record:
            continue
        match = _RECORD.match(record)
        if match is None:
            why = why or "kfd cannot read it as rerere's list of conflicts"
            continue
        ids.append(match[1].decode())
        path = match[2]
        if not canonical(path):
            why = why or f"it names {path!r}, a path git would refuse, for rerere to write"
        elif linked(os.fsdecode(path)):
            why = why or f"it names {path!r}, which leads through a link, for rerere to write"
    if data and not data.endswith(b"\0"):
        why = why or "kfd cannot read it as rerere's list of conflicts"
    return why, ids


def strategy_refusal(value: str) -> str | None:
    """Why a merge strategy ``value`` must not reach the host's git, or None: one with
    a ``/`` (or a NUL) names a program of the work tree."""
    if "/" in value or "\0" in value:
        return f"its merge strategy {value!r} names a program of the work tree, which git would run"
    return None


def findings(
    git_dir: str,
    names: Collection[str],
    work_tree: str | None,
    changed: Callable[[str], bool],
) -> list[tuple[str, str, list[str]]]:
    """What to move aside in the git directory at ``git_dir`` (its top-level ``names``
    given): ``(path, why, rr-cache entries with it)``. A strategy file for which
    ``changed`` is False (as the command found it: the user's rebase) is left alone.
    ``work_tree``: where ``MERGE_RR``'s paths lie, if known."""
    found: list[tuple[str, str, list[str]]] = []
    if "MERGE_RR" in names:
        path = os.path.join(git_dir, "MERGE_RR")
        data = _read(path)
        if data is None:
            if os.path.lexists(path):
                found.append((path, "kfd cannot read it as rerere's list of conflicts", []))
        else:
            why, ids = merge_rr_refusal(data, lambda p: _linked(work_tree, p))
            if why is not None:
                cache = os.path.join(git_dir, "rr-cache")
                found.append((path, why, [os.path.join(cache, i) for i in dict.fromkeys(ids)]))
    for directory, name in STRATEGY_FILES:
        path = os.path.join(git_dir, directory, name)
        if directory not in names or not changed(path):
            continue
        data = _read(path)
        if data is None:
            if os.path.lexists(path):
                found.append((path, "kfd cannot read it as a merge strategy", []))
            continue
        why = strategy_refusal(os.fsdecode(data).strip())
        if why is not None:
            found.append((path, why, []))
    path = os.path.join(git_dir, *SEQUENCER_OPTIONS)
    if SEQUENCER_OPTIONS[0] in names and changed(path) and os.path.lexists(path):
        entries = file_entries(path)
        if entries is None:
            found.append((path, "kfd cannot read it as git's options", []))
        else:
            for key, value in entries:
                why = strategy_refusal(value) if key == "options.strategy" else None
                if why is not None:
                    found.append((path, why, []))
                    break
    return found


def _linked(work_tree: str | None, path: str) -> bool:
    """Whether ``path`` (canonical), from ``work_tree``, meets a link on its way or is
    one: rerere would write where it leads. Unknown work tree: False (git's own
    check is all there is, and its links are not the command's)."""
    if work_tree is None:
        return False
    full = os.path.join(work_tree, path)
    reached = reach(full, work_tree)
    if reached is None:
        return False  # missing on the way: rerere writes nothing there
    directory, name, shown = reached
    try:
        if shown != full:
            return True
        info = os.stat(name, dir_fd=directory, follow_symlinks=False)
    except OSError:
        return False
    finally:
        os.close(directory)
    return stat.S_ISLNK(info.st_mode)


def _read(path: str) -> bytes | None:
    """The bytes of file ``path`` (never through a link), or None if it is not a
    regular file kfd can read under `MAX_STATE_BYTES`. Never waiting: a FIFO a
    command left there (round 18: `mkfifo .git/MERGE_RR`) held the checks for good."""
    try:
        return read_regular(path, MAX_STATE_BYTES, follow=False)
    except OSError:
        return None
