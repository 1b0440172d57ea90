"""Custom command files: Markdown with YAML front matter, found in a directory.

A command is ``<dir>/<name>.md`` (``<dir>/sub/<name>.md`` is ``sub:name``)::

    ---
    description: Review the staged change
    argument-hint: "[focus]"
    allowed-tools: Bash(git diff:*), read
    mode: plan
    model: workers-ai/@cf/moonshotai/kimi-k2.6
    ---
    Review this change, paying attention to $ARGUMENTS:
    !`git diff --cached`

The front matter is optional; every key is. ``allowed-tools`` takes kfd
rules (``bash(git diff *)``) or Claude Code's spelling (``Bash(git diff:*)``),
as a list or comma-separated. Reading is blocking: call it from a thread.
Symbolic links are not followed (a link in a repository could otherwise
bring any file of the machine into a prompt), and sizes are bounded.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, NamedTuple

from kfd.beneath import NotBeneath
from kfd.commands.template import shell_commands
from kfd.config import digest
from kfd.protocol import MODES, CommandInfo
from kfd.regular import open_regular

MAX_COMMAND_BYTES = 256 * 1024
MAX_COMMANDS = 500
"""Command files read from one directory at most."""

NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}(:[a-z0-9][a-z0-9_.-]{0,63})?")
KEYS = frozenset({"description", "argument-hint", "allowed-tools", "mode", "model"})


class CommandFile(NamedTuple):
    """One command file, read once: what is hashed is what is parsed."""

    info: CommandInfo
    body: str
    """The prompt template (after the front matter)."""
    sha256: str


def command_name(relative: str) -> str | None:
    """``review.md`` -> ``review``, ``git/commit.md`` -> ``git:commit``; None if not a name."""
    if not relative.endswith(".md"):
        return None
    name = relative[:-3].replace(os.sep, ":").lower()
    return name if NAME.fullmatch(name) else None


def read_directory(directory: Path, source: str) -> list[CommandFile]:
    """Every command file of ``directory`` (absent: none), by name."""
    found: list[CommandFile] = []
    if not directory.is_dir() or directory.is_symlink():
        return found
    for current, subdirs, files in os.walk(directory, followlinks=False):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for file in sorted(files):
            path = Path(current) / file
            name = command_name(str(path.relative_to(directory)))
            if name is None:
                continue
            found.append(read_command(path, name, source))
            if len(found) >= MAX_COMMANDS:
                return found
    return found


def read_command(path: Path, name: str, source: str) -> CommandFile:
    """Read and parse one command file; a problem is kept in `CommandInfo.problem`."""
    base = CommandInfo(name=name, source=source, path=str(path))  # type: ignore[arg-type]
    try:
        fd, _ = open_regular(path, path.parent)
    except NotBeneath:
        return CommandFile(_with(base, problem=f"{path}: a symbolic link (not followed)"), "", "")
    except OSError as exc:  # NotRegular says what it is (a FIFO never waited on)
        return CommandFile(_with(base, problem=f"{path}: {exc.strerror}"), "", "")
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read(MAX_COMMAND_BYTES + 1)  # past the limit: a problem, with its hash
    sha256 = digest(raw)
    if len(raw) > MAX_COMMAND_BYTES:
        problem = f"{path} is larger than {MAX_COMMAND_BYTES // 1024} KB"
        return CommandFile(_with(base, problem=problem), "", sha256)
    info, body = parse(raw.decode("utf-8", "replace"), base)
    return CommandFile(info, body, sha256)


def parse(text: str, base: CommandInfo) -> tuple[CommandInfo, str]:
    """The command's settings (front matter) and its template (pure)."""
    front, body = split_front_matter(text)
    if front is None:
        return base, body
    import yaml  # the YAML parser only when a command has front matter

    try:
        data = yaml.safe_load(front) if front.strip() else {}
    except yaml.YAMLError as exc:
        return _with(base, problem=f"{base.path}: the front matter is not YAML: {exc}"), body
    if not isinstance(data, dict):
        return _with(base, problem=f"{base.path}: the front matter must be key: value lines"), body
    problems = [f"unknown key {key!r}" for key in data if key not in KEYS]
    mode = data.get("mode")
    if mode is not None and mode not in MODES:
        problems.append(f"mode {mode!r} is not one of {', '.join(MODES)}")
        mode = None
    tools, bad = allowed_tools(data.get("allowed-tools"))
    problems += bad
    info = _with(
        base,
        description=_text(data.get("description")),
        argument_hint=_hint(data.get("argument-hint")),
        mode=mode,
        model=_text(data.get("model")),
        allowed_tools=tools,
        problem=f"{base.path}: {'; '.join(problems)}" if problems else "",
    )
    return info, body


def split_front_matter(text: str) -> tuple[str | None, str]:
    """(front matter, body): the front matter is between a first line ``---`` and the
    next ``---`` line; None without one."""
    text = text.removeprefix("\ufeff")
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return None, text
    for index in range(1, len(lines)):
        if lines[index].strip() == "---":
            return "".join(lines[1:index]), "".join(lines[index + 1 :])
    return None, text


_CLAUDE_RULE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\((.*)\))?$", re.S)


def allowed_tools(value: Any) -> tuple[list[str], list[str]]:
    """kfd rules from ``allowed-tools`` (a list, or comma-separated), and problems.

    ``Bash(git add:*)`` becomes ``bash(git add *)``; every rule must parse.
    """
    from kfd.policy.rules import RuleError, parse_rule  # pure and small

    if value is None:
        return [], []
    items = value if isinstance(value, list) else _split_rules(str(value))
    rules, problems = [], []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        match = _CLAUDE_RULE.match(text)
        if match is not None:
            tool, spec = match.group(1).lower(), match.group(2)
            if spec is not None and spec.endswith(":*"):
                spec = spec[:-2] + " *"
            text = tool if spec is None else f"{tool}({spec})"
        try:
            parse_rule(text)
        except RuleError as exc:
            problems.append(f"allowed-tools: {exc}")
            continue
        rules.append(text)
    return rules, problems


def _split_rules(text: str) -> list[str]:
    """Split on commas outside parentheses (``Bash(a, b), read``)."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value).strip()[:500]


def _hint(value: Any) -> str:
    # "argument-hint: [message]" is a YAML list: show it as written.
    if isinstance(value, list):
        return " ".join(f"[{v}]" for v in value)
    return _text(value)


def _with(info: CommandInfo, **changes: Any) -> CommandInfo:
    import msgspec

    return msgspec.structs.replace(info, **changes)


def command_grants(command: CommandFile) -> str:
    """What running ``command`` does beyond sending its prompt, for ``kfd trust``:
    its mode, allowed tools and model for the turn, and each ``!`cmd``` it runs."""
    info = command.info
    parts = []
    if info.mode:
        parts.append(f"mode {info.mode}")
    if info.allowed_tools:
        parts.append(f"allows {', '.join(info.allowed_tools)}")
    if info.model:
        parts.append(f"model {info.model}")
    parts += [f"runs !`{cmd}`" for cmd in shell_commands(command.body)]
    return "; ".join(parts)
