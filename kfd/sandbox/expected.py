"""What every command in a workspace is checked against: the user's, recorded while no
command runs there.

A layout records what stands at each protected name (`kfd.sandbox.identities`),
which repositories lie below the workspace and which protected names are missing.
A layout gathered while another session's command runs in the same workspace
would take what that command put there for the user's. The other command then
keeps its plant renamed away while the first command's checks look, brings it
back, and the plant passes both checks (round 17). So the workspace has one
`Expected`, shared by every session and layout of it, and recorded only at a
quiet point: when no sandboxed command of the workspace (or of a workspace that
holds it or lies in it) runs or awaits its checks. `Running` counts a command
from before its layout is gathered to the end of its checks. The command that
finds the workspace quiet gathers its layout while every other start waits,
and that layout's facts become the record. Every check compares with the
record, whatever its own layout saw:

- what stands at a recorded name and is not what was recorded is moved aside;
- where the record found nothing at a name nothing may appear at (a directory on
  ``PATH``, a hooks directory, an instruction file, a configuration entry of a
  home in the workspace) and the command's own layout found something (so does
  not sweep it), what stands there is moved aside too (`appeared`);
- a recorded name where nothing stands is not let go: the next check compares
  with the same record, and moves aside whatever is brought back there.

Why this holds with several hostile sessions taking turns: the record changes
only while no command runs, so it is the user's, and every check enforces all of
it. A command can hide what it planted from other commands' checks only while it
runs. Its own check comes after its processes are gone. The command of a busy
spell whose processes end last is checked while no sandboxed process of the
workspace is alive, so nothing can hide anything from that check. When the
workspace is next quiet, every protected name holds what was recorded, or
nothing, or what the user put there meanwhile, and the next command records
that anew. While commands run, the read-only mounts protect each name, as
before, and no more: a name renamed away and remade is the command's until the
checks.

A command whose checks never ran (its confinement dropped unfinished) leaves its
record to the next quiet gathering, which moves aside what differs from it.

What the user makes on the host at a protected name while a command runs (a
virtual environment made anew) is moved aside, and the note says to move it
back. A long-lived confined program (an MCP server an editor supplied) keeps its
workspace busy while it runs. Nothing of this outlives the daemon: its sandboxed
processes die with it, and the first command after a restart records anew.
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass, field

import msgspec

from kfd.sandbox.identities import Identity
from kfd.sandbox.layout import Layout, program_shadows

APPEARED = (
    "it stands where nothing stood when kfd last looked at this workspace with no "
    "command running, at a name kfd keeps anything from appearing (another session's "
    "command may have put it there): the host would obey what it holds (if you made it "
    "yourself on the host while a command ran, move it back)"
)
UNCHECKED = (
    "it stands where something kfd kept read-only stood before a command whose checks "
    "never ran: the host would obey what it holds (if you put it there yourself since, "
    "move it back)"
)


class Expected(msgspec.Struct, frozen=True):
    """What a workspace must hold after every command, as a layout gathered while no
    command ran there found it (`of`)."""

    identities: tuple[Identity, ...] = ()
    """What stood at each protected name (`kfd.sandbox.layout.Layout.identities`)."""
    absent: tuple[str, ...] = ()
    """The names nothing may appear at (`kfd.sandbox.layout.Layout.swept`)."""
    markers: tuple[tuple[str, int], ...] = ()
    """The repositories below the top, with their inodes
    (`kfd.sandbox.layout.Layout.markers`)."""
    git_dirs: tuple[str, ...] = ()
    """The git directories that are the user's, as they really are
    (`kfd.sandbox.layout.Layout.git_dirs`): any other is checked as a new one."""
    home: str = ""
    home_entries: tuple[str, ...] = ()
    """The configuration entries at the top of a home in the workspace
    (`kfd.sandbox.layout.Layout.home_entries`)."""
    top_entries: tuple[str, ...] = ()
    """The names at the top of a workspace on ``PATH``
    (`kfd.sandbox.layout.Layout.top_entries`)."""


def of(layout: Layout) -> Expected:
    """The `Expected` of the workspace as ``layout`` found it."""
    return Expected(
        layout.identities,
        layout.swept,
        layout.markers,
        tuple(os.path.realpath(git_dir.path) for git_dir in layout.git_dirs),
        layout.home,
        layout.home_entries,
        layout.top_entries,
    )


def appeared(record: Expected, layout: Layout) -> list[str]:
    """Names the command that had ``layout`` may not leave, which that layout found
    (another session's command may have made them) and the record did not, so that
    its own sweep keeps them: where the record found nothing may appear, in a home in
    the workspace, and at the top of a workspace on ``PATH`` where they would shadow a
    program. Not looked at: where each stands now (`kfd.sandbox.sweep.present`)."""
    own = set(layout.swept)
    found = [path for path in record.absent if path not in own]
    if layout.home and layout.home == record.home:
        before = set(record.home_entries)
        found += [os.path.join(layout.home, n) for n in layout.home_entries if n not in before]
    if layout.later_on_path:
        before = set(record.top_entries)
        found += [
            os.path.join(layout.workspace, name)
            for name in layout.top_entries
            if name not in before and program_shadows(name, layout.later_on_path)
        ]
    return found


@dataclass
class _Workspace:
    running: int = 0
    """Commands between the start of their layout's gathering and the end of their
    checks."""
    expected: Expected | None = None
    """The record of this busy spell; None until its first command recorded it."""
    unchecked: dict[str, Identity] = field(default_factory=dict)
    """The record of a command whose checks never ran, for the next quiet gathering."""


_workspaces: dict[str, _Workspace] = {}
_recording: set[str] = set()
"""Workspaces whose record is being gathered: no overlapping command starts meanwhile."""
_changed = threading.Condition()


class Running:
    """One command of the workspace at ``root`` (a real path), counted from before its
    layout is gathered (construct it first) to the end of its checks (`end`).
    Blocking: it waits while another command's layout is being recorded."""

    def __init__(self, root: str) -> None:
        self.root = root
        with _changed:
            _changed.wait_for(lambda: not any(_overlap(root, other) for other in _recording))
            # No other command runs: this one's layout is the user's, to record.
            self.quiet = not any(
                state.running for other, state in _workspaces.items() if _overlap(root, other)
            )
            state = _workspaces.setdefault(root, _Workspace())
            state.running += 1
            if self.quiet:
                _recording.add(root)
            # What to check against (`record` sets it where quiet). None too where only a
            # command of an overlapping workspace runs and none was recorded for this
            # one: its own layout's facts are then all there is.
            self.expected = state.expected
        self._flag = [self.quiet]  # shared with the finalizer
        # A command whose confinement is dropped unfinished must not keep the count up
        # for good: collected, it ends unchecked.
        self._finalizer = weakref.finalize(self, _end, root, self._flag, False)

    def unchecked(self) -> list[Identity]:
        """Quiet only, before gathering: what commands whose checks never ran were to be
        checked against (forgotten now: the layout about to be gathered records anew
        what stands)."""
        with _changed:
            state = _workspaces[self.root]
            found = list(state.unchecked.values())
            state.unchecked.clear()
        return found

    def record(self, expected: Expected) -> None:
        """Quiet only: the workspace's record, from the layout just gathered; the
        commands held back may start."""
        with _changed:
            _workspaces[self.root].expected = expected
            self._flag[0] = False
            _recording.discard(self.root)
            _changed.notify_all()
        self.expected = expected

    def end(self) -> None:
        """This command's checks are done (or it never started)."""
        if self._finalizer.detach() is not None:
            _end(self.root, self._flag, True)


def _end(root: str, recording: list[bool], checked: bool) -> None:
    with _changed:
        state = _workspaces[root]
        state.running -= 1
        if recording[0]:
            recording[0] = False
            _recording.discard(root)
        if not checked and state.expected is not None:
            state.unchecked.update((known.path, known) for known in state.expected.identities)
        if state.running == 0:
            state.expected = None  # the next command records the user's anew
            if not state.unchecked:
                del _workspaces[root]
        _changed.notify_all()


def _overlap(one: str, other: str) -> bool:
    return _under(one, other) or _under(other, one)


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)
