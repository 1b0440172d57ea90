"""Where kfd looks up the programs it runs on the host by name: never where a
sandboxed command could have put one.

A command writes the workspace and its project's cache home, and what it leaves
there outlives it. A directory of ``PATH`` inside one of them (``~/bin`` as the
workspace, a virtual environment's ``bin`` in it) could hold a ``bwrap``, ``git``
or ``gh`` of the command's making, which kfd would then run, unconfined, as the
user. So kfd's own look-ups use `host_path`: ``PATH`` without relative entries
(they resolve against a working directory), without the directories of kfd's
sandbox cache homes, and without every workspace this daemon has let a command
write (`writable`, told by `kfd.sandbox.confine`) or the caller names.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterable, Mapping

from kfd import paths

_writable: set[str] = set()
_lock = threading.Lock()


def writable(*places: str) -> None:
    """Remember ``places`` (real paths) as written by sandboxed commands, for the
    daemon's lifetime: a program left there stays the command's."""
    with _lock:
        _writable.update(p for p in places if p)


def host_path(environ: Mapping[str, str] | None = None, *, also: Iterable[str] = ()) -> list[str]:
    """The entries of ``PATH`` (``environ``'s, else the daemon's) that kfd may take a
    program from: absolute, and neither in a place sandboxed commands write (`writable`,
    kfd's sandbox cache homes) nor in ``also``."""
    environ = os.environ if environ is None else environ
    with _lock:
        places = {*_writable, *(os.path.realpath(p) for p in also)}
    places.add(os.path.realpath(paths.cache_dir() / "sandbox"))
    prefixes = tuple(p.rstrip(os.sep) + os.sep for p in places)
    kept = []
    for entry in environ.get("PATH", os.defpath).split(os.pathsep):
        if not os.path.isabs(entry):
            continue
        real = os.path.realpath(entry)
        if real in places or (real + os.sep).startswith(prefixes):
            continue
        kept.append(entry)
    return kept


def which(
    name: str, environ: Mapping[str, str] | None = None, *, also: Iterable[str] = ()
) -> str | None:
    """`shutil.which` over `host_path`; an absolute or relative path ``name`` is taken
    as it is (the user configured it)."""
    if os.sep in name:
        return shutil.which(name)
    return shutil.which(name, path=os.pathsep.join(host_path(environ, also=also)) or os.defpath)
