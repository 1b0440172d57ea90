"""``kfd memory list|search|add|forget``: what kfd remembers across sessions."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import msgspec

from kfd import protocol as p
from kfd.cli.show import say


def add_parser(commands: Any) -> None:
    memory = commands.add_parser("memory", help="list, search, add or forget remembered facts")
    actions = memory.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser(
        "list", help="facts of this directory's project and global ones, newest first"
    )
    listing.add_argument("--all", action="store_true", help="facts of every project")
    listing.add_argument("--limit", type=int, default=100, help="most facts shown (default 100)")
    listing.add_argument("--json", action="store_true", help="print JSON")

    search = actions.add_parser("search", help="facts ranked by relevance to a query")
    search.add_argument("query", nargs="+", help="words to search for")
    search.add_argument("--all", action="store_true", help="search every project's facts")
    search.add_argument("--limit", type=int, default=10, help="most facts shown (default 10)")
    search.add_argument("--json", action="store_true", help="print JSON")

    add = actions.add_parser("add", help="remember a fact for this project (or every project)")
    add.add_argument("text", nargs="+", help="the fact")
    add.add_argument(
        "--global", dest="global_", action="store_true", help="for every project, not just this"
    )
    add.add_argument("--json", action="store_true", help="print JSON")

    forget = actions.add_parser("forget", help="delete a fact by id")
    forget.add_argument("id", type=int, help="the fact's id (kfd memory list shows them)")
    forget.add_argument("--json", action="store_true", help="print JSON")


def main(args: argparse.Namespace) -> int:
    from kfd.cli.commands import execute

    return execute(_memory, args)


async def _memory(args: argparse.Namespace) -> int:
    from kfd.client import Client

    here = os.getcwd()
    async with await Client.connect(name="kfd-memory", spawn=True) as client:
        match args.action:
            case "list":
                cwd = None if args.all else here
                shown = await client.memories(cwd=cwd, limit=args.limit)
                return _print(shown, args, empty="nothing remembered yet")
            case "search":
                cwd = None if args.all else here
                query = " ".join(args.query)
                found = await client.memories(cwd=cwd, query=query, limit=args.limit)
                return _print(found, args, empty="nothing remembered matches")
            case "add":
                scope: p.MemoryScope = "global" if args.global_ else "project"
                memory = await client.remember(" ".join(args.text), scope=scope, cwd=here)
                return _print([memory], args, empty="", said="remembered")
            case _:
                memory = await client.forget(args.id)
                return _print([memory], args, empty="", said="forgot")


def _print(
    memories: list[p.Memory], args: argparse.Namespace, *, empty: str, said: str = ""
) -> int:
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(memories) + b"\n")
        return 0
    from kfd.client.tables import memory_lines

    say(*memory_lines(memories, empty=empty, said=said))
    return 0
