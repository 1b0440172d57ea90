"""One bash line decided as the gate decides it, without a daemon: for tests.

The line is analyzed and its words resolved in a real workspace
(`kfd.policy.line_facts`), then the pure engine decides with ``rules``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kfd.api import PolicyRequest
from kfd.policy.engine import decide_facts
from kfd.policy.facts import CallFacts
from kfd.policy.gate import restricted_matcher
from kfd.policy.line_facts import line_facts
from kfd.policy.rules import SourcedRule
from kfd.protocol import Mode

__all__ = ["decide_line"]


def decide_line(
    workspace: Path,
    line: str,
    mode: Mode,
    rules: Sequence[SourcedRule],
    *,
    home: str = "/nonexistent-home",
    session_rule: str = "",
) -> str:
    """The decision (``allow``, ``ask``, ``deny``) on bash ``line`` in ``workspace``."""
    request = PolicyRequest(
        session_id="s",
        tool="bash",
        arguments={"command": line},
        read_only=False,
        edits_files=False,
        workspace=str(workspace),
        mode=mode,
        session_rule=session_rule,
    )
    matcher = restricted_matcher(rules, str(workspace), home)
    facts = line_facts(line, str(workspace), restricted=matcher, home=home)
    return decide_facts(
        CallFacts(request=request, rules=list(rules), line=facts, home=home)
    ).decision
