"""LSP answers as text for the model: paths relative to the workspace, 1-based lines."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.uris import to_fs_path

SEVERITY = {1: "error", 2: "warning", 3: "info", 4: "hint"}


def where(uri: str, workspace: Path) -> str:
    path = Path(to_fs_path(uri) or uri)
    try:
        return str(path.relative_to(workspace))
    except ValueError:
        return str(path)


def path_of(uri: str) -> Path:
    """The file a URI names, absolute and normalised."""
    return Path(os.path.normpath(to_fs_path(uri) or uri))


def location_uri(loc: Any) -> str:
    """The URI of a Location or LocationLink."""
    return str(loc.target_uri if isinstance(loc, lsp.LocationLink) else loc.uri)


def diagnostic(label: str, item: lsp.Diagnostic) -> str:
    start = item.range.start
    severity = SEVERITY.get(int(item.severity or 1), "error")
    code = f" [{item.code}]" if item.code is not None else ""
    source = f" ({item.source})" if item.source else ""
    message = " ".join(item.message.split())
    return f"{label}:{start.line + 1}:{start.character + 1}: {severity}: {message}{code}{source}"


def diagnostics(label: str, items: list[lsp.Diagnostic], text: str) -> tuple[list[str], bool]:
    """Each diagnostic as a line, string values of Literal types not in ``text`` (the
    file's) hidden (`kfd_lsp.withheld.scrub_literals`); and whether one was."""
    from .withheld import scrub_literals

    lines = []
    hidden = False
    for item in items:
        line, scrubbed = scrub_literals(diagnostic(label, item), text)
        lines.append(line)
        hidden = hidden or scrubbed
    return lines, hidden


def location(loc: Any, workspace: Path) -> tuple[str, int, int]:
    """(path, 1-based line, 1-based column) of a Location or LocationLink."""
    if isinstance(loc, lsp.LocationLink):
        uri, start = loc.target_uri, loc.target_selection_range.start
    else:
        uri, start = loc.uri, loc.range.start
    return where(uri, workspace), start.line + 1, start.character + 1


def hover_text(contents: Any) -> str:
    if isinstance(contents, lsp.MarkupContent):
        return contents.value
    if isinstance(contents, str):
        return contents
    if isinstance(contents, lsp.MarkedStringWithLanguage):
        return f"```{contents.language}\n{contents.value}\n```"
    if isinstance(contents, list):
        return "\n\n".join(hover_text(part) for part in contents)
    return str(contents)


def symbols(items: Any, depth: int = 0) -> list[str]:
    lines: list[str] = []
    for item in items or []:
        kind = lsp.SymbolKind(item.kind).name.lower() if item.kind else "symbol"
        if isinstance(item, lsp.DocumentSymbol):
            line = item.selection_range.start.line + 1
            lines.append(f"{'  ' * depth}{kind} {item.name} (line {line})")
            lines.extend(symbols(item.children, depth + 1))
        else:
            start = item.location.range.start.line + 1 if hasattr(item.location, "range") else 0
            container = f" in {item.container_name}" if item.container_name else ""
            lines.append(f"{'  ' * depth}{kind} {item.name}{container} (line {start})")
    return lines
