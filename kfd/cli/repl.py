"""``kfd``, ``kfd attach [ID]``, ``kfd new``, ``kfd resume``: the terminal REPL.

The REPL is a frontend (``kfd_repl``); kfd never imports it. It is found by
entry point (group ``kfd.frontends``, name ``repl``) and called like every
frontend of that group: ``run(settings, args) -> int``, with no settings
table of its own.
"""

from __future__ import annotations

import argparse
from typing import Any

from kfd.cli.frontend import EXIT_NOT_INSTALLED, find

FRONTEND = "repl"


def add_parsers(commands: Any, modes: tuple[str, ...]) -> None:
    attach = commands.add_parser(
        "attach", help="attach this terminal to a session (default: the latest one)"
    )
    attach.add_argument(
        "session", nargs="?", help="session id or unique prefix (default: the most recently active)"
    )
    new = commands.add_parser("new", help="start a fresh session here and attach to it")
    new.add_argument("--cwd", default=".", help="workspace of the session (default: .)")
    new.add_argument("--mode", choices=modes, help="permission mode of the session")
    new.add_argument("--model", help="model of the session")
    resume = commands.add_parser(
        "resume", help="choose one of this project's sessions (title, age, turns, cost) and attach"
    )
    resume.add_argument("--cwd", default=".", help="the project's directory (default: .)")


def main(args: argparse.Namespace) -> int:
    """Run the REPL for ``kfd`` (no command), ``kfd attach``, ``kfd new`` or ``kfd resume``."""
    run = find(FRONTEND, "the terminal REPL", "reinstall kfd, or use `kfd run PROMPT`")
    if run is None:
        return EXIT_NOT_INSTALLED
    return run({}, args)
