"""The client-side subcommands: run, sessions, status, stop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, TextIO

import msgspec

from kfd import paths
from kfd import protocol as p
from kfd.cli import remotes
from kfd.cli.show import say, say_text
from kfd.client import (
    Client,
    ClientError,
    ConnectionLost,
    ConnectionRestored,
    DaemonUnavailable,
    RequestFailed,
    drift_message,
    ensure_daemon,
)
from kfd.client.exact import compact, visible
from kfd.client.tables import missing_lines

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_DAEMON = 3

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]

_json = msgspec.json.Encoder()


def execute(handler: Handler, args: argparse.Namespace) -> int:
    try:
        return asyncio.run(handler(args))
    except DaemonUnavailable as exc:
        say_text(f"kfd: {exc}", file=sys.stderr)  # may end with the daemon's own output
        return EXIT_NO_DAEMON
    except RequestFailed as exc:
        say_text(f"kfd: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except ClientError as exc:
        say_text(f"kfd: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


# -- kfd run --------------------------------------------------------------


def _json_line(item: Any) -> bytes:
    if isinstance(item, p.Event):
        data = msgspec.to_builtins(item)
        data.setdefault("seq", item.seq)
        data.setdefault("session", item.session)
    elif isinstance(item, ConnectionLost):
        data = {"type": "client.connection_lost", "session": item.session, "seq": None}
    else:
        data = {"type": "client.connection_restored", "session": item.session, "seq": None}
    return _json.encode(data) + b"\n"


class _Printer:
    """Human output: the answer on stdout, activity on stderr, both shown exactly
    (`kfd.cli.show`): the model's text keeps its lines and tabs, a note is
    one line per argument."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self.open_line = False

    def text(self, text: str) -> None:
        # Delta by delta: an escape sequence split across two is still escaped,
        # its lone ESC in the first.
        self.out.write(visible(text, keep_tabs=True))
        self.out.flush()
        self.open_line = not text.endswith("\n")

    def end_message(self) -> None:
        if self.open_line:
            self.out.write("\n")
            self.out.flush()
            self.open_line = False

    def note(self, *lines: str) -> None:
        self.end_message()
        say(*lines, file=self.err)
        self.err.flush()


def warn_drift(client: Client) -> None:
    """Say so when this shell's provider environment is not the daemon's."""
    drift = client.environment_drift
    if drift:
        say(f"kfd: note: {drift_message(drift)}", file=sys.stderr)


async def run(args: argparse.Namespace) -> int:
    remote = remotes.remote_of(args)
    if remote is None:
        cwd = os.path.abspath(args.cwd or ".")
        if not args.session and not os.path.isdir(cwd):
            say(f"kfd: --cwd {args.cwd!r} is not a directory", file=sys.stderr)
            return EXIT_USAGE
    else:
        cwd = args.cwd or remote.workspace
        if not args.session and not cwd.startswith("/"):
            say(
                f"kfd: --remote {remote.name}: give --cwd DIR, an absolute path on that host "
                f"(or set [remotes.{remote.name}] workspace)",
                file=sys.stderr,
            )
            return EXIT_USAGE
    async with await remotes.connect(args, "kfd-run") as client:
        if remote is None:  # a remote daemon's environment is its host's, not this shell's
            warn_drift(client)
        if args.session:
            info = await client.session(args.session)
            if args.mode and args.mode != info.mode:
                info = await client.set_mode(info.id, args.mode)
            if args.model is not None and args.model != info.model:
                # Refused (say, an empty name): the daemon says why, and nothing is sent.
                info = await client.set_model(info.id, args.model)
        else:
            # No title: the daemon names the session after its first message.
            info = await client.create_session(
                cwd,
                model=args.model,
                mode=args.mode or "default",
            )
        text = " ".join(args.prompt)
        if not args.custom_command and not text.strip():
            say("kfd: run needs a prompt (or --command NAME)", file=sys.stderr)
            return EXIT_USAGE
        async with await client.attach(info.id, since_seq=info.last_seq) as session:
            if args.custom_command:
                sent = await client.run_command(info.id, args.custom_command, text)
            else:
                sent = await client.send(info.id, text)
            return await _follow(client, session, sent.message_id, args)


async def _follow(client: Client, session: Any, message_id: str, args: argparse.Namespace) -> int:
    printer = _Printer(sys.stdout, sys.stderr)
    out = sys.stdout.buffer
    timers: dict[str, asyncio.Task[None]] = {}
    our_turn: int | None = None
    failed = False
    config = _ConfigNews()

    async def deny_later(approval: p.ApprovalRequested) -> None:
        await asyncio.sleep(args.approval_timeout)
        with contextlib.suppress(RequestFailed):  # someone answered meanwhile
            await client.respond(
                approval.session,
                approval.approval_id,
                "deny",
                f"no frontend answered within {args.approval_timeout:g} s (kfd run)",
            )

    try:
        async for item in session:
            news = config.news(item)
            if args.json and news:
                out.write(_json_line(item))
                out.flush()
            match item:
                case p.ConfigInvalid() | p.ConfigReloaded() if not args.json and news:
                    printer.note(config.line(item))
                case p.TurnStarted() if message_id in item.message_ids:
                    our_turn = item.turn
                case p.MessageDelta(kind="text") if not args.json and our_turn is not None:
                    printer.text(item.text)
                case p.MessageCompleted() if not args.json:
                    printer.end_message()
                case p.ToolStarted() if not args.json:
                    printer.note(f"· {item.name} {item.summary}".rstrip())
                case p.ToolCompleted() if not args.json and item.status != "ok":
                    first = item.output.strip().splitlines()[:1]
                    printer.note(f"  {item.status}: {first[0] if first else ''}")
                case p.ApprovalRequested():
                    if not args.json:
                        # Shown exactly (a note is): a \r or an escape sequence must not
                        # hide a part, a newline must not pass for a line of kfd's own.
                        what = compact(
                            item.preview.command or item.preview.summary or item.tool,
                            one_line=True,
                        )
                        printer.note(
                            f"? {item.tool} needs approval ({item.reason}): {what}",
                            f"  answer from another frontend, or it is denied in "
                            f"{args.approval_timeout:g} s",
                        )
                    timers[item.approval_id] = asyncio.create_task(deny_later(item))
                case p.ApprovalResolved():
                    timer = timers.pop(item.approval_id, None)
                    if timer is not None:
                        timer.cancel()
                    if not args.json:
                        who = item.by.name if item.by else "kfd"
                        printer.note(f"  {item.decision} ({who})")
                case p.ErrorEvent():
                    failed = True
                    if not args.json:
                        printer.note(f"error: {item.message}")
                case ConnectionLost() if not args.json:
                    printer.note("… the daemon went away; waiting for it to come back")
                case ConnectionRestored() if not args.json:
                    printer.note("… reconnected")
                case p.TurnCompleted() if item.turn == our_turn:
                    printer.end_message()
                    if item.stop_reason != "end_turn":
                        if not args.json and not (failed and item.stop_reason == "error"):
                            printer.note(f"turn ended: {item.stop_reason} {item.message}".rstrip())
                        return EXIT_FAILED
                    return EXIT_FAILED if failed else EXIT_OK
    finally:
        for timer in timers.values():
            timer.cancel()
    return EXIT_FAILED


class _ConfigNews:
    """A config file that does not load is said once (the daemon says so in the
    session at its start and at every message: `kfd.daemon.config_notices`)."""

    def __init__(self) -> None:
        self.shown: dict[str, str] = {}
        """Path -> the problem said, until it loads again."""

    def news(self, item: object) -> bool:
        """Whether ``item`` is to be shown: not a config problem said already."""
        match item:
            case p.ConfigInvalid():
                if self.shown.get(item.path) == item.message:
                    return False
                self.shown[item.path] = item.message
            case p.ConfigReloaded():
                self.shown.pop(item.path, None)
        return True

    @staticmethod
    def line(item: p.ConfigInvalid | p.ConfigReloaded) -> str:
        if isinstance(item, p.ConfigInvalid):
            return f"config not reloaded: {item.message}"
        return f"config reloaded: {'; '.join([*item.applied, *item.not_applied]) or 'fixed'}"


# -- kfd sessions / status / stop ---------------------------------------------


def _ago(ts: float) -> str:
    seconds = max(0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


async def sessions(args: argparse.Namespace) -> int:
    if args.here and remotes.remote_of(args) is not None:
        say("kfd: --here names a directory of this machine; not with --remote", file=sys.stderr)
        return EXIT_USAGE
    async with await remotes.connect(args, "kfd-sessions") as client:
        listed = await client.sessions(
            cwd=os.getcwd() if args.here else None, include_archived=args.all
        )
    if args.json:
        sys.stdout.buffer.write(_json.encode(listed) + b"\n")
        return EXIT_OK
    if not listed:
        say('no sessions yet; start one with `kfd run "..."`')
        return EXIT_OK
    for info in listed:
        tokens = info.usage.input_tokens + info.usage.output_tokens
        title = info.title or "(untitled)"
        flags = "  [archived]" if info.archived else ""
        status = "" if info.status == "idle" else f"  {info.status}"
        say(
            f"{info.id}  {title[:60]}{flags}{status}",
            f"{'':22}{info.cwd}",
            f"{'':22}{_ago(info.updated_at)} · {info.turns} turns · {tokens:,} tokens · "
            f"${info.usage.cost_usd:.4f} · {info.mode}",
        )
    return EXIT_OK


async def status(args: argparse.Namespace) -> int:
    directory = paths.runtime_dir()
    remote = remotes.remote_of(args)
    if remote is None and paths.daemon_pid(directory) is None:
        if args.json:
            sys.stdout.write('{"alive": false, "running": 0}\n')
        else:
            say(f"no kfd daemon is running for {directory}")
        return EXIT_NO_DAEMON
    async with await remotes.connect(args, "kfd-status", spawn=False) as client:
        # The tools that cannot work here: "here" is a directory of this machine.
        result = await client.status(cwd=os.getcwd() if remote is None else "")
        drift = client.environment_drift if remote is None else []
    if args.json:
        # ``running`` is the count of sessions running a turn; ``alive`` says a daemon answered.
        data = msgspec.to_builtins(result)
        data["alive"] = True
        data["environment_drift"] = drift
        sys.stdout.buffer.write(_json.encode(data) + b"\n")
        return EXIT_OK
    say(f"kfd {result.version}  daemon {result.daemon_id}  pid {result.pid}")
    say(f"up {_duration(result.uptime_s)}; {result.sessions} sessions, {result.running} running")
    if result.draining:
        say("stopping: waiting for the running turns to finish")
    if result.trouble:
        say(f"problem: cannot write the state directory: {result.trouble}; retrying")
    if drift:
        say(f"note: {drift_message(drift)}")
    say(f"runtime {result.runtime_dir}", f"state   {result.state_dir}")
    say(f"tools: {', '.join(result.tools) or 'none'}")
    others = [f for f in result.frontends if f.name != "kfd-status"]
    say(f"frontends attached: {len(others)}")
    for frontend in others:
        behind = (
            f"; {frontend.queued_bytes // 1024} KiB waiting, {frontend.shed_events} events shed"
            if frontend.queued_bytes or frontend.shed_events
            else ""
        )
        where = f" over TCP, key {frontend.key!r}" if frontend.key else f" pid {frontend.pid}"
        say(f"  {frontend.name} ({frontend.id}){where}{behind}")
    if result.config_path:
        loaded = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(result.config_loaded_at))
        state = "does not load; kept the one read" if result.config_error else "read"
        say(f"config  {result.config_path} ({state} {loaded})")
    for problem in result.problems:
        say(f"problem: {problem}")
    if remote is not None:
        say(f"remote  {remote.name} at {remote.endpoint}")
    else:
        print_missing(result.tools_missing, "in this directory")
    return EXIT_OK


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


async def _wait_stopped(directory: Any, pid: int, deadline_s: float | None) -> bool:
    """Wait until the daemon holding ``directory`` has exited; False past the deadline."""
    start = time.monotonic()
    while paths.daemon_pid(directory) is not None:
        if deadline_s is not None and time.monotonic() - start > deadline_s:
            return False
        await asyncio.sleep(0.05)
    return True


async def restart(args: argparse.Namespace) -> int:
    """Stop the daemon gracefully (running turns finish unless ``--now``) and start
    it again from this shell's environment; frontends reconnect by themselves."""
    directory = paths.runtime_dir()
    pid = paths.daemon_pid(directory)
    if pid is not None:
        async with await Client.connect(name="kfd-restart") as client:
            running = (await client.status()).running
            if running and not args.now:
                say(
                    f"waiting for {running} running turn(s) to finish "
                    "(`kfd restart --now` interrupts them; new messages wait for the restart)",
                    file=sys.stderr,
                )
                for info in await client.sessions(limit=1000):
                    if info.status == "awaiting_approval":  # it waits for a person
                        say(
                            f"session {info.id} ({info.title or info.cwd}) waits for "
                            f"an approval: answer it (kfd attach {info.id}) or use --now",
                            file=sys.stderr,
                        )
            await client.request(p.Shutdown(id="", wait_for_turns=not args.now, restart=True))
        if not await _wait_stopped(directory, pid, None if not args.now else 30):
            say(f"kfd: the daemon (pid {pid}) did not stop within 30 s", file=sys.stderr)
            return EXIT_FAILED
    await asyncio.to_thread(ensure_daemon, directory, 20.0)
    new_pid = paths.daemon_pid(directory)
    if pid is None:
        say(f"no daemon was running; started one (pid {new_pid})")
    else:
        say(f"restarted the kfd daemon (pid {pid} -> {new_pid})")
    return EXIT_OK


async def stop(args: argparse.Namespace) -> int:
    directory = paths.runtime_dir()
    pid = paths.daemon_pid(directory)
    if pid is None:
        say("no kfd daemon is running")
        return EXIT_OK
    async with await Client.connect(name="kfd-stop") as client:
        await client.shutdown()
    deadline = time.monotonic() + 15
    while paths.daemon_pid(directory) is not None:
        if time.monotonic() > deadline:
            say(f"kfd: the daemon (pid {pid}) did not stop within 15 s", file=sys.stderr)
            return EXIT_FAILED
        await asyncio.sleep(0.05)
    say(f"stopped the kfd daemon (pid {pid})")
    return EXIT_OK


def print_missing(missing: list[p.MissingTool], where: str) -> None:
    """The tools not offered because they cannot work, grouped by reason."""
    say(*missing_lines(missing, where))
