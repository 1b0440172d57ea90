"""What an undo would do, decided from the recorded states and the files now (pure).

Undoing turn N of a session puts every file that turn N or a later turn of
the session changed (turns already undone left out) back as it was before
the earliest of them touched it. For each path:

- the file is as the last of those turns left it: restore it (``restore``);
- the file already is as it was before: nothing to do (``unchanged``);
- the content before was not kept (too large, unreadable): ``lost``;
- anything else means someone changed it after the turn (the user, another
  session): a ``conflict``, never overwritten silently. The caller shows it
  and asks: overwrite, keep the file as it is, or merge the undo into it.

What the user is shown is pinned by a `fingerprint` of every path's state
now: an answer is applied only if the files are still what was shown.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

from kfd.checkpoints.objects import State

Action = Literal["restore", "unchanged", "lost", "conflict"]


class Recorded(NamedTuple):
    """One path one turn changed: its state before the turn's first change, and after."""

    turn: int
    path: str
    before: State
    after: State


@dataclass(frozen=True, slots=True)
class Step:
    """What the undo does to one path."""

    path: str
    action: Action
    target: State
    """What the path held before the undone turns: what it goes back to."""
    expected: State
    """What the undone turns left it as."""
    current: State
    """What it holds now."""
    turns: tuple[int, ...]
    """The undone turns that changed it."""


def span(rows: Iterable[Recorded]) -> dict[str, tuple[State, State, tuple[int, ...]]]:
    """Per path: the state before the first of ``rows``' turns changed it, the state
    after the last, and those turns (rows that changed nothing are left out)."""
    merged: dict[str, tuple[State, State, tuple[int, ...]]] = {}
    for row in sorted(rows, key=lambda r: r.turn):
        if row.before.same(row.after) and row.path not in merged:
            continue
        known = merged.get(row.path)
        if known is None:
            merged[row.path] = (row.before, row.after, (row.turn,))
        else:
            merged[row.path] = (known[0], row.after, (*known[2], row.turn))
    return {p: v for p, v in merged.items() if not v[0].same(v[1]) or not v[0].kept}


def plan(rows: Iterable[Recorded], current: Mapping[str, State]) -> list[Step]:
    """The steps of undoing ``rows`` given the states ``current``ly on disk."""
    steps = []
    for path, (target, expected, turns) in sorted(span(rows).items()):
        now = current[path]
        if _equal(now, target):
            action: Action = "unchanged"
        elif not target.kept:
            action = "lost"
        elif _equal(now, expected):
            action = "restore"
        else:
            action = "conflict"
        steps.append(Step(path, action, target, expected, now, turns))
    return steps


def _equal(a: State, b: State) -> bool:
    return (not a.exists and not b.exists) or a.same(b)


def fingerprint(current: Mapping[str, State]) -> str:
    """A short digest of the states shown to the user (an answer must match it)."""
    digest = hashlib.sha256()
    for path in sorted(current):
        state = current[path]
        digest.update(f"{path}\0{state.sha}\0{state.mode}\n".encode())
    return digest.hexdigest()[:16]


def changed_files(rows: Iterable[Recorded]) -> list[tuple[str, str]]:
    """(path, how) for every path ``rows`` changed: ``added``, ``deleted``,
    ``modified`` or ``mode`` (only the executable bit or the kind)."""
    listed = []
    for path, (before, after, _) in sorted(span(rows).items()):
        if not before.exists:
            how = "added"
        elif not after.exists:
            how = "deleted"
        elif before.kept and after.kept and before.sha == after.sha:
            how = "mode"
        else:
            how = "modified"
        listed.append((path, how))
    return listed
