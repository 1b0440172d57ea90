"""How blocks look in a terminal: Rich renders them to ANSI text.

Rich does the Markdown (with pygments highlighting code blocks), the diffs and
the wrapping; prompt-toolkit then prints the ANSI text above the live prompt
at the terminal's colour depth. ``NO_COLOR`` turns colours off in both.

Text from the model and from tools is never trusted with the terminal:
escape sequences and control characters are removed before rendering, so a
tool printing ``ESC]0;...`` cannot retitle the window or move the cursor.
"""

from __future__ import annotations

import io
import os
import re
import time
from functools import lru_cache

from rich.console import Console, RenderableType
from rich.markdown import Markdown
from rich.text import Text

from kfd import protocol as p
from kfd.client.exact import compact_segments, visible
from kfd_repl.blocks import (
    ApprovalAnswer,
    ApprovalAsk,
    AssistantText,
    Block,
    Header,
    Listing,
    Note,
    ToolLine,
    UserText,
)
from kfd_repl.diffs import CODE_THEME, diff_text

FOLD_ABOVE = 16
"""Output longer than this many lines is folded to its head and tail."""
FOLD_HEAD = 4
FOLD_TAIL = 8
DIFF_LINES_SHOWN = 120
"""Longer diffs of finished edits are cut here (the model's result says what
changed in full); the diff an approval asks about is always shown whole."""
WHAT_SHOWN = 120
"""Characters of a command an approval's answer repeats (the question above shows it all)."""

# CSI and OSC sequences (and any lone escape), then C0/C1 controls but tab and newline.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.?")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_TRAILING_SPACES = re.compile(r" +$", re.MULTILINE)
_SGR = re.compile(r"\x1b\[[0-9;]*m")

STATUS_MARKS: dict[p.ToolStatus, tuple[str, str]] = {
    "ok": ("✓", "green"),
    "error": ("✗", "red"),
    "denied": ("⊘", "yellow"),
    "cancelled": ("■", "yellow"),
    "interrupted": ("■", "yellow"),
}
NOTE_STYLES = {"info": "dim", "warn": "yellow", "error": "bold red"}
ALLOWED: dict[p.ApprovalDecision, str] = {
    "allow": "allowed once",
    "allow_session": "allowed for this session",
    "allow_always": "allowed always",
}


def colour_wanted() -> bool:
    """False when ``NO_COLOR`` is set (to anything but empty), as no-color.org asks."""
    return not os.environ.get("NO_COLOR")


def clean(text: str) -> str:
    """``text`` without escape sequences and control characters (tabs kept).

    A carriage return inside a line keeps what a terminal would show: the part
    after it (progress bars redraw their line that way).
    """
    text = _ESCAPES.sub("", text.replace("\r\n", "\n"))
    if "\r" in text:
        text = "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))
    return _CONTROLS.sub("", text)


def plain(ansi: str) -> str:
    """Rendered text without its styling (what a test or a log wants)."""
    return _SGR.sub("", ansi)


@lru_cache(maxsize=4)
def _console(width: int, colour: bool) -> Console:
    return Console(
        file=io.StringIO(),
        width=max(20, width),
        force_terminal=True,
        color_system="truecolor",  # prompt-toolkit brings it down to the terminal's depth
        no_color=not colour,  # keeps bold and underline, drops colours
        highlight=False,
        emoji=False,
        legacy_windows=False,
    )


def render(block: Block, width: int, colour: bool | None = None) -> str:
    """The ANSI text of one block for a terminal ``width`` columns wide.

    Blocks that start something new (a message, a question) begin with an
    empty line; the lines of a turn's activity follow each other closely.
    """
    console = _console(width, colour_wanted() if colour is None else colour)
    with console.capture() as capture:
        for renderable in _renderables(block, width):
            console.print(renderable)
    text = _TRAILING_SPACES.sub("", capture.get()).strip("\n")
    spaced = isinstance(block, Header | UserText | AssistantText | ApprovalAsk | Listing)
    return ("\n" if spaced else "") + text + "\n"


def _renderables(block: Block, width: int) -> list[RenderableType]:
    match block:
        case Header():
            return _header(block)
        case UserText():
            return [_user(block)]
        case AssistantText():
            return [Markdown(clean(block.text), code_theme=CODE_THEME, hyperlinks=False)]
        case ToolLine():
            return _tool(block, width)
        case ApprovalAsk():
            return _ask(block.event)
        case ApprovalAnswer():
            return [_answer(block)]
        case Note():
            return [Text(clean(block.text), style=NOTE_STYLES[block.level])]
        case Listing():
            lines: list[RenderableType] = [Text(block.title, style="bold")]
            lines.extend(Text(clean(line)) for line in block.lines)
            return lines
    return []  # pragma: no cover - every block is handled above


def _header(block: Header) -> list[RenderableType]:
    info = block.info
    title = f" “{clean(info.title)}”" if info.title else ""
    first = Text.assemble(("── ", "dim"), (f"session {info.id}", "bold"), title)
    details = [info.cwd, f"model {info.model or '(default)'}", f"mode {info.mode}"]
    if info.turns:
        details.append(f"{info.turns} turn{'s' if info.turns != 1 else ''}")
    lines: list[RenderableType] = [first, Text("   " + clean(" · ".join(details)), style="dim")]
    if block.history_cut:
        lines.append(Text("   (older history not shown)", style="dim"))
    return lines


def _user(block: UserText) -> Text:
    lines = clean(block.text).rstrip("\n").split("\n")
    text = Text("› ", style="bold cyan")
    text.append(lines[0], style="bold")
    if block.paste is not None:
        # A paste: its first line, then how big it is and how to see it.
        text.append(f"  [pasted {len(lines):,} lines · /expand {block.paste}]", style="dim")
        lines = lines[:1]
    if block.author:
        text.append(f"  · from {clean(block.author)}", style="magenta")
    for line in lines[1:]:
        text.append("\n  " + line, style="bold")
    return text


def _tool(block: ToolLine, width: int) -> list[RenderableType]:
    mark, colour = STATUS_MARKS.get(block.status, ("•", "yellow"))
    line = Text.assemble((f"{mark} ", colour), (block.name, "bold"))
    outcome = [_duration(block.duration_ms)] if block.duration_ms else []
    if block.status != "ok":
        outcome.append(block.status)
    tail = Text("  · " + " · ".join(outcome) if outcome else "", style="dim")
    if block.status != "ok":
        tail.stylize(colour)
    # The outcome stays in view; a long command gives way.
    room = width - line.cell_len - tail.cell_len
    summary = clean(block.summary).split("\n", 1)[0]
    if summary and room > 6:
        shown = Text("  " + summary)
        shown.truncate(room, overflow="ellipsis")
        line.append_text(shown)
    line.append_text(tail)
    line.truncate(width, overflow="ellipsis")
    out: list[RenderableType] = [line]
    if block.diff:
        out.append(diff_text(block.diff, width, limit=DIFF_LINES_SHOWN))
    elif block.output.strip():
        # Command output is cropped to the width; an error is wrapped, every word counts.
        out.append(_output(block.output, width if block.status == "ok" else None))
    return out


def _output(output: str, width: int | None) -> Text:
    lines = clean(output).rstrip("\n").split("\n")
    if len(lines) > FOLD_ABOVE:
        hidden = len(lines) - FOLD_HEAD - FOLD_TAIL
        lines = [*lines[:FOLD_HEAD], f"… {hidden} more lines …", *lines[-FOLD_TAIL:]]
    rows = []
    for line in lines:
        row = Text("  │ ", style="dim")
        row.append(line, style="dim" if line.startswith("… ") else "")
        rows.append(row)
    return _cropped(rows, width) if width else Text("\n").join(rows)


def _cropped(rows: list[Text], width: int) -> Text:
    # One terminal line per line of output: long lines end in an ellipsis.
    for row in rows:
        row.truncate(width, overflow="ellipsis")
    return Text("\n").join(rows)


def exact(text: str, style: str = "") -> Text:
    """``text`` exactly and compactly, wrapped (`kfd.client.exact.compact`):
    hidden characters escaped, long runs of blanks counted, both in reverse."""
    shown = Text(style=style, overflow="fold")
    for part, marked in compact_segments(text):
        shown.append(part, style="reverse" if marked else "")
    return shown


def exact_lines(text: str, style: str = "") -> list[Text]:
    """`exact` as one `Text` per line it shows."""
    lines = [Text(style=style, overflow="fold")]
    for part, marked in compact_segments(text):
        if marked:
            lines[-1].append(part, style="reverse")
            continue
        first, *rest = part.split("\n")
        lines[-1].append(first)
        for line in rest:
            lines.append(Text(line, style=style, overflow="fold"))
    return lines


def _ask(event: p.ApprovalRequested) -> list[RenderableType]:
    """The whole question: the command (every line, every character) or the
    whole diff, where it runs, and the model's own description of it."""
    preview = event.preview
    head = Text.assemble(("? ", "bold yellow"), (visible(event.tool), "bold"))
    # "edit x.py" from the edit tool reads "? edit  x.py", not "? edit  edit x.py".
    summary = preview.summary.removeprefix(f"{event.tool} ")
    if summary and not preview.command:
        head.append("  ")
        head.append_text(exact(summary))
    if event.reason:
        head.append("  · ", style="dim")
        head.append_text(exact(event.reason, "dim"))
    out: list[RenderableType] = [head]
    if preview.command is not None:
        # Every line of it, long runs of blanks counted: what runs fits on the screen.
        for number, line in enumerate(exact_lines(preview.command)):
            row = Text.assemble(("  $ " if number == 0 else "    ", "dim"))
            row.append_text(line)
            out.append(row)
        if preview.cwd:
            out.append(Text.assemble(("    in ", "dim"), exact(preview.cwd, "dim")))
        if summary and summary not in (preview.command, preview.command.split("\n", 1)[0] + " …"):
            # The model's description is its own words, not what runs.
            described = Text.assemble(("    the model says: ", "dim"))
            described.append_text(exact(summary, "dim italic"))
            out.append(described)
    if preview.diff:
        out.append(diff_text(preview.diff, 10_000, crop=False))
    return out


def _answer(block: ApprovalAnswer) -> Text:
    """What was decided, about what, and by whom (a kept rule names what it allows)."""
    what = Text()
    if block.tool and not block.rule:
        first, _, rest = block.what.partition("\n")
        shown = visible(first)
        if rest or len(shown) > WHAT_SHOWN:
            shown = shown[:WHAT_SHOWN].rstrip() + " …"
        what = Text.assemble((visible(block.tool), "bold"), f"  {shown}" if shown else "", " · ")
    if block.decision == "deny" and block.by == "":
        text = Text("⊘ ", style="yellow")
        text.append_text(what)
        text.append(f"dismissed: {clean(block.message) or 'no answer'}", style="yellow")
        return text
    who = "you" if block.by is None else block.by or "kfd"
    if block.decision == "deny":
        text = Text("✗ ", style="red")
        text.append_text(what)
        text.append("denied", style="red")
    else:
        text = Text("✓ ", style="green")
        text.append_text(what)
        text.append(ALLOWED[block.decision], style="green")
        if block.rule:
            text.append(f": {visible(block.rule)}")
    text.append(f" · answered by {who}", style="dim" if block.by is None else "magenta")
    if block.message and block.decision == "deny":
        text.append(f": {clean(block.message)}")
    return text


def _duration(ms: float) -> str:
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(int(ms / 1000), 60)
    return f"{minutes}m{seconds:02d}s"


def elapsed(since: float) -> str:
    """How long ago ``since`` (wall clock) was, as the live area shows it."""
    return _duration(max(0.0, time.time() - since) * 1000)
