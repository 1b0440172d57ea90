"""How the daemon starts hooks: confined like ``bash``, or, where the user's own
config says so, outside the sandbox with an environment free of secrets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from kfd.api import looks_secret
from kfd.hooks.run import Launch

NO_SANDBOX = (
    "this kfd cannot confine hooks yet (the sandbox moves into kfd itself); set "
    "sandbox = false on a hook of your own config to run it unconfined"
)


def environment(environ: Mapping[str, str], allowed: tuple[str, ...] = ()) -> dict[str, str]:
    """The daemon's environment without the variables that look secret (unless allowed)."""
    import fnmatch

    return {
        name: value
        for name, value in environ.items()
        if not looks_secret(name) or any(fnmatch.fnmatchcase(name, a) for a in allowed)
    }


async def confine(workspace: Path, sandboxed: bool) -> Launch | str:
    """How to start a hook in ``workspace``; why not, when it must be confined and cannot."""
    if sandboxed:
        return NO_SANDBOX
    return Launch((), environment(os.environ))
