"""The ``kfd`` command.

Each subcommand imports what it needs when it runs, so ``kfd run`` against a
running daemon loads the client library and nothing of the daemon.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from kfd import __version__

MODES = ("default", "accept-edits", "plan", "auto")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kfd",
        description="A coding agent that runs as a daemon; attach from anywhere.",
        epilog="Without a command, kfd opens the terminal REPL on this directory's latest session.",
    )
    parser.add_argument("--version", action="version", version=f"kfd {__version__}")
    from kfd.cli import remotes

    remotes.add_option(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    daemon = commands.add_parser("daemon", help="run the daemon in the foreground")
    daemon.add_argument("--log-stderr", action="store_true", help="also log to stderr")

    run = commands.add_parser("run", help="run one turn headless and print the answer")
    run.add_argument(
        "prompt", nargs="*", help="the message to send (with --command: the command's arguments)"
    )
    run.add_argument(
        "--command",
        dest="custom_command",
        metavar="NAME",
        help="run the custom command NAME (.kfd/commands/NAME.md or your own) instead",
    )
    run.add_argument(
        "--cwd",
        help="workspace of a new session (default: .; with --remote, a directory on that host, "
        "by default its [remotes.NAME] workspace)",
    )
    run.add_argument("--session", help="send to this session (id or unique prefix)")
    run.add_argument("--mode", choices=MODES, help="permission mode for the session")
    run.add_argument("--model", help="model of the session (a new one, or the --session one)")
    run.add_argument("--json", action="store_true", help="print every event as a JSON line")
    run.add_argument(
        "--approval-timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="deny an approval no frontend answers within S seconds (default 120)",
    )

    sessions = commands.add_parser("sessions", help="list sessions")
    sessions.add_argument("--all", action="store_true", help="include archived sessions")
    sessions.add_argument("--here", action="store_true", help="only sessions of this directory")
    sessions.add_argument("--json", action="store_true", help="print JSON")

    status = commands.add_parser("status", help="show the daemon's state")
    status.add_argument("--json", action="store_true", help="print JSON")

    commands.add_parser("stop", help="stop the daemon (running turns end as interrupted)")
    restart = commands.add_parser(
        "restart",
        help="restart the daemon with this shell's environment (running turns finish first)",
    )
    restart.add_argument(
        "--now", action="store_true", help="interrupt running turns instead of waiting"
    )

    from kfd.cli import logs

    logs.add_parser(commands)

    from kfd.cli import frontend, repl, watch

    repl.add_parsers(commands, MODES)

    watch.add_parser(commands)
    frontend.add_parsers(commands)

    from kfd.cli import context, memory

    context.add_parsers(commands)
    memory.add_parser(commands)

    from kfd.cli import cost

    cost.add_parsers(commands)

    from kfd.cli import mcp

    mcp.add_parser(commands)

    from kfd.cli import explain, keys, rules, trust, undo

    keys.add_parser(commands)

    undo.add_parsers(commands)
    rules.add_parser(commands)
    explain.add_parser(commands, MODES)
    trust.add_parser(commands)
    for name in remotes.SUBCOMMANDS:
        remotes.add_option(commands.choices[name], many=name in remotes.MANY)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # `kfd models | head`: the reader left; that is not an error. Point
        # stdout at /dev/null so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["acp"]:
        # An editor waits on `kfd acp` before it shows anything: skip building
        # (and importing) every other command's parser.
        from kfd.cli import frontend

        arguments = frontend.acp_parser().parse_args(words[1:])
        arguments.command = "acp"
        return frontend.acp(arguments)
    parser = build_parser()
    args = parser.parse_args(words)
    command = args.command
    from kfd.cli import remotes

    if command in remotes.COMMANDS:
        from kfd.cli.show import say_text
        from kfd.errors import ConfigError

        try:
            remotes.resolve(args)
        except ConfigError as exc:
            say_text(f"kfd: {exc}", file=sys.stderr)
            return 2
    elif getattr(args, "remote_name", None):
        print(f"kfd: `kfd {command}` does not take --remote", file=sys.stderr)
        return 2
    if command in (None, "attach", "new", "resume"):
        from kfd.cli import repl

        return repl.main(args)
    if command == "daemon":
        from kfd.cli.daemon import main as daemon_main

        return daemon_main(args)
    if command == "watch":
        from kfd.cli import watch

        return watch.main(args)
    if command in ("notify", "chat"):
        from kfd.cli import frontend

        return frontend.main(args)
    if command == "acp":
        from kfd.cli import frontend

        return frontend.acp(args)
    if command in ("context", "compact"):
        from kfd.cli import context

        return context.main(args)
    if command == "memory":
        from kfd.cli import memory

        return memory.main(args)
    if command in ("cost", "models", "budget"):
        from kfd.cli import cost

        return cost.main(args)
    if command == "mcp":
        from kfd.cli import mcp

        return mcp.main(args)
    if command == "rules":
        from kfd.cli import rules

        return rules.main(args)
    if command == "explain":
        from kfd.cli import explain

        return explain.main(args)
    if command in ("undo", "diff"):
        from kfd.cli import undo

        return undo.main(args)
    if command == "logs":
        from kfd.cli import logs

        return logs.main(args)
    if command == "trust":
        from kfd.cli import trust

        return trust.main(args)
    if command == "keys":
        from kfd.cli import keys

        return keys.main(args)
    from kfd.cli import commands

    handler = {
        "run": commands.run,
        "sessions": commands.sessions,
        "status": commands.status,
        "stop": commands.stop,
        "restart": commands.restart,
    }[command]
    return commands.execute(handler, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
