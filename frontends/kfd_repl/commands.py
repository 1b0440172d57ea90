"""Slash commands: the table (for /help and completion) and what each one does.

A line starting with ``/`` whose first word is a command runs it; a first
word that looks like a path (``/etc/hosts is empty?``) is sent as a message;
anything else gets a clear "unknown command". Failures come back as notes
the user can act on, never as a crashed REPL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from kfd import protocol as p
from kfd.client import RequestFailed
from kfd.client.exact import visible
from kfd.client.tables import compact_lines, context_lines, memory_lines
from kfd_repl import backend, live, rewind
from kfd_repl.blocks import Listing, Note

if TYPE_CHECKING:
    from kfd_repl.app import Repl


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    args: str
    help: str


COMMANDS: tuple[Command, ...] = (
    Command("/help", "", "list the commands and keys"),
    Command("/sessions", "[all]", "sessions of this directory (all: everywhere)"),
    Command("/attach", "ID", "switch this terminal to another session"),
    Command("/resume", "", "choose one of this project's sessions and switch to it"),
    Command("/new", "", "start a fresh session in this directory"),
    Command("/fork", "[MESSAGE_ID]", "continue in a copy of this session"),
    Command("/undo", "[N] [overwrite|keep|merge]", "put back the files the last turn changed"),
    Command("/rewind", "[N [files|conversation|both]]", "turns that changed files; go back to one"),
    Command("/mode", "[MODE]", "set or cycle the permission mode (also Shift-Tab)"),
    Command("/model", "[NAME]", "show or change the session's model"),
    Command("/cost", "", "what this session has spent"),
    Command("/tasks", "", "the model's task list"),
    Command("/compact", "[INSTRUCTIONS]", "summarise older turns to free context"),
    Command("/memory", "[QUERY]", "what kfd remembers for this project (QUERY: the best matches)"),
    Command("/context", "", "what fills the model's context window"),
    Command("/expand", "[N]", "show a long message that is shown collapsed (the last one)"),
    Command("/mcp", "", "the MCP servers: status, last error, tools"),
    Command("/rules", "[remove ID|RULE]", "the permission rules here, or remove a kept one"),
    Command("/trust", "[yes|revoke]", "trust this repository's .kfd/config.toml, or show it"),
    Command("/clear", "", "clear the screen (the session is kept)"),
    Command("/quit", "", "detach; the session goes on in the daemon (also Ctrl-D)"),
)

ALIASES = {"/exit": "/quit", "/q": "/quit", "/?": "/help"}

KEYS = (
    "Enter send · Esc Enter or Alt-Enter new line · Tab complete · @path file reference",
    "Ctrl-C cancel the turn (twice on an idle prompt: detach) · Ctrl-D detach",
    "Shift-Tab cycle the permission mode · Ctrl-R search history",
    "approvals: y allow once · a for this session · A always (this project) · n deny",
)

NAMES = frozenset(command.name for command in COMMANDS) | frozenset(ALIASES)

OFFLINE = frozenset({"/help", "/tasks", "/expand", "/clear", "/quit"})
"""Commands that work while the daemon is unreachable."""


def is_command(line: str) -> bool:
    """True if ``line`` is meant as a command rather than a message."""
    if not line.startswith("/"):
        return False
    word = line.split(maxsplit=1)[0]
    # "/usr/lib is missing" is a message about a path, not a command.
    return word in NAMES or "/" not in word[1:]


async def run(repl: Repl, line: str) -> None:
    """Run one command line (``line`` starts with ``/``)."""
    word, _, argument = line.strip().partition(" ")
    name = ALIASES.get(word, word)
    handler = _HANDLERS.get(name)
    if (handler is None or name == "/help") and repl.view.connected:
        with contextlib.suppress(TimeoutError):  # the list is asked for on attach
            async with asyncio.timeout(5.0):
                await repl.commands_loaded.wait()
    custom = repl.custom_commands.get(word[1:]) if handler is None else None
    if custom is not None and repl.view.connected:
        await rewind.run_custom(repl, custom, argument.strip())
        return
    if handler is None:
        repl.show(Note(f"unknown command {word}; /help lists the commands", "warn"))
        return
    if not repl.view.connected and name not in OFFLINE:
        repl.show(Note(f"{name} needs the daemon, which is unreachable; try when it is back"))
        return
    await handler(repl, argument.strip())


async def _help(repl: Repl, argument: str) -> None:
    width = max(len(f"{c.name} {c.args}") for c in COMMANDS)
    lines = [f"{f'{c.name} {c.args}'.strip():<{width}}  {c.help}" for c in COMMANDS]
    custom = rewind.custom_help(repl.custom_commands)
    repl.show(Listing("commands", (*lines, *custom, "", *KEYS)))


async def _sessions(repl: Repl, argument: str) -> None:
    everywhere = argument == "all"
    listed = await repl.client.sessions(cwd=None if everywhere else repl.cwd, limit=30)
    repl.remember_sessions(listed)
    if not listed:
        repl.show(Note("no sessions here yet; /sessions all lists every directory's"))
        return
    lines = []
    for info in listed:
        here = "•" if info.id == repl.view.info.id else " "
        title = info.title or "(untitled)"
        where = f"  {info.cwd}" if everywhere else ""
        lines.append(
            f"{here} {info.id}  {info.status:<17} {_ago(info.updated_at):>8}  {title}{where}"
        )
    repl.show(Listing("sessions (most recent first; /attach ID switches)", tuple(lines)))


async def _attach(repl: Repl, argument: str) -> None:
    if not argument:
        repl.show(Note("/attach needs a session id (see /sessions)", "warn"))
        return
    info = await repl.client.session(argument)
    await repl.switch_to(info)


async def _resume(repl: Repl, argument: str) -> None:
    from prompt_toolkit.application import in_terminal

    from kfd_repl.picker import choose, project_sessions

    root, listed = await project_sessions(repl.client, repl.cwd)
    if not listed:
        repl.show(Note(f"no sessions in {root} yet"))
        return
    async with in_terminal():
        chosen = await choose(
            listed, title=f"resume a session of {root}", current=repl.view.info.id
        )
    if chosen is not None and chosen.id != repl.view.info.id:
        await repl.switch_to(chosen)


async def _new(repl: Repl, argument: str) -> None:
    info = await repl.client.create_session(repl.cwd, mode=repl.view.info.mode)
    await repl.switch_to(info)


async def _fork(repl: Repl, argument: str) -> None:
    info = await repl.client.fork(repl.view.info.id, argument or None)
    repl.show(Note(f"forked {repl.view.info.id} into {info.id}"))
    await repl.switch_to(info)


async def _mode(repl: Repl, argument: str) -> None:
    if argument and argument not in p.MODES:
        repl.show(Note(f"unknown mode {argument!r}; the modes are {', '.join(p.MODES)}", "warn"))
        return
    await repl.set_mode(argument or None)


async def _model(repl: Repl, argument: str) -> None:
    if not argument:
        repl.show(Note(f"model: {repl.view.info.model or '(the daemon default)'}"))
        return
    await repl.client.set_model(repl.view.info.id, argument)


async def _cost(repl: Repl, argument: str) -> None:
    now = datetime.now().astimezone()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    queries: list[tuple[str, p.CostQuery]] = [
        ("this session", p.CostQuery(id="", session=repl.view.info.id)),
        ("today", p.CostQuery(id="", since=day.timestamp())),
        ("this month", p.CostQuery(id="", since=month.timestamp())),
    ]
    figures = []
    for title, query in queries:
        result: p.CostResult = await repl.client.request(query)
        figures.append(backend.cost_line(title, result.total))
    by_model: p.CostResult = await repl.client.request(
        p.CostQuery(id="", since=month.timestamp(), by="model")
    )
    for row in by_model.rows:
        figures.append(backend.cost_line(f"  {row.key or '?'}", row))
    repl.show(Listing("cost (confirmed by the gateway + estimated locally)", tuple(figures)))


async def _tasks(repl: Repl, argument: str) -> None:
    if "tasks.updated" not in p.EVENT_TYPES:
        repl.show(Note("/tasks is not available yet: this kfd has no tasks feature"))
        return
    lines = live.task_lines(repl.view) or ["(the model has not made a plan in this session)"]
    repl.show(Listing("tasks", tuple(lines)))


async def _compact(repl: Repl, argument: str) -> None:
    repl.flash("compacting: the model is writing the summary…", seconds=300)
    try:
        result = await repl.client.compact(repl.view.info.id, argument)
    finally:
        repl.flash("", seconds=0)
    repl.show(Listing("/compact", tuple(compact_lines(result))))


async def _context(repl: Repl, argument: str) -> None:
    result = await repl.client.context(repl.view.info.id)
    repl.show(Listing("/context", tuple(context_lines(result))))


async def _memory(repl: Repl, argument: str) -> None:
    cwd = repl.view.info.cwd
    if argument:
        found = await repl.client.memories(cwd=cwd, query=argument, limit=10)
        lines = memory_lines(found, empty="nothing remembered matches")
        title = f"/memory {argument}: the best matches first"
    else:
        found = await repl.client.memories(cwd=cwd, limit=100)
        lines = memory_lines(found, empty="nothing remembered yet")
        title = "/memory: this project's facts and the global ones, newest first"
    repl.show(Listing(title, tuple(lines)))


async def _expand(repl: Repl, argument: str) -> None:
    pastes = repl.view.pastes
    if not pastes:
        repl.show(Note("no long message is shown collapsed in this session"))
        return
    number = int(argument) if argument.isdigit() else max(pastes) if not argument else 0
    text = pastes.get(number)
    if text is None:
        shown = ", ".join(str(n) for n in sorted(pastes)[-10:])
        repl.show(Note(f"/expand takes the number of a collapsed message: {shown}", "warn"))
        return
    lines = text.rstrip("\n").split("\n")
    repl.show(Listing(f"message {number} ({len(lines):,} lines)", tuple(lines)))


async def _mcp(repl: Repl, argument: str) -> None:
    repl.flash("asking the MCP servers (those not started yet start now)…", seconds=120)
    try:
        status = await repl.client.status(refresh_tools=True)
    finally:
        repl.flash("", seconds=0)
    mcp = status.plugin_status.get("mcp")
    servers = mcp.get("servers") if isinstance(mcp, dict) else None
    if not servers:
        repl.show(Note("no MCP servers configured; add them as [mcp.servers.NAME] in config.toml"))
        return
    lines = []
    for server in servers:
        transport = f" ({server['transport']})" if server.get("transport") else ""
        lines.append(f"{server.get('name', '?')}{transport}: {server.get('status', '?')}")
        if server.get("error"):
            lines.append(f"  error: {server['error']}")
        tools = server.get("tools") or []
        if tools:
            lines.append(f"  {len(tools)} tools: {', '.join(tools)}")
        if server.get("log") and server.get("status") in ("failed", "crashed"):
            lines.append(f"  log: {server['log']}")
    repl.show(Listing("MCP servers ([mcp.servers.NAME] in config.toml)", tuple(lines)))


RULE_SOURCES: dict[p.RuleSource, str] = {
    "always": 'kept with "allow always" (/rules remove ID)',
    "project": "project config (.kfd/config.toml)",
    "user": "your config ([permissions] in config.toml)",
    "built-in": "built-in defaults",
}


async def _rules(repl: Repl, argument: str) -> None:
    action, _, target = argument.partition(" ")
    if action == "remove":
        await _remove_rule(repl, target.strip())
        return
    if argument:
        repl.show(Note("usage: /rules, or /rules remove ID|RULE", "warn"))
        return
    listed = await repl.client.rules(cwd=repl.view.info.cwd)
    lines = [f"problem: {problem}" for problem in listed.problems]
    lines += [f"ignored (/trust): {line}" for line in getattr(listed, "ignored", ())]
    for source, label in RULE_SOURCES.items():
        rules = [rule for rule in listed.rules if rule.source == source]
        if not rules:
            continue
        lines.append(f"{label}:")
        if source == "always":
            lines.extend(f"  [{rule.id}] {rule.decision:<5} {rule.rule}" for rule in rules)
            continue
        # Config rules are many and short: one line per decision.
        for decision in ("deny", "ask", "allow"):
            texts = [rule.rule for rule in rules if rule.decision == decision]
            if texts:
                lines.append(f"  {decision:<5} {', '.join(texts)}")
    if not any(rule.source == "always" for rule in listed.rules):
        lines.append('none kept with "allow always" yet (A on an approval keeps one)')
    where = listed.project or repl.view.info.cwd
    repl.show(Listing(f"permission rules in {where}", tuple(lines)))


async def _remove_rule(repl: Repl, target: str) -> None:
    if not target:
        repl.show(Note("/rules remove needs a kept rule's id or its exact text (see /rules)"))
        return
    if target.isdigit():
        removed = await repl.client.remove_rule(int(target))
    else:
        removed = await repl.client.remove_rule(rule=target, cwd=repl.view.info.cwd)
    repl.show(Note(f"removed [{removed.id}] {removed.rule}"))


async def _trust(repl: Repl, argument: str) -> None:
    cwd = repl.view.info.cwd
    if argument == "revoke":
        info = await repl.client.set_trust(cwd, trusted=False)
        repl.show(Note(f"{info.path} is no longer trusted: its allow rules do not apply"))
        return
    if argument == "yes" and repl.view.trust_shown:
        try:
            info = await repl.client.set_trust(cwd, repl.view.trust_shown)
        except RequestFailed as exc:
            repl.view.trust_shown = ""
            repl.show(Note(f"not trusted: {exc.message} (/trust shows it again)", "warn"))
            return
        repl.show(Note(f"trusted {info.path} as shown; a change to it asks again"))
        return
    if argument not in ("", "yes"):
        repl.show(Note("usage: /trust, /trust yes, or /trust revoke", "warn"))
        return
    # Only what is listed here can be trusted: every grant, each character as itself
    # (a repository wrote them), and /trust yes then trusts exactly this content.
    info = await repl.client.trust(cwd)
    repl.view.trust_shown = info.sha256 if info.grants and not info.problem else ""
    lines = [f"sha256 {info.sha256}" if info.exists else "there is no such file"]
    if argument == "yes" and repl.view.trust_shown and not info.trusted:
        lines.append("nothing trusted yet: read what it grants first")
    if info.problem:
        lines.append(f"does not load: {visible(info.problem)}")
    state = "trusted" if info.trusted else "changed since trusted" if info.pinned else "not trusted"
    if info.exists and not info.problem:
        lines.append(state)
    if info.grants:
        lines.append("it grants:" if info.trusted else "trusting it applies:")
        lines.extend(f"  {visible(grant)}" for grant in info.grants)
    lines.extend(f"ignored: {visible(line)}" for line in info.ignored)
    if repl.view.trust_shown and not info.trusted:
        lines.append("/trust yes trusts exactly this content")
    repl.show(Listing(f"project config {visible(info.path)}", tuple(lines)))


async def _clear(repl: Repl, argument: str) -> None:
    repl.clear_screen()


async def _quit(repl: Repl, argument: str) -> None:
    repl.exit()


_HANDLERS: dict[str, Callable[[Repl, str], Awaitable[None]]] = {
    "/help": _help,
    "/sessions": _sessions,
    "/attach": _attach,
    "/resume": _resume,
    "/new": _new,
    "/fork": _fork,
    "/undo": rewind.undo,
    "/rewind": rewind.rewind,
    "/mode": _mode,
    "/model": _model,
    "/cost": _cost,
    "/tasks": _tasks,
    "/compact": _compact,
    "/memory": _memory,
    "/context": _context,
    "/expand": _expand,
    "/mcp": _mcp,
    "/rules": _rules,
    "/trust": _trust,
    "/clear": _clear,
    "/quit": _quit,
}


def _ago(ts: float) -> str:
    seconds = max(0.0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"
