"""The sandbox: the boundary around every program kfd runs for the model.

Built on bubblewrap. A confined program sees:

- the whole file system read-only, but the workspace (read-write, or
  read-only for a language server), its project's cache home and a private,
  empty ``/tmp``;
- no credentials: ``~/.ssh``, ``~/.aws``, ``~/.config/gcloud``, ``~/.azure``,
  ``~/.gnupg``, ``~/.netrc``, ``~/.docker/config.json``, ``~/.kube``,
  ``~/.npmrc``, ``~/.pypirc``, ``~/.git-credentials`` and the other stores of
  `kfd.sandbox.layout.HIDDEN_IN_HOME`, shell histories, and kfd's own config,
  state, runtime and cache directories are empty; ``[sandbox] hide`` adds
  more;
- ``$XDG_RUNTIME_DIR`` empty, and every other Unix socket bound outside the
  workspace (a Docker socket, the system D-Bus) covered, since a read-only
  file system does not stop a connection (``[sandbox] sockets`` lets chosen
  ones through);
- in the workspace, the git directory is its own mount point (it cannot be
  renamed or replaced) and read-only except what git writes to record work
  (objects, refs, the index, ``HEAD``, logs and kin: `GIT_WRITABLE`);
  ``.kfd``, shell start-up files and the hooks directory ``core.hooksPath``
  names (`kfd.sandbox.hookspath`) are read-only, a missing ``.kfd`` too, and
  a hooks directory or an instruction file (``AGENTS.md``: kfd reads it into
  every session) a command creates is removed when it ends;
  a workspace inside an outer repository cannot get a ``.git`` of its own,
  and names that would redirect git (``.git/commondir``) are removed when
  the command ends (`kfd.sandbox.sweep`);
- what a command leaves in git's state for the host's git to obey, undone
  when it ends (`kfd.sandbox.gitstate`): an index with paths git would
  refuse moved aside, ``exec`` lines of a rebase's to-do list made comments,
  links in git's writable state removed (`kfd.sandbox.gitlinks`), a
  ``MERGE_RR`` or merge strategy naming what git would take out of the work
  tree moved aside (`kfd.sandbox.gitnames`), new names at the top of a git
  directory removed, the program-running configuration and the hooks of a
  repository the command created moved aside (found by a walk to the end,
  or the index moved aside where none can finish);
- every repository below the workspace's top (`kfd.sandbox.repositories`)
  protected the same way (its ``core.hooksPath`` directories too), its
  ``gitdir:`` file read-only, another put in its place removed when the
  command ends; a workspace too large to walk is read-only;
- every directory on the daemon's ``PATH`` inside the workspace read-only
  (programs the host's shells and kfd itself look up), and in a home that is
  in the workspace, every dot-entry at its top, ``~/bin`` and the tool homes of
  `kfd.sandbox.layout.TOOL_HOMES` too (the host's configuration, or programs
  its shells run); a new one removed when the command ends; where the
  workspace's top is itself on ``PATH``, a new name there that would shadow a
  program further on ``PATH`` removed too (`kfd.hostpath` keeps kfd's own
  look-ups out of every workspace);
- a read-only mount protects an inode, not a name: what stands at each name
  on the way to every protected path (links included, a home inside the
  workspace too) is recorded, and another thing there after the command (a
  parent renamed away and remade, a link replaced) is moved aside
  (`kfd.sandbox.identities`); recorded while no command runs in the
  workspace, and every session's commands checked against that one record
  (`kfd.sandbox.expected`), so a command of another session can neither make
  its plant look like the user's nor hide it from a check for good;
- an environment built from an allow-list (`kfd.sandbox.environ`), with its
  tool-chains' caches in the project's cache home under
  ``$XDG_CACHE_HOME/kfd/sandbox/``;
- no network (a network namespace with only a loopback) unless allowed;
- a PID namespace of its own, no capabilities, the kernel's settings under
  ``/proc`` read-only (`kfd.sandbox.mounts.PROC_READ_ONLY`), and death with kfd;
- no hard link made (``link``, ``linkat``: ``EXDEV``), no ``io_uring``, no
  whiteout or other character device: the seccomp filter of
  `kfd.sandbox.seccomp`, without which no sandbox starts
  (kfd's remembered listings assume a file's links change only by the user).

`confine` prepares one program's confinement, from the previous command's
facts while nothing they were gathered from changed (`kfd.sandbox.reuse`);
`probe` says whether bubblewrap works here at all.

A program starts either under `Confinement.prefix` (a bubblewrap of its own:
language servers, MCP servers, hooks) or, for the bash tool, in its
session's pod (`kfd.sandbox.pod`): a bubblewrap with that very prefix,
started once and entered by command after command, while `confine` still
looks before each one and the pod serves only the layout it was started for,
with its mounts untouched. There the boundary is the same but for two
things, both within one session: the pod's private ``/tmp`` outlives a
command, and the PID namespace is the pod's (commands never overlap in it;
the pod's zygote kills all a command left before the result returns).
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kfd import hostpath
from kfd.hostpath import which
from kfd.sandbox import aside, expected, gitstate, identities, pod, reuse, seccomp
from kfd.sandbox import environ as environment
from kfd.sandbox.layout import Layout
from kfd.sandbox.mounts import GIT_WRITABLE, arguments
from kfd.sandbox.probe import probe
from kfd.sandbox.repositories import MAX_DIRECTORIES
from kfd.sandbox.sweep import leftovers, present, sweep

__all__ = [
    "GIT_WRITABLE",
    "Confinement",
    "Layout",
    "confine",
    "environment",
    "pod",
    "probe",
]


def _program(bwrap: str, environ: Mapping[str, str]) -> str:
    """bubblewrap's path, never in a place sandboxed commands write (`kfd.hostpath`)."""
    return which(bwrap, environ) or bwrap


@dataclass(frozen=True)
class Confinement:
    """How to start one program in the sandbox, and what to do when it ended."""

    prefix: list[str]
    """``bwrap <options> --``: put the program's argv after it."""
    env: dict[str, str]
    """The program's whole environment."""
    layout: Layout
    swept: tuple[str, ...] = field(default=())
    before: gitstate.Before = field(default_factory=dict)
    """What of git's state the host may have written, as it was when the program
    started (`kfd.sandbox.gitstate.before`)."""
    running: expected.Running | None = None
    """The program, counted among its workspace's commands until its checks end
    (`kfd.sandbox.expected`); None where it writes nothing of the workspace."""
    settled: tuple[str, ...] = ()
    """Notes of what was moved aside before its layout was gathered."""

    async def finish(self) -> list[str]:
        """Remove what the program must not have left (call once it and its
        children are gone); notes for the program's result."""
        layout = self.layout
        notes = [INCOMPLETE] if layout.incomplete else []
        if not layout.writable:
            return notes  # it could write nothing of the workspace's
        done = await asyncio.to_thread(_undo, layout, self.before, self.running)
        return [*notes, *self.settled, *done]


def _undo(layout: Layout, before: gitstate.Before, running: expected.Running | None) -> list[str]:
    """What the command that had ``layout`` left and may not, undone: what stands at a
    protected name and is not what stood there when no command ran in the workspace
    (`kfd.sandbox.expected`), moved aside; the names it may not leave
    (`kfd.sandbox.sweep`); then what it left in git's state that the host's git would
    obey (`kfd.sandbox.gitstate`). Blocking; ``running`` ends when it returns."""
    root = layout.workspace
    record = (running.expected if running is not None else None) or expected.of(layout)

    def moved() -> list[str]:
        replaced = identities.replaced(record.identities)
        notes = [_aside(path, root, identities.REPLACED) for path in replaced]
        # What another session's command made where nothing stood, which this layout
        # found there and so would keep.
        found = (present(path, root) for path in expected.appeared(record, layout))
        return notes + [_aside(shown, root, expected.APPEARED) for shown in found if shown]

    steps: list[tuple[str, Callable[[], list[str]]]] = [
        ("moving aside what replaced a protected name", moved),
        ("removing what it may not leave", lambda: sweep(leftovers(layout, record.markers), root)),
        (
            "undoing what it left in git's state",
            lambda: gitstate.undo(layout, before, (record.markers, record.git_dirs)),
        ),
    ]
    notes: list[str] = []
    try:
        for what, step in steps:
            # Each step runs whatever an earlier one raised: one stopped half-way (a
            # tree it could not go through) must not leave the others' checks undone.
            try:
                notes += step()
            except Exception as exc:
                notes.append(
                    f"kfd could not finish {what} after this command ({type(exc).__name__}: "
                    f"{exc}); look at the workspace before you run anything there"
                )
    finally:
        if running is not None:
            running.end()
    return notes


def _aside(path: str, root: str, why: str) -> str:
    return aside.move_aside(path, os.path.basename(path) + aside.ASIDE, root, why)


def _settle(running: expected.Running, root: str) -> list[str]:
    """Before a quiet gathering: what stands at a name recorded for a command whose
    checks never ran and is not what was recorded, moved aside (blocking)."""
    replaced = identities.replaced(running.unchecked())
    return [_aside(path, root, expected.UNCHECKED) for path in replaced]


INCOMPLETE = (
    f"kfd made the workspace read-only for this command: it holds more than "
    f"{MAX_DIRECTORIES:,} directories, too many to find every git repository in it "
    "(a command could make one's configuration run programs outside the sandbox); "
    "work in a smaller directory"
)


async def confine(
    workspace: Path,
    *,
    network: bool = False,
    writable: bool = True,
    hide: Sequence[str] = (),
    env: Sequence[str] = (),
    sockets: Sequence[str] = (),
    bwrap: str = "bwrap",
    environ: Mapping[str, str] | None = None,
    program: Sequence[str] = (),
) -> Confinement:
    """The confinement of a program run in ``workspace``.

    ``hide``, ``env`` and ``sockets`` are ``[sandbox]``'s lists; ``program``
    the paths of a program the user or an editor configured (kept reachable
    even under ``/tmp``). Check `probe` first: this assumes bubblewrap works.
    """
    environ = os.environ if environ is None else environ

    def gather() -> tuple[Layout, gitstate.Before, expected.Running | None, list[str]]:
        # Counted first: a layout gathered while no other command runs is the user's
        # and becomes the workspace's record; one gathered while another runs checks
        # against that record, not against what it saw (`kfd.sandbox.expected`).
        root = os.path.realpath(workspace)
        running = expected.Running(root) if writable else None
        try:
            settled = _settle(running, root) if running is not None and running.quiet else []
            layout = reuse.gather(
                workspace,
                writable=writable,
                hide=hide,
                sockets=sockets,
                environ=environ,
                program=program,
            )
            before = gitstate.before(layout)
            if running is not None and not layout.writable:
                running.end()  # too large to walk: read-only, nothing to check
                running = None
            if running is not None and running.quiet:
                running.record(expected.of(layout))
        except BaseException:
            if running is not None:
                running.end()
            raise
        return layout, before, running, settled

    layout, before, running, settled = await asyncio.to_thread(gather)
    try:
        if layout.writable:
            hostpath.writable(layout.workspace, layout.cache_home)
        program_path = _program(bwrap, environ)
        prefix = [*seccomp.wrap(program_path, _arguments(layout, network)), "--"]
        variables = _environment(tuple(environ.items()), tuple(env), layout.cache_home)
    except BaseException:
        if running is not None:
            running.end()
        raise
    return Confinement(
        prefix, dict(variables), layout, layout.swept, before, running, tuple(settled)
    )


# The same layout (`kfd.sandbox.reuse`) and environment command after command:
# their arguments and variables are built once (copies handed out).


@functools.lru_cache(maxsize=16)
def _arguments(layout: Layout, network: bool) -> tuple[str, ...]:
    return tuple(arguments(layout, network=network))


@functools.lru_cache(maxsize=16)
def _environment(
    environ: tuple[tuple[str, str], ...], extra: tuple[str, ...], cache_home: str
) -> dict[str, str]:
    return environment.command_environment(dict(environ), extra, cache_home=cache_home)
