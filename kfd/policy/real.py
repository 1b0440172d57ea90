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

import errno
import os

__all__ = ["where"]

_MAX_LINKS = 40
"""Links the kernel follows in one walk before it gives up (``ELOOP``)."""
_FD = "/proc/self/fd/"


def where(path: str) -> str | None:
    """The real, normalised place of the absolute ``path``: its links followed as the
    kernel follows them, and past a name that does not exist yet as `os.path.realpath`
    goes (a later command may make it: ``mkdir d; cat d/../link``). None, unknown, when
    a part cannot be looked at (no permission, a path longer than the kernel takes:
    round 25 hid links past 4,096 bytes that way), a link more than the kernel's 40
    (nothing reaches past it), or when it costs more than `_BUDGET` looks (only a
    tree made to cost that does). A NUL byte leaves the path as
    spelled (no file has one)."""
    if "\0" in path or not path.startswith("/"):
        return os.path.normpath(path)
    try:
        return _where(path, _Budget())
    except _Unknown:
        return None


def _where(path: str, budget: _Budget) -> str:
    follows = 0
    while True:
        opened = budget.opened(path)
        if opened is not None:
            return opened
        parts = path.split("/")
        count = _deepest(parts, budget)  # parts[:count] opens; parts[:count + 1] does not
        head = budget.opened("/".join(parts[:count]) or "/")
        if head is None:
            raise _Unknown  # it opened a moment ago: changed meanwhile
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
            target = budget.link(os.path.join(head, part))
            if target is None:
                head, missing = os.path.join(head, part), 1
                continue
            follows += 1
            if follows > _MAX_LINKS:
                raise _Unknown
            path = os.path.join(head, target, *rest[index + 1 :])  # absolute: from `/`
            break
        else:
            return os.path.normpath(head)
        if not path.startswith("/"):
            path = "/" + path


_BUDGET = 96
"""Looks (opens, reads of a link) one path may cost: one for most, a dozen for a long
one that does not exist, a few more for each dangling link followed by hand. A look
can be a kernel walk of 40 links of 4 KB each (round 25: ~0.5 ms), so the budget
bounds the time too (~50 ms at worst), the same on a loaded machine as on a quiet
one (a deadline in time made answers depend on the load)."""
_ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR})
"""What a look may fail with for a name that is not there (yet): anything else is
a part kfd cannot look at, where the command may see something."""


class _Unknown(Exception):
    """A part of the path kfd cannot look at, or the budget spent."""


class _Budget:
    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = _BUDGET

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise _Unknown

    def opened(self, path: str) -> str | None:
        """What the kernel opens at ``path`` (following links), by its name; None if
        nothing is there."""
        self.spend()
        try:
            descriptor = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError as error:
            if error.errno in _ABSENT:
                return None
            raise _Unknown from None
        try:
            name = os.readlink(f"{_FD}{descriptor}")
            # A name the kernel ends with " (deleted)" is one only if the file is gone
            # (round 25: a directory named `x (deleted)` was taken as missing).
            if not name.startswith("/") or (
                name.endswith(" (deleted)") and os.fstat(descriptor).st_nlink == 0
            ):
                raise _Unknown
            return name
        except OSError:
            raise _Unknown from None
        finally:
            os.close(descriptor)

    def link(self, path: str) -> str | None:
        """The target of the link at ``path``; None if nothing is there."""
        self.spend()
        try:
            return os.readlink(path)
        except OSError as error:
            if error.errno in _ABSENT:
                return None
            raise _Unknown from None  # there, but not a link the kernel stopped at


def _deepest(parts: list[str], budget: _Budget) -> int:
    """How many of ``parts`` (an absolute path split at ``/``) open together: the
    kernel opens a path's parts in order, so the prefixes that open are the shortest
    ones, and halving finds the longest."""
    low, high = 1, len(parts) - 1  # `/` opens; all of them did not
    while low < high:
        middle = (low + high + 1) // 2
        if budget.opened("/".join(parts[:middle]) or "/") is not None:
            low = middle
        else:
            high = middle - 1
    return low
