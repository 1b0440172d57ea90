"""How kfd's events read in a chat room. Pure functions of protocol values."""

from __future__ import annotations

from kfd import protocol as p

DIFF_LIMIT = 3000
ALLOW_REACTIONS = frozenset({"👍", "✅", "+1", "white_check_mark", "thumbsup"})
DENY_REACTIONS = frozenset({"👎", "❌", "-1", "x", "thumbsdown"})
VERDICTS: dict[p.ApprovalDecision, str] = {
    "allow": "allowed",
    "allow_session": "allowed for the session",
    "allow_always": "allowed always in this project",
    "deny": "denied",
}

HELP = (
    "Talk to me and I pass it to the session of this room. Commands:\n"
    "!new [title]  start a new session here\n"
    "!cancel       stop the running turn\n"
    "!mode MODE    default, accept-edits, plan or auto\n"
    "!cost         what this session spent\n"
    "!status       the session's state\n"
    "!trust [yes]  show the project's .kfd/config.toml; yes: trust it as shown\n"
    "Answer an approval by replying `allow`, `always` (keep its rule for the project) "
    "or `deny [why]`, or react 👍 / 👎."
)


def offers_always(event: p.ApprovalRequested) -> bool:
    """Whether "allow always" can keep the approval's rule for the project
    (the daemon says so: not without a rule, nor for a one-off grant)."""
    return event.can_keep


def tool_line(event: p.ToolStarted) -> str:
    return f"· {event.name} {event.summary}".rstrip()


def tool_failed(event: p.ToolCompleted) -> str:
    first = next((line for line in event.output.splitlines() if line.strip()), "")
    return f"  ✗ {event.name} {event.status}: {first[:200]}".rstrip()


def approval(event: p.ApprovalRequested) -> str:
    preview = event.preview
    lines = [f"🔐 approve `{event.tool}`? {event.reason}".rstrip()]
    if preview.command:
        lines.append(f"```\n{preview.command}\n```")
    elif preview.summary:
        lines.append(preview.summary)
    if preview.diff:
        diff = preview.diff
        if len(diff) > DIFF_LIMIT:
            diff = diff[:DIFF_LIMIT] + f"\n… {len(preview.diff) - DIFF_LIMIT} more characters"
        lines.append(f"```diff\n{diff}\n```")
    if offers_always(event):
        lines.append(
            "Reply `allow`, `always` (keeps the rule "
            f"`{event.session_rule}` for this project) or `deny [why]` to this message, "
            "or react 👍 / 👎."
        )
    else:
        lines.append("Reply `allow` or `deny [why]` to this message, or react 👍 / 👎.")
    return "\n".join(lines)


def resolved(event: p.ApprovalResolved, asked: str) -> str:
    who = event.by.name if event.by else "kfd"
    verdict = VERDICTS[event.decision]
    first = asked.splitlines()[0] if asked else "approval"
    kept = f" (keeps `{event.rule}`)" if event.rule else ""
    said = f": {event.message}" if event.message else ""
    return f"{first}\n→ {verdict} by {who}{kept}{said}"


def turn_end(event: p.TurnCompleted) -> str | None:
    if event.stop_reason == "end_turn":
        return None
    return f"⏹ turn ended: {event.stop_reason}" + (f" ({event.message})" if event.message else "")


def status(info: p.SessionInfo) -> str:
    return (
        f"session {info.id} “{info.title or 'untitled'}”: {info.status}, mode {info.mode}, "
        f"model {info.model}, {info.turns} turns\nworkspace {info.cwd}"
    )


def cost(info: p.SessionInfo) -> str:
    usage = info.usage
    return (
        f"session {info.id}: ${usage.cost_usd:.4f} over {usage.requests} requests "
        f"({usage.input_tokens} tokens in, {usage.output_tokens} out)"
    )


def trigger(event: p.TriggerFired) -> str:
    if event.spots:
        where = ", ".join(f"{s.path}:{s.line}" for s in event.spots[:5])
        what = "question" if event.kind == "ask" else "request"
        return f"⚡ trigger {event.trigger}: {what} at {where}"
    return f"⚡ trigger {event.trigger}: {', '.join(event.files[:5])} changed"


def trust_required(event: p.TrustRequired) -> str:
    """A session's project config is not trusted: what is ignored, how to trust it."""
    ignored = "\n".join(f"• {line}" for line in event.ignored)
    if not event.grants:
        return f"ℹ ignored in {event.path}:\n{ignored}"
    return (
        f"🔒 {event.path} is not trusted, so it only narrows rights. Ignored:\n{ignored}\n"
        "`!trust` shows what it grants; `!trust yes` trusts exactly that content."
    )


def trust(info: p.TrustInfo) -> str:
    """What ``!trust`` shows."""
    if not info.exists:
        return f"{info.project} has no .kfd/config.toml: nothing to trust"
    if info.problem:
        return f"⚠ {info.path} does not load: {info.problem}"
    state = "trusted" if info.trusted else "changed since trusted" if info.pinned else "not trusted"
    lines = [f"{info.path}: {state} (sha256 {info.sha256[:12]}…)"]
    lines += [f"grants: {grant}" for grant in info.grants]
    lines += [f"ignored: {line}" for line in info.ignored]
    if info.grants and not info.trusted:
        lines.append("`!trust yes` trusts exactly this content")
    return "\n".join(lines)
