"""Does this process see the provider environment the daemon started with?

The daemon keeps the environment it started with (an exported key changes
nothing until it restarts). Its `daemon.hello` reply lists the variables that
choose and reach the model provider (``KFD_*`` overrides, API keys), each as
an `kfd.protocol.EnvFact`: set or not, the value for those that are not
secret, a salted digest for all. `environment_drift` compares them with this
process's environment and says exactly what differs, never a secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from kfd import protocol as p

APPLY_HINT = "the daemon keeps the environment it started with: run `kfd restart` to apply this one"


def environment_drift(hello: p.HelloResult, environ: Mapping[str, str] | None = None) -> list[str]:
    """What differs between ``environ`` (this process's) and the daemon's, one line each."""
    environ = os.environ if environ is None else environ
    found: list[str] = []
    for name, theirs in sorted(hello.environment.items()):
        mine = environ.get(name) or None
        if mine is None and not theirs.set:
            continue
        if mine is None:
            found.append(f"{name} is set in the daemon but not here")
        elif not theirs.set:
            found.append(f"{name} is set here but not in the daemon")
        elif p.env_digest(hello.env_salt, mine) != theirs.digest:
            if theirs.value:
                found.append(f"{name} is {mine!r} here but {theirs.value!r} in the daemon")
            else:
                found.append(f"{name} has another value here than in the daemon")
    return found


def drift_message(lines: list[str]) -> str:
    """One paragraph for the user: what differs, and how to apply it."""
    return (
        "this shell's provider environment differs from the daemon's: "
        + "; ".join(lines)
        + (f"; {APPLY_HINT}")
    )
