"""How kfd's events read in a chat room. Pure functions of protocol values."""

from __future__ import annotations

import re

from kfd import protocol as p
from kfd.client.exact import compact, visible

DIFF_LIMIT = 3000
COMMAND_LIMIT = 20_000
"""Commands that show longer (`kfd.client.exact.compact`) are not shown whole (a
Matrix event holds 64 KiB) and so not allowed from chat."""
COMMAND_LINES = 200
"""Nor those that show on more lines: nobody reads a message that tall whole."""
HEAD_LINES = 20
"""How much of a command too long to allow is shown anyway, so the user knows what it is."""
ALLOW_REACTIONS = frozenset({"👍", "✅", "+1", "white_check_mark", "thumbsup"})
DENY_REACTIONS = frozenset({"👎", "❌", "-1", "x", "thumbsdown"})
VERDICTS: dict[p.ApprovalDecision, str] = {
    "allow": "allowed",
    "allow_session": "allowed for the session",
    "allow_always": "allowed always in this project",
    "deny": "denied",
}

HELP = (
    "Talk to me and I pass it to the session of this room (a thread is a session of "
    "its own). Commands:\n"
    "!new [title]  start a new session here (!new @host [title]: on that daemon)\n"
    "!cancel       stop the running turn\n"
    "!mode MODE    default, accept-edits, plan or auto\n"
    "!cost         what this session spent\n"
    "!status       the session's state\n"
    "!trust [yes]  show the project's .kfd/config.toml; yes: trust it as shown\n"
    "!undo [N]     put back the files the last turn (or turn N and later) changed;\n"
    "              !undo N both: also go on from before it in a forked session\n"
    "!NAME ARGS    run your custom command NAME (.kfd/commands/NAME.md)\n"
    "Answer an approval by replying `allow`, `always` (keep its rule for the project) "
    "or `deny [why]`, or react 👍 / 👎."
)


def model_text(text: str) -> str:
    """What the model wrote, as a block quote: every line is quoted, so nothing
    in it leaves the quote, and the model cannot post what reads as kfd's own
    voice (an approval, a notice). kfd's posts are never quoted."""
    return "\n".join(f"> {line}" if line else ">" for line in _LINE_BREAK.split(text))


def triggered_answer(sid: str, answer: str) -> str:
    """A triggered turn's answer, posted to the notify room: kfd's label as code, so
    a link reference the model defines inside its quote (``[sid]: https://...``,
    which CommonMark applies to the whole message) cannot make it a link."""
    return f"{code(sid)} answered:\n{model_text(answer[:3000])}"


_LINE_BREAK = re.compile(r"\r\n|\r|\n")
"""Line endings as CommonMark counts them."""


def offers_always(event: p.ApprovalRequested) -> bool:
    """Whether "allow always" can keep the approval's rule for the project
    (the daemon says so: not without a rule, nor for a one-off grant)."""
    return event.can_keep


def tool_line(event: p.ToolStarted) -> str:
    return f"· {event.name} {code(event.summary)}" if event.summary.strip() else f"· {event.name}"


def tool_failed(event: p.ToolCompleted) -> str:
    first = next((line for line in event.output.splitlines() if line.strip()), "")
    # The output is the command's (the model's) to choose: quoted, never markup.
    said = f": {code(first[:200])}" if first.strip() else ""
    return f"  ✗ {visible(event.name)} {visible(event.status)}{said}"


def code(text: str) -> str:
    """``text`` as inline code that nothing in it can close (CommonMark: a
    longer backtick run than any inside, padded when it starts or ends with one)."""
    text = compact(text, one_line=True)
    fence = "`" * (_longest_run(text, "`") + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def block(text: str, language: str = "") -> str:
    """``text`` as a fenced code block that nothing in it can close, every
    character that would not show as itself spelled out."""
    text = visible(text)
    fence = "`" * max(3, _longest_run(text, "`") + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def _longest_run(text: str, char: str) -> int:
    longest = run = 0
    for c in text:
        run = run + 1 if c == char else 0
        longest = max(longest, run)
    return longest


def decision_of_reaction(key: str) -> p.ApprovalDecision | None:
    """What a reaction answers: Element sends 👍 as U+1F44D U+FE0F, others add
    a skin tone; all mean the same."""
    key = key.split("::")[0]  # Slack: "+1::skin-tone-2"
    base = "".join(c for c in key if c not in _EMOJI_MODIFIERS).strip().strip(":")
    if base in ALLOW_REACTIONS:
        return "allow"
    if base in DENY_REACTIONS:
        return "deny"
    return None


_EMOJI_MODIFIERS = frozenset("\ufe0e\ufe0f\U0001f3fb\U0001f3fc\U0001f3fd\U0001f3fe\U0001f3ff")


def question(event: p.ApprovalRequested) -> str:
    """What an approval asks, exactly: the tool, the reason, the whole command
    (or the diff). Kept in the message once the approval is decided."""
    preview = event.preview
    lines = [f"🔐 approve {code(event.tool)}?{_why(event)}"]
    if preview.command:
        lines.append(block(compact(preview.command)))
    elif preview.summary:
        lines.append(block(compact(preview.summary)))
    if preview.diff:
        diff = compact(preview.diff)
        if len(diff) > DIFF_LIMIT:
            lines.append(block(diff[:DIFF_LIMIT], "diff"))
            lines.append(f"… the diff goes on for {len(diff) - DIFF_LIMIT} more characters")
        else:
            lines.append(block(diff, "diff"))
    return "\n".join(lines)


def _why(event: p.ApprovalRequested) -> str:
    """The daemon's reason, quoted as code: it quotes the model's command, and a
    backtick in that command must not end the quote and make the rest markup
    (bold claims, links) in kfd's own voice."""
    return f" {code(event.reason)}" if event.reason.strip() else ""


def readable_whole(text: str) -> bool:
    """Whether ``text`` fits in one chat message a reader takes in whole
    (`COMMAND_LIMIT` characters, `COMMAND_LINES` lines)."""
    return len(text) <= COMMAND_LIMIT and text.count("\n") < COMMAND_LINES


def fits(event: p.ApprovalRequested) -> bool:
    """Whether the whole command, as shown, fits in one chat message a reader
    takes in. A command that does not cannot be allowed from chat: nobody
    would have seen what runs."""
    shown = compact(event.preview.command or "") + compact(event.preview.summary)
    whole_diff = len(compact(event.preview.diff or "")) <= DIFF_LIMIT  # a cut diff hides changes
    return len(shown) <= COMMAND_LIMIT and shown.count("\n") < COMMAND_LINES and whole_diff


def approval(event: p.ApprovalRequested) -> str:
    """The approval as posted: the question and how to answer it."""
    if not fits(event):
        command = event.preview.command or event.preview.summary
        shown = compact(command)
        head = "\n".join(shown[: COMMAND_LIMIT // 10].split("\n")[:HEAD_LINES])
        return (
            f"🔐 approve {code(event.tool)}?{_why(event)}"
            + f"\n{block(head)}\n… {len(shown) - len(head)} more characters: answer it in "
            f"a terminal (`kfd attach`). The command is {len(command)} characters long, "
            "too long to show here whole, so it cannot be allowed from chat; "
            "or reply `deny [why]`."
        )
    text = question(event)
    if offers_always(event):
        return (
            f"{text}\nReply `allow`, `always` (keeps the rule {code(event.session_rule)} "
            "for this project) or `deny [why]` to this message, or react 👍 / 👎."
        )
    return f"{text}\nReply `allow` or `deny [why]` to this message, or react 👍 / 👎."


def resolved(asked: str, event: p.ApprovalResolved, who: str) -> str:
    """A decided approval: what was asked, what was decided, by whom."""
    verdict = VERDICTS[event.decision]
    kept = f" (keeps {code(event.rule)})" if event.rule else ""
    said = f": {visible(event.message)}" if event.message else ""
    return f"{asked}\n→ {verdict} by {visible(who)}{kept}{said}"


def turn_end(event: p.TurnCompleted) -> str | None:
    if event.stop_reason == "end_turn":
        return None
    return f"⏹ turn ended: {event.stop_reason}" + (f" ({event.message})" if event.message else "")


def status(info: p.SessionInfo) -> str:
    return (
        f"session {info.id} {code(info.title or 'untitled')}: {info.status}, mode {info.mode}, "
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
        where = ", ".join(code(f"{s.path}:{s.line}") for s in event.spots[:5])
        what = "question" if event.kind == "ask" else "request"
        return f"⚡ trigger {code(event.trigger)}: {what} at {where}"
    # File names are the workspace's (the model's) to choose: quoted, never markup.
    return f"⚡ trigger {code(event.trigger)}: {', '.join(map(code, event.files[:5]))} changed"


def trust_required(event: p.TrustRequired) -> str:
    """A session's project config is not trusted: what is ignored, how to trust it.
    Every rule is quoted as code: a repository wrote it, and Markdown must not
    reshape what the user is asked to trust (``*`` pairs, backticks, new lines)."""
    ignored = "\n".join(f"• {code(line)}" for line in event.ignored)
    if not event.grants:
        return f"ℹ ignored in {code(event.path)}:\n{ignored}"
    return (
        f"🔒 {code(event.path)} is not trusted, so it only narrows rights. Ignored:\n{ignored}\n"
        "`!trust` shows all it grants; then `!trust yes` trusts exactly what it showed."
    )


def config_error(event: p.ConfigInvalid) -> str:
    """A config file that does not load: the daemon's message, quoted as code (it may
    quote a repository's own file)."""
    return f"⚠ config not reloaded: {code(event.message)}"


def config_reloaded(event: p.ConfigReloaded) -> str:
    """A config file that did not load loads again."""
    changed = "; ".join([*event.applied, *event.not_applied]) or "fixed"
    return f"✅ {code(event.path)} loads again: {visible(changed)}"


def trust(info: p.TrustInfo) -> str:
    """What ``!trust`` shows (rules quoted as code, as in `trust_required`)."""
    if not info.exists:
        return f"{code(info.project)} has no .kfd/config.toml: nothing to trust"
    if info.problem:
        return f"⚠ {code(info.path)} does not load: {visible(info.problem)}"
    state = "trusted" if info.trusted else "changed since trusted" if info.pinned else "not trusted"
    lines = [f"{code(info.path)}: {state} (sha256 {info.sha256[:12]}…)"]
    lines += [f"grants: {code(grant)}" for grant in info.grants]
    lines += [f"ignored: {code(line)}" for line in info.ignored]
    if info.grants and not info.trusted:
        lines.append("`!trust yes` trusts exactly this content")
    return "\n".join(lines)
