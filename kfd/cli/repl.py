"""``kfd``, ``kfd attach [ID]``, ``kfd new``: the terminal REPL.

The REPL is a frontend (``kfd_repl``); kfd never imports it. It is found by
entry point (group ``kfd.frontends``, name ``repl``) and called like every
frontend of that group: ``run(settings, args) -> int``, with no settings
table of its own.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

FRONTEND_GROUP = "kfd.frontends"
FRONTEND = "repl"
EXIT_NOT_INSTALLED = 2


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


def main(args: argparse.Namespace) -> int:
    """Run the REPL for ``kfd`` (no command), ``kfd attach`` or ``kfd new``."""
    from importlib.metadata import entry_points  # only when a frontend starts

    found = [entry for entry in entry_points(group=FRONTEND_GROUP) if entry.name == FRONTEND]
    if not found:
        print(
            f"kfd: the terminal REPL is not installed (no `{FRONTEND}` entry point in the "
            f"{FRONTEND_GROUP} group); reinstall kfd, or use `kfd run PROMPT`",
            file=sys.stderr,
        )
        return EXIT_NOT_INSTALLED
    run = found[0].load()
    code: int = run({}, args)
    return code
