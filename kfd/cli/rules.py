"""``kfd rules list|remove``: the permission rules that apply here, and the kept ones.

"Always" rules (kept by answering an approval with "allow always") live in
the daemon's store, per project, and are removed here; the others live in
config files (the user's ``config.toml``, the project's ``.kfd/config.toml``)
and are listed with where to change them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import msgspec

from kfd import protocol as p
from kfd.cli.show import say

_SOURCES: dict[str, str] = {
    "always": 'kept with "allow always" (kfd rules remove ID)',
    "project": "project config (.kfd/config.toml)",
    "user": "user config ([permissions] in config.toml)",
    "built-in": "built-in defaults ([permissions] defaults = false drops them)",
}


def add_parser(commands: Any) -> None:
    rules = commands.add_parser("rules", help="list the permission rules, or remove a kept one")
    actions = rules.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="the rules that apply in this directory")
    listing.add_argument("--cwd", default=".", help="the directory (default: .)")
    listing.add_argument(
        "--all", action="store_true", help='the "always" rules of every project instead'
    )
    listing.add_argument("--json", action="store_true", help="print JSON")

    remove = actions.add_parser("remove", help='remove an "always" rule, by id or by its text')
    remove.add_argument("rule", help="the rule's id (kfd rules list shows it) or its exact text")
    remove.add_argument("--cwd", default=".", help="the project of a rule given by text")
    remove.add_argument("--json", action="store_true", help="print JSON")


def main(args: argparse.Namespace) -> int:
    from kfd.cli.commands import execute

    return execute(_rules, args)


async def _rules(args: argparse.Namespace) -> int:
    from kfd.client import Client

    async with await Client.connect(name="kfd-rules", spawn=True) as client:
        if args.action == "list":
            listed = await client.rules(cwd=None if args.all else os.path.abspath(args.cwd))
            return _print_list(listed, json=args.json)
        text = args.rule.strip()
        if text.isdigit():
            removed = await client.remove_rule(int(text))
        else:
            removed = await client.remove_rule(rule=text, cwd=os.path.abspath(args.cwd))
        if args.json:
            sys.stdout.buffer.write(msgspec.json.encode(removed) + b"\n")
        else:
            say(f"removed [{removed.id}] {removed.rule} ({removed.project})")
        return 0


def _print_list(listed: p.RulesResult, *, json: bool) -> int:
    if json:
        sys.stdout.buffer.write(msgspec.json.encode(listed) + b"\n")
        return 0
    for problem in listed.problems:
        say(f"problem: {problem}")
    if listed.project:
        say(f"project {listed.project}")
    if listed.ignored:
        say("ignored in the project config (.kfd/config.toml; `kfd trust` shows why):")
        for line in listed.ignored:
            say(f"  {line}")
    if not listed.rules:
        say('no rules kept with "allow always"')
    for source, label in _SOURCES.items():
        rules = [rule for rule in listed.rules if rule.source == source]
        if not rules:
            continue
        say(f"{label}:")
        for rule in rules:
            if rule.source == "always":
                when = time.strftime("%Y-%m-%d", time.localtime(rule.created_at))
                where = "" if listed.project else f"  {rule.project}"
                say(f"  [{rule.id}] {rule.decision:<5} {rule.rule}  ({when}){where}")
            else:
                say(f"  {rule.decision:<5} {rule.rule}")
    return 0
