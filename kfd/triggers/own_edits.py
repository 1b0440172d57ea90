"""Which file changes kfd made itself, so they never fire a trigger.

Attributed by path and content, not by a time window over the workspace:

- every tool call that may change files *claims* paths when it is requested:
  the files it declares it writes (`kfd.api.Tool.paths`: ``edit``,
  ``write``, ...), or, for a tool that does not say (``bash``, MCP tools),
  the paths its arguments name (a directory claims everything under it; a
  git command that rewrites the work tree claims all of it);
- a changed file is kfd's when a call claimed its path and the change
  happened while that call ran (the file's mtime falls inside the call; a
  deleted file: seen while the call ran, or just after). kfd's version of
  the file (its content digest) is remembered, so a late report of the same
  content is kfd's too, and any other content is someone else's.

So a user's save of a path no running call claimed fires, whatever kfd runs
meanwhile in that workspace, from whichever session. What kfd cannot see is
a command writing a path it does not name (``python gen.py`` writing
``out.py``): that change is taken for the user's, and fires.
"""

from __future__ import annotations

import fnmatch
import os
import shlex
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kfd.protocol import Event, ToolCompleted, ToolRequested, ToolStarted

CLOCK_MARGIN_S = 0.02
"""File mtimes come from the kernel's coarse clock, up to a tick (1-10 ms)
behind time.time(): a write just after a tool started may look earlier. No
margin is needed after the end, as a coarse mtime is never ahead."""

DELETION_SETTLE_S = 3.0
"""How long after a call ends a deletion it made may still be reported."""

KEPT_CALLS = 1000
KEPT_VERSIONS = 50_000

MAX_WORDS = 2000
MAX_CHARS = 16 * 1024
"""Words, and characters of each argument, looked at for paths (a huge
heredoc names little, and the daemon's loop must not spend long on it)."""

GIT_TREE_COMMANDS = frozenset(
    {
        "am",
        "apply",
        "checkout",
        "cherry-pick",
        "clean",
        "merge",
        "mv",
        "pull",
        "rebase",
        "reset",
        "restore",
        "revert",
        "rm",
        "stash",
        "switch",
    }
)
"""git subcommands that rewrite work-tree files they need not name."""

_OPERATORS = frozenset(";|&<>()")
_GLOB = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class Claim:
    """What a call may write: ``paths`` (absolute; a directory covers what is
    under it) and ``globs`` (absolute; a name pattern in one directory)."""

    paths: frozenset[str]
    globs: frozenset[str] = frozenset()

    def covers(self, path: str) -> bool:
        """Whether a change to ``path`` (absolute) may be this call's."""
        if any(path == claimed or _inside(path, claimed) for claimed in self.paths):
            return True
        folder, name = os.path.split(path)
        return any(
            folder == os.path.dirname(glob) and fnmatch.fnmatchcase(name, os.path.basename(glob))
            for glob in self.globs
        )


@dataclass(slots=True)
class _Call:
    claim: Claim
    start: float
    end: float | None = None


class OwnEdits:
    """Feed it every event (`observe`); ask it about a changed file (`made_by_kfd`).

    ``claim_of`` tells what a requested tool call may write (None: nothing).
    """

    def __init__(self, claim_of: Callable[[ToolRequested], Claim | None]) -> None:
        self._claim_of = claim_of
        self._requested: dict[str, Claim] = {}
        self._open: dict[str, _Call] = {}
        self._closed: deque[_Call] = deque(maxlen=KEPT_CALLS)
        self._versions: OrderedDict[str, str | None] = OrderedDict()
        """Absolute path -> digest of the content kfd left there (None: deleted it)."""

    def observe(self, event: Event) -> None:
        """Follow tool calls: what each claims when requested, and when it runs."""
        if isinstance(event, ToolRequested):
            claim = None if event.read_only else self._claim_of(event)
            if claim is not None and (claim.paths or claim.globs):
                self._requested[event.call_id] = claim
        elif isinstance(event, ToolStarted):
            claim = self._requested.pop(event.call_id, None)
            if claim is not None:
                self._open[event.call_id] = _Call(claim, event.ts or time.time())
        elif isinstance(event, ToolCompleted):
            self._requested.pop(event.call_id, None)
            call = self._open.pop(event.call_id, None)
            if call is not None:
                call.end = event.ts or time.time()
                self._closed.append(call)

    def made_by_kfd(
        self, path: str, mtime: float | None, digest: str | None, now: float | None = None
    ) -> bool:
        """True if ``path`` now holds what kfd's own tools left there.

        ``mtime`` and ``digest`` describe the file now (both None: deleted).
        """
        if path in self._versions:
            if self._versions[path] == digest:
                return True
            del self._versions[path]  # changed since kfd wrote it: someone else's now
        now = time.time() if now is None else now
        for call in [*self._open.values(), *self._closed]:
            if not call.claim.covers(path):
                continue
            end = call.end
            if mtime is None:
                during = end is None or now - end <= DELETION_SETTLE_S
            else:
                during = call.start - CLOCK_MARGIN_S <= mtime and (end is None or mtime <= end)
            if during:
                self._remember(path, digest)
                return True
        return False

    def _remember(self, path: str, digest: str | None) -> None:
        self._versions[path] = digest
        self._versions.move_to_end(path)
        while len(self._versions) > KEPT_VERSIONS:
            self._versions.popitem(last=False)


def claim_of_paths(declared: list[str], arguments: dict[str, Any], workspace: str) -> Claim:
    """What a call may write: the paths it ``declared`` it writes, else those its
    ``arguments`` name (resolved against ``workspace``, kept only inside it)."""
    if declared:
        return Claim(frozenset(p for p in (_resolve(d, workspace) for d in declared) if p))
    return named_paths(arguments, workspace)


def named_paths(arguments: dict[str, Any], workspace: str) -> Claim:
    """The workspace paths the words of ``arguments``' strings name.

    Every word counts (``echo x > out.txt`` names ``echo``, ``x`` and
    ``out.txt``): claiming a name nothing writes costs nothing. Options are
    skipped but their ``=value``; a glob names what it matches in its
    directory (a glob in a directory name: all of the directory before it);
    a git command that rewrites the work tree names the whole workspace.
    """
    paths: set[str] = set()
    globs: set[str] = set()
    in_git = False
    for word in _words(arguments)[:MAX_WORDS]:
        if set(word) <= _OPERATORS:
            in_git = False  # the next command of the line
            continue
        if os.path.basename(word) == "git":
            in_git = True
        elif in_git and word in GIT_TREE_COMMANDS:
            paths.add(workspace)
        if word.startswith("-"):
            word = word.partition("=")[2]
        folder, name = os.path.split(word)
        if any(char in _GLOB for char in folder):
            word = folder[: min(folder.index(c) for c in _GLOB if c in folder)]
            path = _resolve(os.path.dirname(word) or ".", workspace)
        elif any(char in _GLOB for char in name):
            path = _resolve(word, workspace)
            if path:
                globs.add(path)
            continue
        else:
            path = _resolve(word, workspace)
        if path:
            paths.add(path)
    return Claim(frozenset(paths), frozenset(globs))


def _words(value: Any) -> list[str]:
    words: list[str] = []
    for whole in _strings(value):
        text = whole[:MAX_CHARS]
        try:
            lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            words.extend(lexer)
        except ValueError:  # unbalanced quotes: the plain words still name paths
            words.extend(text.split())
        if len(words) >= MAX_WORDS:
            break
    return words


def _strings(value: Any, depth: int = 0) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif depth < 8 and isinstance(value, dict):
        for item in value.values():
            yield from _strings(item, depth + 1)
    elif depth < 8 and isinstance(value, list):
        for item in value:
            yield from _strings(item, depth + 1)


def _resolve(word: str, workspace: str) -> str:
    """``word`` as an absolute path inside ``workspace``, or ''."""
    if not word or "\0" in word or set(word) <= _OPERATORS:
        return ""
    path = os.path.normpath(os.path.join(workspace, os.path.expanduser(word)))
    return path if path == workspace or _inside(path, workspace) else ""


def _inside(path: str, directory: str) -> bool:
    return path.startswith(directory.rstrip(os.sep) + os.sep)
