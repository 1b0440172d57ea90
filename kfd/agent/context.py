"""What the model sees: the system prompt and the transcript, as one request.

The system prompt starts with a byte-stable prefix (fixed rules), so the
providers' prefix caches hit across turns and sessions; facts that change
(date, workspace) come after it.
"""

from __future__ import annotations

import platform
import time
from typing import TYPE_CHECKING

from kfd.gateway.types import ModelRequest

if TYPE_CHECKING:
    from kfd.agent.session import Session

STABLE_PREFIX = """\
You are kfd, a coding agent working in the user's repository through tools.

- Read before you change: look at the files you will edit; keep edits small and exact.
- Prefer the dedicated tools (read, edit, write, glob, grep) over shell commands for files.
- Run commands with bash from the workspace; say what a command is for when it is not obvious.
- A denied tool call is the user's decision: do not retry it another way; ask or adapt.
- When the task is done, answer briefly: what changed, what you checked, what is left.
"""


def system_prompt(session: Session) -> str:
    facts = (
        f"Workspace: {session.info.cwd}\n"
        f"Platform: {platform.system()} {platform.release()}\n"
        f"Date: {time.strftime('%Y-%m-%d')}\n"
    )
    return f"{STABLE_PREFIX}\n{facts}"


async def prepare_request(session: Session, turn: int) -> ModelRequest:
    """The request for the next model call of ``turn``."""
    config = session.runtime.config.model
    return ModelRequest(
        model=session.info.model or config.model,
        system=system_prompt(session),
        messages=list(session.messages),
        tools=session.runtime.tools.specs,
        max_output_tokens=config.max_output_tokens,
        metadata={"session": session.id, "turn": str(turn)},
    )
