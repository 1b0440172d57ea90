"""A custom command's turn: its prompt made from its template, with files and outputs.

A message that runs a command (``commands.run``) is queued like any message
and runs in a turn of its own (`take_batch`). When that turn starts, the
template is made into the prompt (`make_prompt`): arguments substituted,
``@file`` references read (inside the workspace, no link followed, read
rules applied) and ``!`command``` spans replaced by their output, each run
as a ``bash`` call of the turn: decided by the permission engine, asked
about when it asks, confined like any other (the caller passes `RunShell`).
The turn runs with the command's ``mode``, ``model`` and ``allowed-tools``
(`kfd.agent.turn`).
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

from kfd.beneath import NotBeneath
from kfd.checkpoints.objects import name_of, open_parent
from kfd.commands import template
from kfd.protocol import QueuedMessage

RunShell = Callable[[str], Awaitable[str]]
"""Run one ``!`command``` as a bash call of the turn; its output (or why not)."""

ReadDenied = Callable[[str], str | None] | None


def take_batch(queue: deque[QueuedMessage]) -> list[QueuedMessage]:
    """The queued messages one turn takes: all of them up to the first command, or
    that command alone (a command's turn has settings of its own)."""
    batch: list[QueuedMessage] = []
    while queue:
        if queue[0].command:
            if not batch:
                batch.append(queue.popleft())
            break
        batch.append(queue.popleft())
    return batch


async def make_prompt(
    body: str,
    arguments: str,
    workspace: Path,
    read_denied: ReadDenied,
    run_shell: RunShell,
) -> str:
    """The prompt a command's template makes (see `kfd.commands.template`)."""
    found = template.pieces(body, arguments)
    # References are read from the template and the arguments only: a command's
    # output (a commit message anyone wrote) never names a file to attach.
    wanted = template.references("".join(p.text for p in found if not p.shell))
    outputs = {}
    for piece in found:
        if piece.shell and piece.text not in outputs:
            outputs[piece.text] = await run_shell(piece.text)
    text = template.with_outputs(found, outputs)
    if not wanted:
        return text
    files, problems = await asyncio.to_thread(_read_files, wanted, workspace, read_denied)
    return template.with_files(text, files, problems)


def _read_files(
    wanted: list[str], workspace: Path, read_denied: ReadDenied
) -> tuple[dict[str, str], dict[str, str]]:
    files: dict[str, str] = {}
    problems: dict[str, str] = {}
    for reference in wanted:
        path = os.path.normpath(os.path.join(workspace, os.path.expanduser(reference)))
        relative = os.path.relpath(path, workspace)
        if relative.startswith(".."):
            problems[reference] = "outside the workspace"
            continue
        rule = read_denied(path) if read_denied is not None else None
        if rule is not None:
            problems[reference] = f"the read rule {rule} applies"
            continue
        found = _read(workspace, relative)
        if isinstance(found, str) and found.startswith("\0"):
            if found != "\0missing":
                problems[reference] = found[1:]
            continue  # "@decorator" and friends: not a file, left as written
        files[reference] = found
    return files, problems


def _read(workspace: Path, relative: str) -> str:
    """The text of a file, or ``"\\0why not"``."""
    try:
        parent = open_parent(workspace, relative)
    except FileNotFoundError:
        return "\0missing"
    except NotBeneath:
        return "\0it is reached through a symbolic link"
    except OSError as exc:  # a name too long, a component that is a file...
        return f"\0{exc.strerror or exc}"
    try:
        fd = os.open(
            name_of(relative),
            os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
            dir_fd=parent,
        )
    except FileNotFoundError:
        return "\0missing"
    except OSError as exc:
        return f"\0{exc.strerror or exc}"
    finally:
        os.close(parent)
    with os.fdopen(fd, "rb") as handle:
        import stat

        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return "\0not a regular file"
        if info.st_nlink > 1:
            # Its other names are unknown: it may be a key outside the workspace too,
            # which the model's own read would ask about (`kfd.policy.judge_paths`).
            return f"\0it has {info.st_nlink} hard links, so it may be another file too"
        data = handle.read(template.MAX_FILE_CHARS + 1)
    if b"\0" in data[:8000]:
        return "\0a binary file"
    if len(data) > template.MAX_FILE_CHARS:
        return f"\0larger than {template.MAX_FILE_CHARS // 1000} KB"
    return data.decode("utf-8", "replace")
