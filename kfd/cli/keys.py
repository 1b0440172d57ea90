"""``kfd keys init|show``: the key pairs of remote attach (see `kfd.client.keys`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1


def add_parser(commands: Any) -> None:
    keys = commands.add_parser("keys", help="the keys for attaching to daemons on other hosts")
    actions = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init", help="make the key pairs that are missing (the daemon's and yours)"
    )
    init.add_argument("--comment", default="", help="who your client key is (default: user@host)")
    show = actions.add_parser(
        "show", help="print your client public key, as a daemon's authorized_keys takes it"
    )
    show.add_argument("--daemon", action="store_true", help="print the daemon's public key")


def main(args: argparse.Namespace) -> int:
    from kfd import paths
    from kfd.cli.show import say
    from kfd.client import KeysMissing, keys

    try:
        if args.keys_command == "init":
            made = keys.init_keys(args.comment)
            for path in made:
                say(f"made {path}", file=sys.stderr)
            if not made:
                say(f"the keys exist already in {paths.keys_dir()}", file=sys.stderr)
            client = keys.load("client", secret=False)
            say(
                "to attach from here to a daemon on another host, add this line to its "
                f"{_authorized_keys()}:",
                f"  {client.line()}",
                file=sys.stderr,
            )
            return EXIT_OK
        if args.daemon:
            say(keys.load("daemon", secret=False).public)
        else:
            say(keys.load("client", secret=False).line())
    except KeysMissing as exc:
        say(f"kfd: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _authorized_keys() -> str:
    return "$XDG_CONFIG_HOME/kfd/authorized_keys (usually ~/.config/kfd/authorized_keys)"
