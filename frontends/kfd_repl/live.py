"""What is drawn under the printed transcript and redrawn as it changes.

The live area shows what is still moving: running tools with the tail of
their output, the unfinished part of a streamed answer, queued messages and
the approval waiting for an answer. The toolbar is the session at a glance.
Both are plain functions of a `SessionView`, cut to the terminal's width.
"""

from __future__ import annotations

import textwrap
import time
from typing import Literal

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.utils import get_cwidth

from kfd.client.exact import LINE_BREAK, compact
from kfd_repl.render import clean, elapsed
from kfd_repl.view import SessionView, offers_always

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
TOOL_OUTPUT_LINES = 5
STREAM_LINES = 6
QUEUED_SHOWN = 3

STATUS_WORDS = {
    "idle": "idle",
    "running": "running",
    "awaiting_approval": "awaiting approval",
    "error": "error",
}


def spinner(now: float | None = None) -> str:
    return SPINNER[int((now or time.monotonic()) * 10) % len(SPINNER)]


def fit(text: str, width: int) -> str:
    """``text`` on one line (a line break shows as ``⏎``) cut to ``width``
    terminal cells, with an ellipsis when cut."""
    text = text.replace("\n", LINE_BREAK)
    if get_cwidth(text) <= width:
        return text
    out, used = [], 0
    for char in text:
        cells = get_cwidth(char)
        if used + cells > width - 1:
            break
        out.append(char)
        used += cells
    return "".join(out) + "…"


def _wrapped_tail(text: str, width: int, lines: int) -> list[str]:
    wrapped: list[str] = []
    for line in text.split("\n"):
        wrapped.extend(textwrap.wrap(line, width, drop_whitespace=False) or [""])
    return [fit(line, width) for line in wrapped[-lines:]]


def live_area(view: SessionView, width: int, hint: str = "") -> StyleAndTextTuples:
    """The live lines above the prompt (empty when nothing is going on)."""
    width = max(20, width - 1)
    out: StyleAndTextTuples = []

    def line(style: str, text: str) -> None:
        out.append((style, fit(text, width) + "\n"))

    for call in view.running_calls:
        since = f" · {elapsed(call.started_at)}" if call.started_at else ""
        summary = clean(call.summary).split("\n", 1)[0]
        line("class:live.tool", f"{spinner()} {call.name}  {summary}{since}")
        output = clean(call.output).rstrip("\n")
        if output:
            for text in output.split("\n")[-TOOL_OUTPUT_LINES:]:
                line("class:live.output", f"  │ {text}")
    for stream in view.streams.values():
        pending = clean(stream.pending)
        if pending.strip():
            for text in _wrapped_tail(pending.rstrip("\n"), width, STREAM_LINES):
                out.append(("class:live.text", text + "\n"))
        elif stream.reasoning and not stream.text:
            last = clean(stream.reasoning).strip().rsplit("\n", 1)[-1]
            line("class:live.reasoning", f"{spinner()} thinking: {last}")
    tasks = _tasks_line(view)
    if tasks:
        line("class:live.tasks", tasks)
    queued = list(view.queued.values())
    for message in queued[:QUEUED_SHOWN]:
        author = clean(message.frontend.name) if message.frontend else ""
        origin = "" if view.me.owns(message.frontend) or not author else f" · from {author}"
        first = clean(message.text).strip().split("\n", 1)[0]
        line("class:live.queued", f"⋯ queued: {first}{origin}")
    if len(queued) > QUEUED_SHOWN:
        line("class:live.queued", f"⋯ and {len(queued) - QUEUED_SHOWN} more queued")
    if view.busy and view.cancelling:
        line("class:live.warn", f"{spinner()} cancelling the turn…")
    elif view.busy and not view.running_calls and not view.approval and not _streaming(view):
        line("class:live.status", f"{spinner()} waiting for the model · Esc or Ctrl-C cancels")
    # (While the daemon is away the toolbar says "disconnected"; the note above said why.)
    if hint:
        line("class:live.hint", hint)
    return _without_last_newline(out)


TASK_MARKS = {"pending": "☐", "in_progress": "◐", "done": "☑"}


def task_lines(view: SessionView) -> list[str]:
    """The model's plan, one line per item."""
    return [
        f"{TASK_MARKS.get(getattr(task, 'status', ''), '•')} {clean(getattr(task, 'text', ''))}"
        for task in view.tasks
    ]


def _tasks_line(view: SessionView) -> str:
    # While the plan is open: how far along, and what is being done now.
    statuses = [getattr(task, "status", "") for task in view.tasks]
    if not statuses or all(status == "done" for status in statuses):
        return ""
    current = next(
        (task for task in view.tasks if getattr(task, "status", "") == "in_progress"), None
    )
    doing = f" · ◐ {clean(getattr(current, 'text', ''))}" if current is not None else ""
    return f"tasks {statuses.count('done')}/{len(statuses)} done{doing}"


def _streaming(view: SessionView) -> bool:
    return any(stream.pending.strip() or stream.reasoning for stream in view.streams.values())


ApprovalKeys = Literal["answer", "focused", "arming", "draft"]
"""Where the keys go while an approval is open (`kfd_repl.app.Repl.approval_keys`):
the approval takes them (the input is empty, or the user moved the focus to
it), not yet (it just appeared while the user was typing), or the input has a
draft and keeps them."""


def approval_prompt(
    view: SessionView, width: int, keys: ApprovalKeys = "answer"
) -> StyleAndTextTuples:
    """The keys that answer the approval printed above, and the rule they keep.

    The question itself (the whole command) is printed above, once; this part
    only says how to answer it, and whether the keys answer it right now.
    """
    approval = view.approval
    if approval is None:
        return []
    width = max(20, width - 1)
    more = len(view.approvals) - 1
    waiting = f" ({more} more waiting)" if more > 0 else ""
    asking = f"the {compact(approval.tool, one_line=True)} call above waits for an answer{waiting}"
    if keys == "draft":
        return [("class:approval", fit(f"{asking} · Tab answers it (your draft stays)", width))]
    if keys == "arming":
        return [("class:approval", fit(f"{asking} · keys answer it in a moment", width))]
    rule = compact(approval.session_rule, one_line=True)
    choices = "y allow once · a allow for this session · n deny"
    keeps = f"  (a adds the rule {rule})"
    if offers_always(approval):
        choices = "y allow once · a allow for this session · A always (this project) · n deny"
        keeps = f"  (a adds the rule {rule} for this session, A for this project)"
    if keys == "focused":
        choices += " · Tab back to your draft"
    out: StyleAndTextTuples = [("class:approval.keys", fit(choices, width) + "\n")]
    if rule:
        out.append(("class:approval.rule", fit(keeps, width) + "\n"))
    if more > 0:
        out.append(("class:approval.rule", f"  ({more} more waiting)\n"))
    return _without_last_newline(out)


def _without_last_newline(fragments: StyleAndTextTuples) -> StyleAndTextTuples:
    # A trailing newline would draw an empty line under the last one.
    if fragments:
        style, text, *_ = fragments[-1]
        fragments[-1] = (style, text.removesuffix("\n"))
    return fragments


def toolbar(view: SessionView, width: int) -> StyleAndTextTuples:
    """One line: session, mode, model, context, spend, status, attached frontends."""
    info = view.info
    usage = info.usage
    tokens = usage.input_tokens + usage.output_tokens
    status = STATUS_WORDS.get(info.status, info.status) if view.connected else "disconnected"
    if view.busy and view.connected:
        status = f"{spinner()} {status}"
    # Most important first; the rest is dropped from the end until it fits.
    parts = [
        status,
        f"{info.mode}",
        # How many watch is unknown while disconnected: not shown rather than stale.
        f"{info.frontends} attached" if info.frontends > 1 and view.connected else "",
        f"ctx {_percent(view)}" if view.context_window else "",
        f"{_count(tokens)} tok ${usage.cost_usd:.2f}" if usage.requests else "",
        info.model or "",
    ]
    parts = [part for part in parts if part]
    title = clean(info.title) or "untitled"
    while True:
        tail = " │ ".join(parts)
        # " TITLE ID │ TAIL ": the title gets what is left.
        room = width - get_cwidth(tail) - len(info.id) - 6
        if room >= 8 or len(parts) <= 2:
            break
        parts.pop()
    name = f" {fit(title, room)} {info.id}" if room >= 8 else f" {info.id}"
    text = fit(f"{name} │ {tail} ", width)
    return [("class:toolbar", text + " " * max(0, width - get_cwidth(text)))]


def _percent(view: SessionView) -> str:
    return f"{100 * view.context_tokens / max(1, view.context_window):.0f}%"


def _count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)
