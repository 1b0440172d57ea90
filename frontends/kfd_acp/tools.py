"""How a kfd tool call looks in an editor: kind, title, locations, diff, output.

Pure functions of a tool's name and arguments (as the model sent them) and
of its results; no ACP library, no I/O. `kfd_acp.translate` turns their
answers into ACP's tool-call updates.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Literal

ToolKind = Literal[
    "read", "edit", "delete", "move", "search", "execute", "think", "fetch", "switch_mode", "other"
]

_KINDS: dict[str, ToolKind] = {
    "read": "read",
    "read_output": "read",
    "edit": "edit",
    "write": "edit",
    "bash": "execute",
    "grep": "search",
    "glob": "search",
    "recall": "search",
    "web_fetch": "fetch",
    "web_search": "fetch",
    "browser_fetch": "fetch",
    "github_read": "fetch",
    "tasks_set": "think",
    "lsp_definition": "search",
    "lsp_references": "search",
    "lsp_symbols": "search",
    "lsp_hover": "read",
    "lsp_diagnostics": "read",
    "lsp_rename": "edit",
}

EDITING_TOOLS = frozenset({"edit", "write"})
"""Tools whose change an editor shows as a diff (ACP ``diff`` content)."""

OUTPUT_SHOWN_CHARS = 16_000
"""Of a tool's output, what an editor is shown; the model reads it whole."""

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


@dataclass(frozen=True, slots=True)
class Location:
    """A file (absolute) and, when known, a 1-based line a tool call touches."""

    path: str
    line: int | None = None


@dataclass(frozen=True, slots=True)
class FileDiff:
    """A change to show as a diff: the text replaced and what replaces it.

    ``old`` is None for a file written whole (created, or its old content not
    known to the frontend).
    """

    path: str
    old: str | None
    new: str


def kind_of(name: str) -> ToolKind:
    """ACP's kind of a kfd tool (MCP tools and unknown ones are ``other``)."""
    return _KINDS.get(name, "other")


def title_of(name: str, arguments: dict[str, Any], summary: str) -> str:
    """A short title for the call, as an editor lists it."""
    if name == "bash":
        command = str(arguments.get("command", summary)).strip()
        first = command.splitlines()[0] if command else ""
        more = " …" if "\n" in command else ""
        return f"`{first}{more}`" if first else "bash"
    label = {"read": "Read", "edit": "Edit", "write": "Write"}.get(name, name)
    return f"{label} {summary}".strip() if summary else label


def absolute(path: str, cwd: str) -> str:
    """``path`` (as the model wrote it) made absolute against the workspace."""
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))


def locations_of(name: str, arguments: dict[str, Any], cwd: str) -> list[Location]:
    """The files a call touches, from its arguments (reads: from the asked line)."""
    path = arguments.get("path")
    if not isinstance(path, str) or not path:
        if name in ("grep", "glob"):
            return [Location(cwd)]
        return []
    line = None
    if name == "read":
        offset = arguments.get("offset", 1)
        line = offset if isinstance(offset, int) and offset >= 1 else 1
    return [Location(absolute(path, cwd), line)]


def diff_of(name: str, arguments: dict[str, Any], cwd: str) -> FileDiff | None:
    """The change an ``edit`` or ``write`` call asks for, from its arguments."""
    path = arguments.get("path")
    if name not in EDITING_TOOLS or not isinstance(path, str) or not path:
        return None
    if name == "edit":
        old, new = arguments.get("old_string"), arguments.get("new_string")
        if isinstance(old, str) and isinstance(new, str):
            return FileDiff(absolute(path, cwd), old, new)
        return None
    content = arguments.get("content")
    return FileDiff(absolute(path, cwd), None, content) if isinstance(content, str) else None


def first_changed_line(unified_diff: str) -> int | None:
    """The line (1-based, in the new file) of the first change in a unified diff."""
    line: int | None = None
    for text in unified_diff.splitlines():
        hunk = _HUNK.match(text)
        if hunk is not None:
            line = int(hunk.group(1))
            continue
        if line is None or text.startswith(("---", "+++")):
            continue
        if text.startswith(("+", "-")):
            return max(line, 1)
        if text.startswith(" "):
            line += 1
    return None


def shown_output(output: str, limit: int = OUTPUT_SHOWN_CHARS) -> str:
    """A tool's output as far as an editor shows it: the head, and how much is left out."""
    if len(output) <= limit:
        return output
    return f"{output[:limit]}\n[… {len(output) - limit:,} more characters]"


def tail(text: str, limit: int = OUTPUT_SHOWN_CHARS) -> str:
    """The end of a running command's output, as an editor shows it while it runs."""
    if len(text) <= limit:
        return text
    return f"[… {len(text) - limit:,} characters before]\n{text[-limit:]}"


def fenced(text: str, language: str = "") -> str:
    """``text`` in a Markdown code fence long enough for any backticks inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"{fence}{language}\n{body}{fence}"
