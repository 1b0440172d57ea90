"""The permission gate: gather the facts of a tool call and decide it.

Facts that need I/O (where paths really point) are gathered here; the
decision itself is the pure `kfd.policy.engine.decide`, then every plugin
policy votes and `engine.combine` keeps the strictest verdict.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfd.api import PolicyRequest, Tool, Verdict
from kfd.policy import engine
from kfd.policy.paths import resolve

if TYPE_CHECKING:
    import msgspec

    from kfd.agent.session import Session

log = logging.getLogger(__name__)


async def decide_call(
    session: Session, tool: Tool[Any], args: msgspec.Struct, raw: dict[str, Any]
) -> Verdict:
    """Allow, ask or deny one tool call, with the reason."""
    workspace = Path(session.info.cwd)
    paths = await asyncio.to_thread(resolve, workspace, tool.paths(args))
    request = PolicyRequest(
        session_id=session.id,
        tool=tool.name,
        arguments=raw,
        read_only=tool.read_only,
        edits_files=tool.edits_files,
        workspace=str(workspace),
        mode=session.info.mode,
        paths=paths,
        session_rule=tool.session_rule(args),
        session_rules=list(session.session_rules),
    )
    verdicts: list[Verdict | None] = [engine.decide(request)]
    for policy in session.runtime.policies:
        name = getattr(policy, "name", type(policy).__name__)
        try:
            verdicts.append(await policy.check(request))
        except Exception as exc:
            log.exception("policy %s failed", name)
            verdicts.append(Verdict("ask", f"policy {name} failed: {exc!r}"))
    return engine.combine(verdicts)
