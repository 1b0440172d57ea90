"""``kfd logs``: the daemon's log, filtered, and followed with ``-f``.

Reads the JSON lines of ``$XDG_STATE_HOME/kfd/daemon.log`` and its rotated
predecessors (`kfd.daemon.logs`) straight from disk, oldest first, so it
works with the daemon stopped too. Lines of an older plain-text log are
shown as they are.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from kfd import paths
from kfd.cli.show import say

LEVELS = ("debug", "info", "warning", "error", "critical")

_decoder = msgspec.json.Decoder(dict[str, Any])
_encoder = msgspec.json.Encoder()


def add_parser(commands: Any) -> None:
    logs = commands.add_parser("logs", help="show the daemon's log (-f to follow it)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("--session", help="only lines about this session (id or prefix)")
    logs.add_argument(
        "--level", choices=LEVELS, default="debug", help="only lines at this level or above"
    )
    logs.add_argument("--json", action="store_true", help="print the JSON lines as they are")
    logs.add_argument("-n", "--lines", type=int, metavar="N", help="only the last N lines first")


def log_files(state: Path) -> list[Path]:
    """``daemon.log`` and its rotations, oldest first."""
    rotated = []
    for path in state.glob("daemon.log.*"):
        suffix = path.name.rsplit(".", 1)[-1]
        if suffix.isdigit():
            rotated.append((int(suffix), path))
    files = [path for _, path in sorted(rotated, reverse=True)]
    current = state / "daemon.log"
    return [*files, current] if current.exists() else files


def parse(line: str) -> dict[str, Any]:
    """One log line as a record (a plain-text line becomes its message)."""
    try:
        record = _decoder.decode(line)
    except msgspec.DecodeError:
        return {"message": line.rstrip("\n"), "level": "info", "plain": True}
    return record


def wanted(record: dict[str, Any], session: str | None, level: str) -> bool:
    """Whether ``record`` passes the ``--session`` and ``--level`` filters."""
    if session is not None and not str(record.get("session", "")).startswith(session):
        return False
    record_level = str(record.get("level", "info"))
    rank = LEVELS.index(record_level) if record_level in LEVELS else 1
    return rank >= LEVELS.index(level)


def render(record: dict[str, Any]) -> str:
    """A record for people: time, level, logger, context, message, traceback."""
    return "\n".join(render_lines(record))


def render_lines(record: dict[str, Any]) -> list[str]:
    """`render`'s lines: the record's line, then its traceback's (a message's own
    newlines stay in its line, so ``kfd logs`` shows them escaped)."""
    if record.get("plain"):
        return [str(record["message"])]
    context = " ".join(
        f"{key}={record[key]}"
        for key in ("session", "turn", "request", "model_request")
        if key in record
    )
    line = (
        f"{record.get('ts', '')} {str(record.get('level', '')).upper():<7} "
        f"{record.get('logger', '')}: {record.get('message', '')}"
    )
    if context:
        line += f"  [{context}]"
    traceback = str(record.get("exception") or "").splitlines()
    return [line, *(f"    {part}" for part in traceback)]


def _lines(files: Iterable[Path]) -> Iterator[str]:
    for path in files:
        try:
            with path.open(encoding="utf-8", errors="replace") as handle:
                yield from handle
        except FileNotFoundError:  # rotated away while we read
            continue


def main(args: argparse.Namespace) -> int:
    state = paths.state_dir()
    files = log_files(state)
    if not files and not args.follow:
        say(f"kfd: no daemon log in {state} yet", file=sys.stderr)
        return 1
    shown: list[list[str]] = []
    for line in _lines(files):
        record = parse(line)
        if wanted(record, args.session, args.level):
            shown.append([line.rstrip("\n")] if args.json else render_lines(record))
    if args.lines is not None:
        shown = shown[-args.lines :] if args.lines > 0 else []
    for lines in shown:
        _show(lines, json=args.json)
    sys.stdout.flush()
    if args.follow:
        try:
            _follow(state / "daemon.log", args)
        except KeyboardInterrupt:
            return 0
    return 0


def _follow(path: Path, args: argparse.Namespace) -> None:
    """Print what is appended to ``path``, across rotations, until interrupted."""
    from watchfiles import watch  # inotify: wakes on writes, costs nothing meanwhile

    position = path.stat().st_size if path.exists() else 0
    inode = path.stat().st_ino if path.exists() else None
    pending = ""
    for _ in watch(path.parent, debounce=50, step=50, recursive=False):
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        if info.st_ino != inode or info.st_size < position:
            inode, position = info.st_ino, 0  # rotated: the new file from its start
        with path.open(encoding="utf-8", errors="replace") as handle:
            handle.seek(position)
            chunk = handle.read()
            position = handle.tell()
        pending += chunk
        *complete, pending = pending.split("\n")
        for line in complete:
            if not line:
                continue
            record = parse(line)
            if wanted(record, args.session, args.level):
                _show([line] if args.json else render_lines(record), json=args.json)
        sys.stdout.flush()


def _show(lines: list[str], *, json: bool) -> None:
    """One record's lines: the JSON line as it is (``--json``), else shown exactly."""
    if json:
        sys.stdout.write(lines[0] + "\n")
    else:
        say(*lines)
