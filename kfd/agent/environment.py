"""Environment facts for the system prompt: workspace, platform, date, git state.

Taken once per session (and again after a compaction), not per request: a
system prompt that changed every turn would void the providers' prefix
caches for the whole transcript behind it. The facts say they are a
snapshot, so the model checks (``git status``) before relying on them.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import time
from pathlib import Path

from kfd import git

log = logging.getLogger(__name__)

GIT_TIMEOUT_S = 5.0


async def facts(workspace: Path) -> str:
    """The environment section of the system prompt."""
    lines = [
        "# Environment (as of the session start)",
        f"Workspace: {workspace}",
        f"Platform: {platform.system()} {platform.release()}",
        f"Date: {time.strftime('%Y-%m-%d')}",
    ]
    git = await git_summary(workspace)
    if git:
        lines.append(f"Git: {git}")
    return "\n".join(lines) + "\n"


_SUMMARIES: dict[Path, asyncio.Task[str]] = {}
"""The git summary being taken of each workspace right now."""


async def git_summary(workspace: Path) -> str:
    """``branch main (ahead 1); 2 modified, 1 untracked``, or '' outside a repository.

    Git runs as `kfd.git.run_git` runs it: on a validated repository, without
    its configuration, so nothing a command planted in ``.git`` runs here.
    Sessions that start together in one workspace share one ``git status``
    (twenty turns starting at once started forty git processes from the
    daemon's event loop); a session that starts later takes its own.
    """
    running = _SUMMARIES.get(workspace)
    if running is None:
        running = _SUMMARIES[workspace] = asyncio.create_task(_git_summary(workspace))
        running.add_done_callback(lambda _: _SUMMARIES.pop(workspace, None))
    # Shielded: one waiter cancelled (its turn stopped) leaves the others theirs.
    return await asyncio.shield(running)


async def _git_summary(workspace: Path) -> str:
    found = await asyncio.to_thread(git.find, workspace)
    if isinstance(found, git.Refused):
        log.warning(
            "no git facts for %s: %s is refused (%s)", workspace, found.marker, found.reason
        )
        return ""
    if found is None:
        return ""
    try:
        output = await git.run_git(
            found,
            workspace,
            "status",
            "--porcelain=v1",
            "--branch",
            "--untracked-files=normal",
            timeout=GIT_TIMEOUT_S,
        )
    except git.GitUnavailable as exc:
        # No git, or a huge or hung repository: the facts are a nicety, never
        # a reason to fail or stall a turn.
        log.info("no git facts for %s: %s", workspace, exc)
        return ""
    if output.returncode != 0:
        return ""
    return summarize_status(output.stdout.decode("utf-8", "replace"))


def summarize_status(porcelain: str) -> str:
    """A one-line summary of ``git status --porcelain=v1 --branch`` output."""
    lines = porcelain.splitlines()
    if not lines or not lines[0].startswith("## "):
        return ""
    branch_line = lines[0][3:]
    branch, _, tracking = branch_line.partition("...")
    branch = branch.removeprefix("No commits yet on ")
    summary = f"branch {branch}"
    if "[" in tracking:
        summary += " (" + tracking[tracking.index("[") + 1 :].rstrip("]") + ")"
    counts = {"staged": 0, "modified": 0, "untracked": 0, "conflicted": 0}
    for line in lines[1:]:
        code = line[:2]
        if code == "??":
            counts["untracked"] += 1
        elif "U" in code or code in ("AA", "DD"):
            counts["conflicted"] += 1
        else:
            if code[0] not in " ?":
                counts["staged"] += 1
            if code[1] not in " ?":
                counts["modified"] += 1
    changes = [f"{count} {name}" for name, count in counts.items() if count]
    return f"{summary}; {', '.join(changes) if changes else 'clean'}"
