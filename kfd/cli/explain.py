"""``kfd explain "COMMAND"``: how the permission engine decides a bash command, unrun.

The daemon answers (``rules.explain``) with the engine every session uses,
its configuration and its store, and the rules of the directory's project:
what it prints is what a session there would decide, less that session's own
"allow for this session" rules and any untrusted content it read.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import msgspec

from kfd import protocol as p
from kfd.cli.show import one_line, say


def add_parser(commands: Any, modes: tuple[str, ...]) -> None:
    explain = commands.add_parser(
        "explain", help="how kfd would decide a bash command here (nothing runs)"
    )
    explain.add_argument(
        "line", nargs="+", metavar="COMMAND", help='the command, quoted: "git push --force"'
    )
    explain.add_argument("--cwd", default=".", help="the workspace (default: .)")
    explain.add_argument("--mode", choices=modes, default="default", help="permission mode")
    explain.add_argument(
        "--json", action="store_true", help="print JSON (decision, reason, rule, source, ...)"
    )


def main(args: argparse.Namespace) -> int:
    from kfd.cli.commands import execute

    return execute(_explain, args)


async def _explain(args: argparse.Namespace) -> int:
    from kfd.client import Client

    command = " ".join(args.line)
    async with await Client.connect(name="kfd-explain", spawn=True) as client:
        explained = await client.explain(command, cwd=os.path.abspath(args.cwd), mode=args.mode)
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(explained) + b"\n")
    else:
        _print(explained)
    return 0


def _print(explained: p.ExplainResult) -> None:
    say(f"{explained.decision}: {explained.reason}")
    if explained.rule:
        say(f"  rule: {explained.rule} ({explained.source})")
    say(f"  in {explained.cwd}, {explained.mode} mode")
    if explained.commands:
        say("commands:")
        # Escaped before padding, so the columns line up with what is printed.
        shown = [one_line(c.command) for c in explained.commands]
        width = min(40, max(map(len, shown)))
        for command, line in zip(explained.commands, shown, strict=True):
            allowed = (
                f"allowed by {command.allowed_by} ({command.source})"
                if command.allowed_by
                else "no allow rule"
            )
            say(f"  {line:<{width}}  {allowed}")
    if explained.risks:
        say("the analyzer found:")
        for risk in explained.risks:
            say(f"  {risk}")
    if not explained.sandboxed:
        say("the sandbox is off ([sandbox] enabled = false)")
    for line in explained.ignored:
        say(f"ignored in the project config (kfd trust): {line}")
