"""``kfd context`` (what fills a session's window) and ``kfd compact`` (summarise now)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import msgspec

from kfd import protocol as p
from kfd.cli.show import say


def add_parsers(commands: Any) -> None:
    context = commands.add_parser(
        "context", help="show what fills a session's context window, part by part"
    )
    context.add_argument(
        "--session", help="session id or prefix (default: the latest of this directory)"
    )
    context.add_argument("--json", action="store_true", help="print JSON")

    compact = commands.add_parser(
        "compact", help="summarise the older part of a session's conversation now"
    )
    compact.add_argument("instructions", nargs="*", help="what the summary must keep")
    compact.add_argument(
        "--session", help="session id or prefix (default: the latest of this directory)"
    )
    compact.add_argument("--json", action="store_true", help="print JSON")


def main(args: argparse.Namespace) -> int:
    from kfd.cli.commands import execute

    return execute(_compact if args.command == "compact" else _context, args)


async def _session_id(client: Any, args: argparse.Namespace) -> str | None:
    if args.session:
        info: p.SessionInfo = await client.session(args.session)
        return info.id
    listed: list[p.SessionInfo] = await client.sessions(cwd=os.getcwd(), limit=1)
    if not listed:
        say("kfd: no session in this directory; name one with --session", file=sys.stderr)
        return None
    return listed[0].id


async def _context(args: argparse.Namespace) -> int:
    from kfd.client import Client

    async with await Client.connect(name="kfd-context", spawn=True) as client:
        session = await _session_id(client, args)
        if session is None:
            return 2
        result = await client.context(session)
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")
        return 0
    from kfd.client.tables import context_lines

    say(*context_lines(result))
    return 0


async def _compact(args: argparse.Namespace) -> int:
    from kfd.client import Client

    async with await Client.connect(name="kfd-compact", spawn=True) as client:
        session = await _session_id(client, args)
        if session is None:
            return 2
        result = await client.compact(session, " ".join(args.instructions))
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")
        return 0
    from kfd.client.tables import compact_lines

    say(*compact_lines(result))
    return 0
