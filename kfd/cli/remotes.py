"""``--remote NAME`` (or ``$KFD_REMOTE``): which daemon a command talks to.

``NAME`` is a ``[remotes.NAME]`` table of the config; ``local`` is this
machine's daemon. The command line resolves names to `kfd.client.Remote`
values (``args.remotes``: None for the local daemon) and hands them to
frontends, which never read the config themselves.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # both only when a command runs: `kfd --help` stays light
    from kfd.client import Client, Remote
    from kfd.config import Config

ENV = "KFD_REMOTE"

LOCAL_REMOTE = "local"
"""``--remote local``: this machine's daemon (`kfd.config.LOCAL_REMOTE`)."""

SUBCOMMANDS = ("attach", "new", "run", "sessions", "status", "cost", "notify", "chat")
"""The commands that take ``--remote`` (and honour ``$KFD_REMOTE``), besides ``kfd`` itself."""

COMMANDS = frozenset({None, *SUBCOMMANDS})

MANY = frozenset({"notify", "chat"})
"""The commands that follow several daemons at once (``--remote`` repeated)."""


def add_option(parser: argparse.ArgumentParser, *, top: bool = False, many: bool = False) -> None:
    """Add ``--remote`` to ``parser`` (the top-level parser: ``top``)."""
    if many:
        parser.add_argument(
            "--remote",
            dest="remote_names",
            action="append",
            metavar="NAME",
            default=argparse.SUPPRESS,
            help=f"follow the daemon of [remotes.NAME] (repeat for several; `{LOCAL_REMOTE}`: "
            "this machine's)",
        )
        return
    parser.add_argument(
        "--remote",
        dest="remote_name",
        metavar="NAME",
        # A subcommand's option must not reset what `kfd --remote NAME` set.
        default=None if top else argparse.SUPPRESS,
        help=f"talk to the daemon of [remotes.NAME] instead of this machine's (${ENV})",
    )


def resolve(args: argparse.Namespace, config: Config | None = None) -> None:
    """Set ``args.remotes`` (a list: None for the local daemon) from the options.

    Raises ConfigError naming the remotes the config knows when a name is unknown.
    """
    names: list[str] = []
    top = getattr(args, "remote_name", None)
    if top:
        names.append(top)
    names += getattr(args, "remote_names", [])
    if not names and os.environ.get(ENV):
        names.append(os.environ[ENV])
    if not names:
        args.remotes = [None]
        return
    from kfd.client import Remote
    from kfd.errors import ConfigError

    if config is None:
        from kfd import config as config_module

        config = config_module.load()
    remotes: list[Remote | None] = []
    for name in dict.fromkeys(names):
        if name == LOCAL_REMOTE:
            remotes.append(None)
            continue
        table = config.remotes.get(name)
        if table is None:
            known = ", ".join(sorted(config.remotes)) or "none yet"
            raise ConfigError(
                f"no remote {name!r} in the config ([remotes.{name}] endpoint = "
                f'"tcp://host:7450"); the remotes are: {known}'
            )
        remotes.append(
            Remote(
                name=name,
                endpoint=table.endpoint,
                daemon_key=table.daemon_key,
                workspace=table.workspace,
                heartbeat_s=table.heartbeat_s,
            )
        )
    if len(remotes) > 1 and args.command not in MANY:
        raise ConfigError(f"`kfd {args.command or ''}` talks to one daemon: name one --remote")
    args.remotes = remotes


def remote_of(args: argparse.Namespace) -> Remote | None:
    """The one daemon of a command that talks to one (None: the local daemon)."""
    remotes: list[Remote | None] = getattr(args, "remotes", [None])
    return remotes[0]


async def connect(args: argparse.Namespace, name: str, *, spawn: bool = True) -> Client:
    """Connect to the daemon ``args`` names; start the local one if ``spawn``."""
    from kfd.client import Client

    remote = remote_of(args)
    if remote is None:
        return await Client.connect(name=name, spawn=spawn)
    client = await Client.connect(name=name, remote=remote)
    tell_pinned(client)
    return client


def tell_pinned(client: Client, out: Any = None) -> None:
    """Say so when a connection pinned a remote daemon's key on first use."""
    if client.pinned_on_first_use and client.remote is not None:
        from kfd.cli.show import say

        say(
            f"kfd: pinned the key of the daemon `{client.remote.name}` ({client.remote.endpoint})"
            f" on first use: {client.pinned_on_first_use}",
            "     it is checked on every connection from now on (`kfd keys show --daemon` "
            "on that host prints the key it should be)",
            file=out or sys.stderr,
        )
