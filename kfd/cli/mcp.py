"""``kfd mcp list``: the MCP servers the daemon runs, their status and tools."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec

from kfd.cli.show import say


def add_parser(commands: Any) -> None:
    mcp = commands.add_parser("mcp", help="the MCP servers of the config: status and tools")
    actions = mcp.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", help="each server's status and tools (starts servers not started yet)"
    )
    listing.add_argument(
        "--no-start", action="store_true", help="show what is known without starting servers"
    )
    listing.add_argument("--json", action="store_true", help="print JSON")


def main(args: argparse.Namespace) -> int:
    from kfd.cli.commands import execute

    return execute(_list, args)


async def _list(args: argparse.Namespace) -> int:
    from kfd.client import Client

    async with await Client.connect(name="kfd-mcp", spawn=True) as client:
        status = await client.status(refresh_tools=not args.no_start)
    servers: list[dict[str, Any]] = list(status.plugin_status.get("mcp", {}).get("servers", []))
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(servers) + b"\n")
        return 0
    if not servers:
        say("no MCP servers configured; add them as [mcp.servers.<name>] in config.toml")
        return 0
    for server in servers:
        transport = f" ({server['transport']})" if server.get("transport") else ""
        lent = f", from the editor of session {server['session']}" if server.get("session") else ""
        say(f"{server['name']}{transport}{lent}: {server['status']}")
        if server.get("error"):
            say(f"  error: {server['error']}")
        tools = server.get("tools") or []
        if tools:
            say(f"  {len(tools)} tools: " + ", ".join(tools))
        if server.get("log") and server.get("status") in ("failed", "crashed"):
            say(f"  log: {server['log']}")
    return 0 if all(s["status"] not in ("failed", "config error") for s in servers) else 1
