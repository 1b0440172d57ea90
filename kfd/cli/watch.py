"""``kfd watch``: the file-watch triggers and their last firing; ``kfd watch reload``.

Exits 1 when something needs the user: a trigger table that cannot be used,
a trigger a budget stopped, or a reload refused (the config does not read).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import msgspec

from kfd import protocol as p
from kfd.cli.show import say


def add_parser(commands: Any) -> None:
    watch = commands.add_parser(
        "watch", help="list the file-watch triggers ([[triggers]]) or reload them"
    )
    watch.add_argument(
        "action",
        nargs="?",
        choices=("list", "reload"),
        default="list",
        help="reload: read [[triggers]] from the config again (default: list)",
    )
    watch.add_argument("--json", action="store_true", help="print JSON")


def main(args: argparse.Namespace) -> int:
    from kfd.cli.commands import execute

    return execute(_watch, args)


async def _watch(args: argparse.Namespace) -> int:
    from kfd.client import Client

    async with await Client.connect(name="kfd-watch", spawn=True) as client:
        request: p.Request = (
            p.TriggerReload(id="") if args.action == "reload" else p.TriggerList(id="")
        )
        result: p.TriggerListResult = await client.request(request)
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")
    elif result.not_reloaded:
        # Nothing changed: say why, once, and leave the listing to `kfd watch`.
        say(f"kfd: not reloaded: {result.not_reloaded}", file=sys.stderr)
        say("kfd: the running triggers stay as they were", file=sys.stderr)
    else:
        _print(result, reloaded=args.action == "reload")
    troubled = result.not_reloaded or result.problems
    return 1 if troubled or any(trigger.problem for trigger in result.triggers) else 0


def _print(result: p.TriggerListResult, *, reloaded: bool) -> None:
    if reloaded:
        say(f"reloaded: {len(result.triggers)} trigger(s)")
    if not result.triggers and not result.problems:
        say("no triggers; add [[triggers]] tables to the config, then `kfd watch reload`")
    for trigger in result.triggers:
        state = "watching" if trigger.watching else "stopped"
        budget = (
            f", ${trigger.spent_usd:.4f} of ${trigger.budget_usd:g}" if trigger.budget_usd else ""
        )
        say(f"{trigger.name}  {state}  mode {trigger.mode}  session {trigger.session}{budget}")
        say(f"  {trigger.workspace}  {' '.join(trigger.paths)}")
        if trigger.last_fired_at is not None:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(trigger.last_fired_at))
            files = ", ".join(trigger.last_files[:5])
            say(f"  fired {trigger.fired}x, last {when} in {trigger.last_session}: {files}")
        else:
            say("  never fired")
        if trigger.problem:
            say(f"  problem: {trigger.problem}")
        if trigger.refused:
            say(f"  {trigger.refused} firing(s) refused for the budget")
    for problem in result.problems:
        say(f"kfd: {problem}", file=sys.stderr)
