"""Results as people read them: the lines ``kfd context``, ``kfd compact`` and
``kfd memory`` print, which the REPL's ``/context``, ``/compact`` and
``/memory`` print too.

One rendering for every place that shows a result, so a terminal and a
script never disagree. Pure functions of protocol values (and the clock, for
ages); no I/O, no styling: a caller that colours adds it on top.
"""

from __future__ import annotations

import time

from kfd import protocol as p

__all__ = [
    "ago",
    "compact_lines",
    "context_lines",
    "memory_lines",
    "missing_lines",
    "session_line",
]


def ago(ts: float, now: float | None = None) -> str:
    """How long before ``now`` the Unix time ``ts`` was: ``3m ago``, ``2d ago``."""
    seconds = max(0.0, (time.time() if now is None else now) - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def context_lines(result: p.ContextResult) -> list[str]:
    """What fills a session's window, one part per line, with the total."""
    mode = "automatic" if result.auto_compact else "off: /compact by hand"
    lines = [
        f"session {result.session}  model {result.model}",
        f"window {result.context_window:,} tokens, {result.output_reserve:,} kept for the "
        f"answer; compaction at {result.threshold:,} ({mode})",
    ]
    for part in result.parts:
        lines.append(f"  {part.name:<13} {part.tokens:>9,}  {part.detail}".rstrip())
    share = result.tokens / result.context_window if result.context_window else 0.0
    lines.append(f"  {'total':<13} {result.tokens:>9,}  {share:.0%} of the window")
    if result.tokenizer:
        counted = f"counted with the model's tokenizer ({result.tokenizer})"
    else:
        counted = "estimated from the text's size (no tokenizer of this model in kfd)"
    if result.reported_tokens:
        counted += (
            f", calibrated x{result.calibration:g} by the provider's last count "
            f"({result.reported_tokens:,} input tokens)"
        )
    lines.append(counted)
    if result.compactions:
        lines.append(f"compacted {result.compactions} time(s)")
    if result.tools_loaded:
        lines.append(f"tools loaded by tool_search: {', '.join(result.tools_loaded)}")
    lines.extend(missing_lines(result.tools_missing, "here"))
    return lines


def missing_lines(missing: list[p.MissingTool], where: str) -> list[str]:
    """The tools not offered because they cannot work, one line per reason."""
    by_reason: dict[str, list[str]] = {}
    for tool in missing:
        by_reason.setdefault(tool.reason, []).append(tool.name)
    return [
        f"not offered {where}: {', '.join(names)}: {reason}" for reason, names in by_reason.items()
    ]


def compact_lines(result: p.CompactResult) -> list[str]:
    """What a compaction did: the sizes and the summary, or why nothing was done."""
    if not result.compacted:
        return [result.message]
    return [
        f"compacted: {result.tokens_before:,} -> {result.tokens_after:,} tokens",
        "",
        *result.summary.splitlines(),
    ]


def memory_lines(memories: list[p.Memory], *, empty: str, said: str = "") -> list[str]:
    """Remembered facts, two lines each (the fact; where, when, by whom), or ``empty``."""
    if not memories:
        return [empty]
    lines = []
    prefix = f"{said} " if said else ""
    for memory in memories:
        where = "global" if memory.scope == "global" else memory.project
        when = time.strftime("%Y-%m-%d", time.localtime(memory.created_at))
        lines.append(f"{prefix}[{memory.id}] {memory.text}")
        lines.append(f"      {where}, {when}, by the {memory.source}")
    return lines


def session_line(info: p.SessionInfo, now: float | None = None) -> str:
    """One session for a picker: age, turns, cost, title (the id goes elsewhere)."""
    title = info.title or "(untitled)"
    turns = f"{info.turns} turn{'' if info.turns == 1 else 's'}"
    busy = "" if info.status == "idle" else f"  [{info.status.replace('_', ' ')}]"
    cost = f"${info.usage.cost_usd:.2f}"
    return f"{ago(info.updated_at, now):>8}  {turns:>9}  {cost:>8}  {title}{busy}"
