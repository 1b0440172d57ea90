"""``kfd context`` (what fills a session's window) and ``kfd compact`` (summarise now)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import msgspec

from kfd import protocol as p


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
        print("kfd: no session in this directory; name one with --session", file=sys.stderr)
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
    print(f"session {result.session}  model {result.model}")
    mode = "automatic" if result.auto_compact else "off: /compact by hand"
    print(
        f"window {result.context_window:,} tokens, {result.output_reserve:,} kept for the "
        f"answer; compaction at {result.threshold:,} ({mode})"
    )
    for part in result.parts:
        print(f"  {part.name:<13} {part.tokens:>9,}  {part.detail}".rstrip())
    share = result.tokens / result.context_window if result.context_window else 0.0
    print(f"  {'total':<13} {result.tokens:>9,}  {share:.0%} of the window")
    if result.tokenizer:
        counted = f"counted with the model's tokenizer ({result.tokenizer})"
    else:
        counted = "estimated from the text's size (no tokenizer of this model in kfd)"
    if result.reported_tokens:
        counted += (
            f", calibrated x{result.calibration:g} by the provider's last count "
            f"({result.reported_tokens:,} input tokens)"
        )
    print(counted)
    if result.compactions:
        print(f"compacted {result.compactions} time(s)")
    if result.tools_loaded:
        print(f"tools loaded by tool_search: {', '.join(result.tools_loaded)}")
    from kfd.cli.commands import print_missing

    print_missing(result.tools_missing, "here")
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
    if not result.compacted:
        print(result.message)
        return 0
    print(f"compacted: {result.tokens_before:,} -> {result.tokens_after:,} tokens\n")
    print(result.summary)
    return 0
