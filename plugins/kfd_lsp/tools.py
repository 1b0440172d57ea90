"""The ``lsp_*`` tools: diagnostics, definition, references, hover, symbols, rename."""

from __future__ import annotations

import asyncio
import difflib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from kfd.api import (
    NotBeneath,
    PathAccess,
    Preview,
    Tool,
    ToolContext,
    ToolError,
    ToolResult,
    open_beneath,
)

from .manager import MAX_FILE_BYTES, LspManager, Synced, read_text

if TYPE_CHECKING:
    from lsprotocol import types as lsp

# lsprotocol and pygls are imported by each call, not at daemon start (they
# cost about half a second): every function below that needs them says so.

MAX_LOCATIONS = 100

Path_ = Annotated[
    str, msgspec.Meta(max_length=4096, description="The file, relative to the workspace.")
]
Line = Annotated[int, msgspec.Meta(ge=1, description="1-based line of the symbol.")]
Symbol = Annotated[
    str,
    msgspec.Meta(
        max_length=200,
        description="The symbol's name as written on that line (its first occurrence is used); "
        "empty: the line's first non-blank character.",
    ),
]


class FileArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A file."""

    path: Path_


class PositionArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A symbol in a file, by line and name."""

    path: Path_
    line: Line
    symbol: Symbol = ""


class SymbolsArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A file's outline, or a search of the workspace's symbols."""

    path: Annotated[
        str, msgspec.Meta(max_length=4096, description="A file whose outline to list.")
    ] = ""
    query: Annotated[
        str,
        msgspec.Meta(
            max_length=200, description="Instead of path: search the workspace for symbols."
        ),
    ] = ""


class RenameArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A symbol to rename everywhere."""

    path: Path_
    line: Line
    symbol: Symbol = ""
    new_name: Annotated[
        str, msgspec.Meta(min_length=1, max_length=200, description="The new name.")
    ]


class _LspTool:
    """What the lsp tools share: the manager, and the file a call is about."""

    def __init__(self, manager: LspManager) -> None:
        self.manager = manager

    async def _sync(self, ctx: ToolContext, path: str) -> tuple[Path, Synced]:
        resolved = ctx.resolve(path)
        return resolved, await self.manager.sync(ctx.workspace, resolved, ctx.sandbox)

    async def _position(
        self, ctx: ToolContext, args: PositionArgs | RenameArgs
    ) -> tuple[Synced, lsp.TextDocumentPositionParams]:
        from lsprotocol import types as lsp

        _path, synced = await self._sync(ctx, args.path)
        lines = synced.text.splitlines()
        if args.line > len(lines):
            raise ToolError(f"{args.path} has {len(lines)} lines; line {args.line} does not exist")
        text = lines[args.line - 1]
        if args.symbol:
            column = text.find(args.symbol)
            if column < 0:
                raise ToolError(
                    f"{args.symbol!r} is not on line {args.line} of {args.path}: {text.strip()!r}"
                )
        else:
            column = len(text) - len(text.lstrip())
        # LSP counts UTF-16 code units; characters outside the BMP count twice.
        column = len(text[:column].encode("utf-16-le")) // 2
        return synced, lsp.TextDocumentPositionParams(
            text_document=lsp.TextDocumentIdentifier(uri=synced.uri),
            position=lsp.Position(line=args.line - 1, character=column),
        )

    def _timeout(self) -> float:
        return self.manager.settings().request_timeout_s


class _PositionTool(_LspTool, Tool[PositionArgs]):
    """A read-only question about the symbol at a position."""

    Args = PositionArgs
    read_only = True

    def summary(self, args: PositionArgs) -> str:
        return f"{args.symbol or 'line'} at {args.path}:{args.line}"

    def paths(self, args: PositionArgs) -> list[PathAccess]:
        return [PathAccess(args.path, write=False)]


class DiagnosticsTool(_LspTool, Tool[FileArgs]):
    name = "lsp_diagnostics"
    description = "A file's errors and warnings from its language server (type checker, linter)."
    Args = FileArgs
    read_only = True

    def summary(self, args: FileArgs) -> str:
        return args.path

    def paths(self, args: FileArgs) -> list[PathAccess]:
        return [PathAccess(args.path, write=False)]

    async def run(self, args: FileArgs, ctx: ToolContext) -> ToolResult:
        from . import render

        found = await self.manager.diagnostics(ctx.workspace, ctx.resolve(args.path), ctx.sandbox)
        if found is None:
            wait = self.manager.settings().diagnostics_wait_s
            return ToolResult(
                output=f"the language server sent no diagnostics for {args.path} within "
                f"{wait:g} s; try again"
            )
        if not found:
            return ToolResult(output=f"{args.path}: no problems found")
        lines = [render.diagnostic(args.path, item) for item in found]
        return ToolResult(output="\n".join(lines))


class DefinitionTool(_PositionTool):
    name = "lsp_definition"
    description = (
        "Where a symbol is defined: give the file, the line and the symbol's name on that line."
    )

    async def run(self, args: PositionArgs, ctx: ToolContext) -> ToolResult:
        from lsprotocol import types as lsp

        synced, position = await self._position(ctx, args)
        params = lsp.DefinitionParams(
            text_document=position.text_document, position=position.position
        )
        found = await synced.connection.request(
            lsp.TEXT_DOCUMENT_DEFINITION, params, self._timeout()
        )
        return ToolResult(output=await _locations(found, ctx.workspace, "definition"))


class ReferencesTool(_PositionTool):
    name = "lsp_references"
    description = "Every use of a symbol in the workspace: the file, the line and the name."

    async def run(self, args: PositionArgs, ctx: ToolContext) -> ToolResult:
        from lsprotocol import types as lsp

        synced, position = await self._position(ctx, args)
        params = lsp.ReferenceParams(
            text_document=position.text_document,
            position=position.position,
            context=lsp.ReferenceContext(include_declaration=True),
        )
        found = await synced.connection.request(
            lsp.TEXT_DOCUMENT_REFERENCES, params, self._timeout()
        )
        return ToolResult(output=await _locations(found, ctx.workspace, "reference"))


class HoverTool(_PositionTool):
    name = "lsp_hover"
    description = "A symbol's type and documentation, as the language server shows on hover."

    async def run(self, args: PositionArgs, ctx: ToolContext) -> ToolResult:
        from lsprotocol import types as lsp

        from . import render

        synced, position = await self._position(ctx, args)
        params = lsp.HoverParams(text_document=position.text_document, position=position.position)
        found = await synced.connection.request(lsp.TEXT_DOCUMENT_HOVER, params, self._timeout())
        if found is None:
            return ToolResult(output="nothing to show for that position")
        return ToolResult(output=render.hover_text(found.contents).strip())


class SymbolsTool(_LspTool, Tool[SymbolsArgs]):
    name = "lsp_symbols"
    description = (
        "A file's outline (classes, functions, ... with lines), or with query instead of path, "
        "the workspace's symbols matching it."
    )
    Args = SymbolsArgs
    read_only = True

    def summary(self, args: SymbolsArgs) -> str:
        return args.path or args.query

    def paths(self, args: SymbolsArgs) -> list[PathAccess]:
        return [PathAccess(args.path, write=False)] if args.path else []

    async def run(self, args: SymbolsArgs, ctx: ToolContext) -> ToolResult:
        from lsprotocol import types as lsp

        from . import render

        if bool(args.path) == bool(args.query):
            raise ToolError("give either path (a file's outline) or query (a workspace search)")
        if args.path:
            synced = (await self._sync(ctx, args.path))[1]
            params: Any = lsp.DocumentSymbolParams(
                text_document=lsp.TextDocumentIdentifier(uri=synced.uri)
            )
            found = await synced.connection.request(
                lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL, params, self._timeout()
            )
            lines = render.symbols(found)
            return ToolResult(output="\n".join(lines) or f"{args.path} defines no symbols")
        anchor = await asyncio.to_thread(_first_handled, self.manager, ctx.workspace)
        if anchor is None:
            raise ToolError("no file in the workspace is handled by an installed language server")
        synced = (await self._sync(ctx, str(anchor)))[1]
        found = await synced.connection.request(
            lsp.WORKSPACE_SYMBOL, lsp.WorkspaceSymbolParams(query=args.query), self._timeout()
        )
        lines = []
        for item in (found or [])[:MAX_LOCATIONS]:
            kind = lsp.SymbolKind(item.kind).name.lower()
            if isinstance(item.location, lsp.Location):
                label, line, _ = render.location(item.location, ctx.workspace)
                lines.append(f"{kind} {item.name}  {label}:{line}")
            else:
                lines.append(
                    f"{kind} {item.name}  {render.where(item.location.uri, ctx.workspace)}"
                )
        return ToolResult(output="\n".join(lines) or f"no symbol matches {args.query!r}")


def _first_handled(manager: LspManager, workspace: Path, limit: int = 5000) -> Path | None:
    """A file of the workspace some server handles, to start that server on."""
    for seen, path in enumerate(workspace.rglob("*")):
        if seen >= limit:
            return None
        if ".git" not in path.parts and path.is_file() and manager.handles(path):
            return path
    return None


class RenameTool(_LspTool, Tool[RenameArgs]):
    name = "lsp_rename"
    description = (
        "Rename a symbol everywhere it is used, as the language server understands the code "
        "(file, line, current name, new_name). Returns the combined diff."
    )
    Args = RenameArgs
    edits_files = True

    def summary(self, args: RenameArgs) -> str:
        return f"{args.symbol or 'line'} → {args.new_name} at {args.path}:{args.line}"

    def paths(self, args: RenameArgs) -> list[PathAccess]:
        return [PathAccess(args.path, write=True)]

    def session_rule(self, args: RenameArgs) -> str:
        return f"lsp_rename({args.path})"

    async def preview(self, args: RenameArgs, ctx: ToolContext) -> Preview:
        changes = await self._plan(args, ctx)
        return Preview(summary=self.summary(args), diff=_diff(changes, ctx.workspace))

    async def run(self, args: RenameArgs, ctx: ToolContext) -> ToolResult:
        changes = await self._plan(args, ctx)
        diff = _diff(changes, ctx.workspace)
        await asyncio.to_thread(_write_all, changes, ctx.workspace)
        count = len(changes)
        summary = f"Renamed {args.symbol or 'the symbol'} to {args.new_name} in {count} file" + (
            "s" if count != 1 else ""
        )
        return ToolResult(output=f"{summary}.\n{diff}", display=Preview(summary=summary, diff=diff))

    async def _plan(self, args: RenameArgs, ctx: ToolContext) -> dict[Path, tuple[str, str]]:
        from lsprotocol import types as lsp
        from pygls.uris import to_fs_path

        synced, position = await self._position(ctx, args)
        # Some servers (pyright) rename only in the files they have open: open
        # every file that refers to the symbol first.
        references = await synced.connection.request(
            lsp.TEXT_DOCUMENT_REFERENCES,
            lsp.ReferenceParams(
                text_document=position.text_document,
                position=position.position,
                context=lsp.ReferenceContext(include_declaration=True),
            ),
            self._timeout(),
        )
        for uri in {ref.uri for ref in references or []} - {synced.uri}:
            other = Path(to_fs_path(uri) or uri)
            if other.is_relative_to(ctx.workspace):
                await self.manager.sync(ctx.workspace, other, ctx.sandbox)
        params = lsp.RenameParams(
            text_document=position.text_document,
            position=position.position,
            new_name=args.new_name,
        )
        edit = await synced.connection.request(lsp.TEXT_DOCUMENT_RENAME, params, self._timeout())
        if edit is None:
            raise ToolError("the language server cannot rename anything at that position")
        return await asyncio.to_thread(_apply, edit, ctx.workspace)


async def _locations(found: Any, workspace: Path, what: str) -> str:
    from . import render

    items = list(found) if isinstance(found, list | tuple) else [found] if found else []
    if not items:
        return f"no {what} found"
    lines = []
    cache: dict[str, list[str]] = {}
    for item in items[:MAX_LOCATIONS]:
        label, line, column = render.location(item, workspace)
        text = await asyncio.to_thread(_line_of, workspace, label, line, cache)
        lines.append(f"{label}:{line}:{column}: {text}")
    more = len(items) - MAX_LOCATIONS
    return "\n".join(lines) + (f"\n… and {more} more" if more > 0 else "")


def _line_of(workspace: Path, label: str, line: int, cache: dict[str, list[str]]) -> str:
    if label not in cache:
        path = Path(os.path.normpath(workspace / label))
        try:
            # Reached without following a link, like every file kfd reads for the model.
            cache[label] = read_text(workspace, path).splitlines()
        except ToolError:
            cache[label] = []
    lines = cache[label]
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def _apply(edit: lsp.WorkspaceEdit, workspace: Path) -> dict[Path, tuple[str, str]]:
    """Each file's (old, new) text after the edit (nothing written yet).

    The server names the files: one outside the workspace is refused, and each
    is read without following a link (`kfd.api.open_beneath`).
    """
    from lsprotocol import types as lsp
    from pygls.uris import to_fs_path

    per_file: dict[str, list[lsp.TextEdit]] = {}
    for change in edit.document_changes or []:
        if not isinstance(change, lsp.TextDocumentEdit):
            raise ToolError("the rename would create, move or delete files; do it by hand")
        per_file.setdefault(change.text_document.uri, []).extend(
            e for e in change.edits if isinstance(e, lsp.TextEdit)
        )
    for uri, edits in (edit.changes or {}).items():
        per_file.setdefault(uri, []).extend(edits)
    if not per_file:
        raise ToolError("the language server found nothing to rename there")
    result: dict[Path, tuple[str, str]] = {}
    for uri, edits in per_file.items():
        path = Path(os.path.normpath(to_fs_path(uri) or uri))
        if not path.is_absolute() or not path.is_relative_to(workspace):
            raise ToolError(f"the rename would change {path}, outside the workspace; refused")
        old = read_text(workspace, path)
        result[path] = (old, _edited(old, edits))
    return result


def _edited(text: str, edits: list[lsp.TextEdit]) -> str:

    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(position: lsp.Position) -> int:
        line = min(position.line, len(starts) - 1)
        return min(starts[line] + position.character, len(text))

    for edit in sorted(
        edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True
    ):
        text = text[: offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end) :]
    return text


def _diff(changes: dict[Path, tuple[str, str]], workspace: Path) -> str:
    from . import render

    parts = []
    for path, (old, new) in sorted(changes.items()):
        label = render.where(path.as_uri(), workspace)
        parts.extend(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                f"a/{label}",
                f"b/{label}",
            )
        )
    return "".join(parts)


def _write_all(changes: dict[Path, tuple[str, str]], workspace: Path) -> None:
    """Write every file of a rename: each checked and replaced through its directory
    held open, following no link (`kfd.api.open_beneath`)."""
    for path, (old, _new) in changes.items():
        if read_text(workspace, path) != old:
            raise ToolError(f"{path} changed since the rename was planned; run it again")
    for path, (old, new) in changes.items():
        try:
            with open_beneath(workspace, path) as target:
                found = target.read(MAX_FILE_BYTES)
                if found is None or found[0].decode("utf-8", "replace") != old:
                    raise ToolError(f"{path} changed since the rename was planned; run it again")
                # Atomic: a crash leaves the old file or the new one, never half of each.
                target.replace(new.encode("utf-8"), found[1].st_mode)
        except NotBeneath as exc:
            raise ToolError(str(exc)) from None
