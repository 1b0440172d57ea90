"""``kfd notify``, ``kfd chat`` and ``kfd acp``: frontends found by entry point, never imported.

A frontend registers under the ``kfd.frontends`` entry-point group a callable
``run(settings, args) -> int``: ``settings`` is its config table
(``[notify]``, ``[chat]``) as plain data, which the frontend checks itself;
``args`` the parsed command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

ENTRY_POINT_GROUP = "kfd.frontends"
EXIT_NOT_INSTALLED = 2

Run = Callable[[Any, argparse.Namespace], int]


def find(name: str, label: str, advice: str) -> Run | None:
    """The ``run`` of the frontend registered as ``name``; None (said why) if none is."""
    from importlib.metadata import entry_points  # only when a frontend starts

    found = [entry for entry in entry_points(group=ENTRY_POINT_GROUP) if entry.name == name]
    if not found:
        from kfd.cli.show import say

        say(
            f"kfd: {label} is not installed (no `{name}` entry point in the "
            f"{ENTRY_POINT_GROUP} group); {advice}",
            file=sys.stderr,
        )
        return None
    run: Run = found[0].load()
    return run


def add_parsers(commands: Any) -> None:
    commands.add_parser(
        "notify", help="desktop notifications for every session (approvals, finished turns)"
    )
    chat = commands.add_parser("chat", help="bridge sessions to a chat room (Matrix, Slack)")
    chat.add_argument(
        "adapter", choices=("matrix", "slack"), help="which chat service (its [chat.X] table)"
    )
    _acp_arguments(commands.add_parser("acp", help=ACP_HELP, description=ACP_DESCRIPTION))


ACP_HELP = "speak the Agent Client Protocol on stdin/stdout (an editor's agent command)"
ACP_DESCRIPTION = (
    "For editors (Zed, JetBrains, Neovim): run as the agent command; the editor's "
    "sessions are the daemon's, shared with every other frontend."
)


def _acp_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--verbose", action="store_true", help="log more on stderr")
    return parser


def acp_parser() -> argparse.ArgumentParser:
    """``kfd acp``'s own parser: `kfd.cli.main` uses it without building the others."""
    parser = argparse.ArgumentParser(prog="kfd acp", description=ACP_DESCRIPTION)
    return _acp_arguments(parser)


def acp(args: argparse.Namespace) -> int:
    """``kfd acp``: the editor waits for it, so no config is read here (the frontend
    has no table of its own; the daemon reads the config)."""
    run = find("acp", "the ACP frontend", "reinstall kfd")
    if run is None:
        return EXIT_NOT_INSTALLED
    try:
        return run({}, args)
    except KeyboardInterrupt:
        return 130


def main(args: argparse.Namespace) -> int:
    from kfd import config as config_module
    from kfd.cli.show import say_text
    from kfd.errors import ConfigError

    try:
        config = config_module.load()
    except ConfigError as exc:
        say_text(f"kfd: {exc}", file=sys.stderr)
        return 2
    name = args.command
    run = find(name, f"the {name} frontend", "reinstall kfd")
    if run is None:
        return EXIT_NOT_INSTALLED
    settings: dict[str, Any] = getattr(config, name)
    try:
        code = run(settings, args)
    except KeyboardInterrupt:
        return 130
    return code
