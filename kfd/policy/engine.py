"""How a tool call is decided: a pure function of the facts.

No I/O here: paths arrive already resolved (`kfd.policy.paths`), so every
decision is a plain function call a test can make. The order, first match
wins within the built-in rules:

1. ``plan`` mode: a tool that is not read-only is denied.
2. A rule the user allowed for this session matches exactly: allow.
3. A path outside the workspace: ask (in every mode, ``auto`` included).
4. ``auto`` mode: allow.
5. A read-only tool: allow.
6. ``accept-edits`` mode and a tool that only edits files: allow.
7. Otherwise: ask.

Plugin policies vote after the built-in rules; `combine` keeps the strictest
verdict (deny over ask over allow), so no plugin can loosen a built-in "ask".
"""

from __future__ import annotations

from collections.abc import Iterable

from kfd.api import PolicyRequest, Verdict

_STRICTNESS = {"allow": 0, "ask": 1, "deny": 2}


def decide(request: PolicyRequest) -> Verdict:
    """The built-in verdict for a tool call."""
    if request.mode == "plan" and not request.read_only:
        return Verdict(
            "deny",
            f"plan mode: `{request.tool}` changes things and only read-only tools run; "
            "describe the change instead, or ask the user to switch modes",
        )
    if request.session_rule and request.session_rule in request.session_rules:
        return Verdict("allow", f"allowed for this session: {request.session_rule}")
    outside = [p for p in request.paths if not p.inside_workspace]
    if outside:
        first = outside[0]
        verb = "writes" if any(p.write for p in outside) else "reads"
        return Verdict("ask", f"{verb} outside the workspace: {first.real}")
    if request.mode == "auto":
        return Verdict("allow", "auto mode")
    if request.read_only:
        return Verdict("allow", "read-only tool")
    if request.mode == "accept-edits" and request.edits_files:
        return Verdict("allow", "accept-edits mode")
    return Verdict("ask", f"{request.mode} mode asks before `{request.tool}`")


def combine(verdicts: Iterable[Verdict | None]) -> Verdict:
    """The strictest verdict; the first of equally strict ones gives the reason."""
    strictest: Verdict | None = None
    for verdict in verdicts:
        if verdict is None:
            continue
        if strictest is None or _STRICTNESS[verdict.decision] > _STRICTNESS[strictest.decision]:
            strictest = verdict
    return strictest or Verdict("ask", "no policy decided")
