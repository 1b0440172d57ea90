"""What an editor's prompt becomes: a kfd message, or one of the slash commands.

Pure functions of ACP content blocks (the library's models) and text.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

from acp import schema as a

from kfd import protocol as p
from kfd_acp.tools import fenced

Block = (
    a.TextContentBlock
    | a.ImageContentBlock
    | a.AudioContentBlock
    | a.ResourceContentBlock
    | a.EmbeddedResourceContentBlock
)


class PromptRefused(ValueError):
    """The prompt holds something kfd cannot pass to the model (the message says what)."""


@dataclass(frozen=True, slots=True)
class Command:
    """A slash command an editor offers (ACP's available commands)."""

    name: str
    description: str
    hint: str = ""


COMMANDS: tuple[Command, ...] = (
    Command("compact", "Summarise the older part of the conversation now", "what to keep"),
    Command("context", "What fills this session's context window"),
    Command("cost", "What this session's model requests cost"),
)
"""The commands ``kfd acp`` runs itself; everything else is a message to the model.

The workspace's custom commands (the daemon's ``commands.list``) are offered
after these by `kfd_acp.session`, and a prompt naming one is run by the
daemon (``commands.run``).
"""


@dataclass(frozen=True, slots=True)
class Invocation:
    """A prompt that is one of `COMMANDS`: its name and the rest of the line."""

    name: str
    argument: str


def as_message(blocks: list[Block], cwd: str) -> str:
    """The text of the kfd message a prompt makes; `PromptRefused` if it cannot."""
    parts: list[str] = []
    for block in blocks:
        match block:
            case a.TextContentBlock():
                parts.append(block.text)
            case a.ResourceContentBlock():
                parts.append(_mention(block.uri, block.name, cwd))
            case a.EmbeddedResourceContentBlock():
                parts.append(_embedded(block.resource, cwd))
            case a.ImageContentBlock() | a.AudioContentBlock():
                raise PromptRefused(
                    f"kfd takes text only: a prompt cannot carry {block.type} content "
                    "(initialize says image: false, audio: false)"
                )
    text = _join(parts)
    if not text.strip():
        raise PromptRefused("the prompt is empty: send text, a resource link or a resource")
    return text


def invocation(text: str, commands: tuple[Command, ...] = COMMANDS) -> Invocation | None:
    """The command a prompt's text runs (``/compact keep the API``), or None."""
    stripped = text.strip()
    if not stripped.startswith("/"):
        return None
    name, _, rest = stripped[1:].partition(" ")
    if any(command.name == name for command in commands):
        return Invocation(name, rest.strip())
    return None


def context_text(result: p.ContextResult) -> str:
    """``/context``: what fills the window, part by part."""
    used = result.tokens / result.context_window if result.context_window else 0.0
    lines = [
        f"Context of {result.session} ({result.model}): {result.tokens:,} of "
        f"{result.context_window:,} tokens ({used:.0%}); compacted at {result.threshold:,}"
        + ("" if result.auto_compact else " by hand only"),
        "",
    ]
    lines.extend(
        f"- {part.name}: {part.tokens:,}" + (f" ({part.detail})" if part.detail else "")
        for part in result.parts
    )
    return "\n".join(lines) + "\n"


def cost_text(result: p.CostResult, session: str) -> str:
    """``/cost``: the session's requests, tokens and dollars, and its budgets."""
    total = result.total
    lines = [
        f"Session {session}: {total.requests} model requests, ${total.cost_usd:.4f} "
        f"(${total.confirmed_usd:.4f} confirmed by the gateway)",
        f"Tokens: {total.input_tokens:,} in ({total.cached_input_tokens:,} cached), "
        f"{total.output_tokens:,} out",
    ]
    lines.extend(
        f"Budget {b.budget}: ${b.spent_usd:.2f} of ${b.limit_usd:.2f}" for b in result.budgets
    )
    return "\n".join(lines) + "\n"


def compact_text(result: p.CompactResult) -> str:
    """``/compact``: what the summary replaced, or why nothing was."""
    if not result.compacted:
        return f"Nothing was compacted: {result.message}\n"
    return (
        f"Compacted the conversation: {result.tokens_before:,} → {result.tokens_after:,} "
        f"tokens.\n\n{result.summary}\n"
    )


def _join(parts: list[str]) -> str:
    out = ""
    for part in parts:
        if out and not out.endswith((" ", "\n")) and not part.startswith((" ", "\n")):
            out += " "
        out += part
    return out


def _path_of(uri: str) -> str | None:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    if not parsed.scheme and uri.startswith("/"):
        return uri
    return None


def _label(uri: str, cwd: str) -> str:
    path = _path_of(uri)
    if path is None:
        return uri
    relative = os.path.relpath(path, cwd)
    return path if relative.startswith("..") else relative


def _mention(uri: str, name: str, cwd: str) -> str:
    label = _label(uri, cwd)
    if _path_of(uri) is not None:
        return f"@{shlex.quote(label)}" if label != name else f"@{shlex.quote(name)}"
    return f"[{name}]({uri})"


def _embedded(resource: Any, cwd: str) -> str:
    label = _label(resource.uri, cwd)
    if isinstance(resource, a.TextResourceContents):
        return f"\n\n{label} (as the editor has it):\n{fenced(resource.text)}\n"
    mime = getattr(resource, "mime_type", None) or "binary"
    return f"\n[{label}: {mime} content the editor attached; kfd passes text only]\n"
