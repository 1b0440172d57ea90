"""``kfd undo`` and ``kfd diff``: put back what a turn changed, or show it.

Both work on this directory's latest session unless ``--session`` names
another. ``kfd undo`` undoes the last turn that changed files (``--turn N``:
turn N and every later one), and never overwrites a file changed since the
turn without asking: it shows what undoing would do to it and asks
(overwrite, keep yours, or merge); ``--overwrite``, ``--keep`` and
``--merge`` answer in advance (scripts). ``--conversation`` also forks the
session from before the turn; ``--list`` shows the turns that changed files.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import msgspec

from kfd import protocol as p
from kfd.cli.show import lines_of, say, say_text

EXIT_CONFLICT = 1

_ACTIONS = {
    "restore": "restored",
    "unchanged": "already as before",
    "lost": "NOT restored: its content before the turn was not kept",
    "conflict": "changed since the turn: left as it is",
    "overwritten": "restored over your later changes",
    "kept": "changed since the turn: kept as it is",
    "merged": "merged: the turn's change taken out, your later changes kept",
    "merge_conflict": "merged WITH CONFLICT MARKERS: resolve them",
    "failed": "FAILED",
}


def add_parsers(commands: Any) -> None:
    undo = commands.add_parser(
        "undo",
        help="put back the files a turn changed (the last one, or --turn N and later)",
        description=(
            "Restore the files a session's turn changed (bash-made changes included) as they "
            "were before it; a file changed since is never overwritten without asking."
        ),
    )
    _session_arguments(undo)
    undo.add_argument("--list", action="store_true", help="list the turns that changed files")
    undo.add_argument(
        "--conversation", action="store_true", help="also fork the session from before the turn"
    )
    undo.add_argument(
        "--only-conversation", action="store_true", help="fork from before the turn; files stay"
    )
    choice = undo.add_mutually_exclusive_group()
    choice.add_argument("--overwrite", action="store_true", help="files changed since: put back")
    choice.add_argument("--keep", action="store_true", help="files changed since: leave as is")
    choice.add_argument(
        "--merge", action="store_true", help="files changed since: take the turn's change out"
    )
    undo.add_argument("--dry-run", action="store_true", help="say what it would do; change nothing")
    diff = commands.add_parser(
        "diff",
        help="what a turn (or a whole session) changed, as a unified diff",
        description="The changes of a turn, or of every turn of the session not undone.",
    )
    _session_arguments(diff)


def _session_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--session", help="the session (default: this directory's latest)")
    parser.add_argument("--turn", type=int, help="the turn (default: the last that changed files)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def main(args: argparse.Namespace) -> int:
    from kfd.cli.commands import execute

    return execute(_diff if args.command == "diff" else _undo, args)


async def _session(client: Any, args: argparse.Namespace) -> p.SessionInfo | None:
    if args.session:
        info: p.SessionInfo = await client.session(args.session)
        return info
    listed = await client.sessions(cwd=os.getcwd(), limit=1)
    if not listed:
        say("kfd: no session in this directory; name one with --session", file=sys.stderr)
        return None
    found: p.SessionInfo = listed[0]
    return found


async def _diff(args: argparse.Namespace) -> int:
    from kfd.client import Client

    async with await Client.connect(name="kfd-diff", spawn=True) as client:
        info = await _session(client, args)
        if info is None:
            return 2
        result = await client.diff(info.id, args.turn)
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")
        return 0
    if not result.turns:
        say(f"no turn of session {info.id} changed files", file=sys.stderr)
        return 0
    if sys.stdout.isatty():
        say_text(result.diff, keep_tabs=True)
    else:
        sys.stdout.write(result.diff)  # a patch, for `git apply` or a file: the bytes as they are
    return 0


async def _undo(args: argparse.Namespace) -> int:
    from kfd.client import Client

    async with await Client.connect(name="kfd-undo", spawn=True) as client:
        info = await _session(client, args)
        if info is None:
            return 2
        if args.list:
            return _print_list(await client.checkpoints(info.id), json=args.json)
        choice: p.ConflictChoice = (
            "overwrite"
            if args.overwrite
            else "keep"
            if args.keep
            else "merge"
            if args.merge
            else "ask"
        )
        files = not args.only_conversation
        conversation = args.conversation or args.only_conversation
        result = await client.undo(
            info.id,
            args.turn,
            files=files,
            conversation=conversation,
            on_conflict=choice,
            dry_run=args.dry_run,
        )
        if not result.applied and files and not args.dry_run:
            answer = _ask(result)
            if answer is None:
                if args.json:
                    sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")
                return EXIT_CONFLICT
            result = await client.undo(
                info.id,
                args.turn,
                files=files,
                conversation=conversation,
                on_conflict=answer,
                expect=result.fingerprint,
            )
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")
        return 0
    _print_result(result, dry_run=args.dry_run)
    failed = any(s.action in ("failed", "merge_conflict", "lost") for s in result.steps)
    return 1 if failed else 0


def _ask(result: p.UndoResult) -> p.ConflictChoice | None:
    """Show the conflicts; the user's choice, or None (not a terminal, or cancelled)."""
    conflicts = [s for s in result.steps if s.action == "conflict"]
    turns = ", ".join(map(str, result.turns))
    out = sys.stderr
    say(f"undoing turn(s) {turns}: {len(conflicts)} file(s) changed since the turn:", file=out)
    for step in conflicts:
        say("", f"  {step.path}: undoing would do this to it as it is now:", file=out)
        say(*(f"    {line}" for line in lines_of(step.diff)), file=out, keep_tabs=True)
    others = [s for s in result.steps if s.action == "restore"]
    if others:
        say("", f"{len(others)} other file(s) would be restored as they were.", file=out)
    if not sys.stdin.isatty():
        say(
            "nothing was changed; run again with --overwrite (put them back anyway), "
            "--keep (leave them as they are) or --merge (take the turn's change out)",
            file=out,
        )
        return None
    out.write("\n[o]verwrite them · [k]eep them as they are · [m]erge · anything else cancels: ")
    out.flush()
    answer = sys.stdin.readline().strip().lower()[:1]
    chosen: dict[str, p.ConflictChoice] = {"o": "overwrite", "k": "keep", "m": "merge"}
    if answer not in chosen:
        say("cancelled; nothing was changed", file=out)
        return None
    return chosen[answer]


def _print_result(result: p.UndoResult, *, dry_run: bool) -> None:
    turns = ", ".join(map(str, result.turns))
    if result.turns:
        verb = "would undo" if dry_run else "undid"
        say(f"{verb} turn(s) {turns} of session {result.session}")
    for step in result.steps:
        what = _ACTIONS.get(step.action, step.action)
        if step.action == "restore" and dry_run:
            what = "would be restored"
        detail = f" ({step.detail})" if step.detail else ""
        say(f"  {step.path}: {what}{detail}")
    if result.forked is not None:
        say(f"the conversation continues from before turn(s) {turns} in {result.forked.id}")
        say(f"  kfd attach {result.forked.id}")


def _print_list(result: p.CheckpointListResult, *, json: bool) -> int:
    if json:
        sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")
        return 0
    if not result.turns:
        say(f"no turn of session {result.session} changed files")
        return 0
    say(f"session {result.session} ({result.root})")
    for turn in result.turns:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(turn.started_at))
        flag = "  [undone]" if turn.undone else ""
        say(f"turn {turn.turn}  {when}  {turn.prompt}{flag}")
        for changed in turn.files:
            say(f"    {changed.change:<8} {changed.path}")
    return 0
