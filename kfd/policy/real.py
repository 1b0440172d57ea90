"""Where a path really is, as the kernel resolves it, at a bounded cost.

`os.path.realpath` looks at one component at a time in Python and follows any
number of links: a repository of 1,024 links each pointing through 800
components made one path cost 3.3 s (round 24), for a word of a command line or
a project's rule alike. Here the kernel does the walk: one ``O_PATH`` open of
the path (it reads nothing and never blocks on a FIFO or a device; the kernel
follows at most 40 links and refuses longer paths) and the name of what it
opened (``/proc/self/fd``). Only what the kernel cannot open is looked at here:
the deepest part that opens is found by halving (a dozen opens for the longest
path), and a link standing where the rest begins, dangling or leading somewhere
not yet made, is followed by hand, as a write through it would go (``> out``
with ``out`` a link to ``/etc/cron.d/x`` creates that file), at most 40 times
as the kernel would; past a name that does not exist, the walk goes on as
`os.path.realpath`'s does. Every look counts against a budget. Our own code
where `os.path.realpath` exists: for a cost the repository cannot choose.
"""

from __future__ import annotations

import os

__all__ = ["where"]

_MAX_LINKS = 40
"""Links the kernel follows in one walk before it gives up (``ELOOP``)."""
_FD = "/proc/self/fd/"


def where(path: str) -> str | None:
    """The real, normalised place of the absolute ``path``: its links followed as the
    kernel follows them, and past a name that does not exist yet as `os.path.realpath`
    goes (a later command may make it: ``mkdir d; cat d/../link``); None when that
    costs more than `_BUDGET` looks (only a tree made to cost that does), or a link
    more than the kernel's 40 (nothing can reach past it). A part that cannot be
    looked at (no permission) is taken as a name that does not exist; a NUL byte
    leaves the path as spelled (no file has one)."""
    if "\0" in path or not path.startswith("/"):
        return os.path.normpath(path)
    budget = _Budget()
    follows = 0
    while True:
        opened = budget.opened(path)
        if opened is not None:
            return opened
        parts = path.split("/")
        count = _deepest(parts, budget)  # parts[:count] opens; parts[:count + 1] does not
        if count is None:
            return None
        head = budget.opened("/".join(parts[:count]) or "/")
        if head is None:
            return None  # it opened a moment ago: changed meanwhile
        # By hand from there: names that do not exist, `..` back out of them, and a
        # link where the kernel stopped (dangling, or leading somewhere not made yet).
        missing = 0  # how many of head's last names do not exist
        rest = parts[count:]
        for index, part in enumerate(rest):
            if part in ("", "."):
                continue
            if part == "..":
                head = os.path.dirname(head)
                if missing:
                    missing -= 1
                    if not missing:  # back where names exist: the kernel walks on
                        path = "/".join([head, *rest[index + 1 :]])
                        break
                continue
            if missing:
                head, missing = os.path.join(head, part), missing + 1
                continue
            if not budget.spend():
                return None
            try:
                target = os.readlink(os.path.join(head, part))
            except OSError:
                head, missing = os.path.join(head, part), 1
                continue
            follows += 1
            if follows > _MAX_LINKS:
                return None
            path = os.path.join(head, target, *rest[index + 1 :])  # absolute: from `/`
            break
        else:
            return os.path.normpath(head)
        if not path.startswith("/"):
            path = "/" + path


_BUDGET = 512
"""Looks (opens, reads of a link) one path may cost: a few for most, a dozen for a
long one that does not exist, a few hundred for a chain of links the kernel would
follow to its limit."""


class _Budget:
    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = _BUDGET

    def spend(self) -> bool:
        self.left -= 1
        return self.left >= 0

    def opened(self, path: str) -> str | None:
        return _opened(path) if self.spend() else None


def _opened(path: str) -> str | None:
    """What the kernel opens at ``path`` (following links), by the name it gives it;
    None if it cannot."""
    try:
        descriptor = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except (OSError, ValueError):
        return None
    try:
        name = os.readlink(f"{_FD}{descriptor}")
    except OSError:
        return None
    finally:
        os.close(descriptor)
    if not name.startswith("/") or name.endswith(" (deleted)"):
        return None  # not a name in this process's tree
    return name


def _deepest(parts: list[str], budget: _Budget) -> int | None:
    """How many of ``parts`` (an absolute path split at ``/``) open together: the
    kernel opens a path's parts in order, so the prefixes that open are the shortest
    ones, and halving finds the longest (None: over budget)."""
    low, high = 1, len(parts) - 1  # `/` opens; all of them did not
    while low < high:
        middle = (low + high + 1) // 2
        if budget.left <= 0:
            return None
        if budget.opened("/".join(parts[:middle]) or "/") is not None:
            low = middle
        else:
            high = middle - 1
    return low
