"""How the daemon starts hooks: confined like ``bash`` (bubblewrap, `kfd.sandbox`), or,
where the user's own config says ``sandbox = false``, outside it with the same
allow-listed environment ``bash`` gets when the user lets it run unconfined."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kfd.agent.toolcall import sandbox_of
from kfd.api import command_environment, confine, probe_sandbox
from kfd.config import SandboxConfig
from kfd.hooks.run import Confine, Launch


def confiner(settings: Callable[[], SandboxConfig]) -> Confine:
    """Start hooks as ``[sandbox]`` (read per hook, so a config edit applies) says."""

    async def launch(workspace: Path, sandboxed: bool) -> Launch | str:
        sandbox = sandbox_of(settings())
        if not sandboxed or not sandbox.enabled:  # [sandbox] enabled = false: as bash
            return Launch((), command_environment(sandbox))
        problem = await probe_sandbox(network=sandbox.network)
        if problem is not None:
            return f"the sandbox cannot start: {problem}"
        confinement = await confine(workspace, sandbox)
        return Launch(tuple(confinement.prefix), confinement.env, confinement.finish)

    return launch
