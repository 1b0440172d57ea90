"""Starting the REPL: check the terminal, reach the daemon, pick the session.

This module imports only the client library at first; prompt-toolkit and Rich
are loaded once it is clear there is a terminal to draw on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kfd import protocol as p
from kfd.client import Client, ClientError, DaemonUnavailable, Remote, RequestFailed

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_DAEMON = 3


def main(settings: Mapping[str, Any], args: argparse.Namespace) -> int:
    """The ``kfd.frontends`` entry point: ``kfd``, ``kfd attach [ID]``, ``kfd new``,
    ``kfd resume``.

    ``settings`` is the frontend's config table (the REPL has none yet);
    ``args.remotes`` the daemon to attach to (``--remote``; None: this machine's).
    """
    remotes: list[Remote | None] = getattr(args, "remotes", None) or [None]
    return start(
        remote=remotes[0],
        session=getattr(args, "session", None),
        latest=getattr(args, "command", None) == "attach",
        new=getattr(args, "command", None) == "new",
        resume=getattr(args, "command", None) == "resume",
        cwd=getattr(args, "cwd", None),
        mode=getattr(args, "mode", None),
        model=getattr(args, "model", None),
    )


def start(
    *,
    session: str | None = None,
    latest: bool = False,
    new: bool = False,
    resume: bool = False,
    cwd: str | None = None,
    mode: str | None = None,
    model: str | None = None,
    remote: Remote | None = None,
) -> int:
    """Run the REPL in this terminal; the exit status.

    Which session: ``session`` (an id or unique prefix); with ``new`` a fresh
    one in ``cwd``; with ``latest`` the most recently active one anywhere;
    with ``resume`` the one the user picks among the sessions of ``cwd``'s
    project; otherwise the most recent one of ``cwd``, created if there is
    none. ``mode`` and ``model`` apply to a session created here. The daemon
    is started if none runs. With ``remote``, the daemon is that one: ``cwd``
    is a directory on its host (by default its ``workspace``; without one, the
    latest session anywhere).
    """
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        _error("the REPL needs a terminal; in scripts use `kfd run PROMPT` (see `kfd --help`)")
        return EXIT_USAGE
    if remote is None:
        directory = os.path.abspath(cwd or os.getcwd())
        if not os.path.isdir(directory):
            _error(f"{directory} is not a directory")
            return EXIT_USAGE
    else:
        directory = cwd or remote.workspace
        if directory and not directory.startswith("/"):
            _error(f"--cwd {directory!r}: with --remote, an absolute path on {remote.name}")
            return EXIT_USAGE
        if not directory and new:
            _error(f"--remote {remote.name}: give --cwd DIR (a directory on that host)")
            return EXIT_USAGE
        latest = latest or not directory
    if mode is not None and mode not in p.MODES:
        _error(f"unknown mode {mode!r}; the modes are {', '.join(p.MODES)}")
        return EXIT_USAGE
    choice = Choice(session, latest, new, directory, mode, model, resume)
    try:
        return asyncio.run(_run(choice, remote))
    except DaemonUnavailable as exc:
        _error(str(exc))
        return EXIT_NO_DAEMON
    except RequestFailed as exc:
        _error(exc.message)
        return EXIT_FAILED
    except ClientError as exc:
        _error(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


@dataclass(frozen=True, slots=True)
class Choice:
    """Which session the terminal attaches to (see `start`)."""

    session: str | None
    latest: bool
    new: bool
    cwd: str
    mode: str | None
    model: str | None
    resume: bool = False

    async def pick(self, client: Client) -> p.SessionInfo:
        if self.session:
            return await client.session(self.session)
        if not self.new:
            listed = await client.sessions(cwd=None if self.latest else self.cwd, limit=1)
            if listed:
                return listed[0]
            if self.latest:
                raise RequestFailed("not_found", "there are no sessions yet; `kfd` starts one here")
        mode: p.Mode = next((m for m in p.MODES if m == self.mode), "default")
        return await client.create_session(self.cwd, mode=mode, model=self.model)


async def _run(choice: Choice, remote: Remote | None = None) -> int:
    from kfd_repl.app import Repl  # prompt-toolkit and Rich: only now
    from kfd_repl.history import open_history

    connecting = Client.connect(name=terminal_name(), spawn=remote is None, remote=remote)
    async with await connecting as client:
        if client.pinned_on_first_use and remote is not None:
            _error(
                f"pinned the key of the daemon `{remote.name}` on first use: "
                f"{client.pinned_on_first_use} (checked on every connection from now on)"
            )
        if choice.resume:
            picked = await _resume(client, choice.cwd)
            if picked is None:
                return EXIT_OK
            info = picked
        else:
            info = await choice.pick(client)
        repl = Repl(client, info, cwd=choice.cwd, history=open_history(choice.cwd))
        status = await repl.run()
        left = repl.view.info.id
    with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
        print(f"detached from session {left}; it goes on in the daemon (kfd attach {left})")
    return status


async def _resume(client: Client, cwd: str) -> p.SessionInfo | None:
    from kfd_repl.picker import choose, project_sessions

    root, listed = await project_sessions(client, cwd)
    if not listed:
        raise RequestFailed("not_found", f"no sessions in {root} yet; `kfd` starts one")
    return await choose(listed, title=f"resume a session of {root}")


def terminal_name() -> str:
    """How this terminal introduces itself: ``repl:pts/3`` (others see who answered)."""
    try:
        tty = os.ttyname(sys.stdin.fileno())
    except OSError:
        return f"repl:{os.getpid()}"
    return "repl:" + tty.removeprefix("/dev/")


def _error(message: str) -> None:
    print(f"kfd: {message}", file=sys.stderr)
