"""The language-server tools: ``lsp`` (definition, references, hover, symbols,
diagnostics; read-only) and ``lsp_rename`` (edits files).

The read-only questions are one tool with an ``operation``: they share their
arguments, and one definition costs the model a third of what five did.

What an answer shows of a file the model did not name meets the rules of its
own ``read`` (`kfd_lsp.withheld`). A rename changes only the files its call
named (``path`` and ``files``, which the permission decision saw), none a
read rule restricts, and says which others it would change.
"""

from __future__ import annotations

import asyncio
import difflib
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

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
from .withheld import LITERALS_NOTE, Withheld, scrub_literals

if TYPE_CHECKING:
    from lsprotocol import types as lsp

# lsprotocol and pygls are imported by each call, not at daemon start (they
# cost about half a second): every function below that needs them says so.

MAX_LOCATIONS = 100
MAX_RENAMED_FILES = 200

Operation = Literal["definition", "references", "hover", "symbols", "diagnostics"]
AT_A_LINE = ("definition", "references", "hover")

Path_ = Annotated[str, msgspec.Meta(max_length=4096)]
Symbol = Annotated[
    str, msgspec.Meta(max_length=200, description="Its name on the line (default: first word).")
]


class LspArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A question to the language server about a file, a symbol, or the workspace."""

    operation: Operation
    path: Path_ = ""
    line: Annotated[int, msgspec.Meta(ge=0, description="1-based.")] = 0
    symbol: Symbol = ""
    query: Annotated[str, msgspec.Meta(max_length=200)] = ""


class RenameArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A symbol to rename everywhere."""

    path: Path_
    line: Annotated[int, msgspec.Meta(ge=1)]
    symbol: Symbol = ""
    new_name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    files: Annotated[
        list[Path_],
        msgspec.Meta(max_length=MAX_RENAMED_FILES, description="Other files it changes."),
    ] = msgspec.field(default_factory=list)


class _LspTool:
    """What the lsp tools share: the manager, and the file a call is about."""

    def __init__(self, manager: LspManager) -> None:
        self.manager = manager

    async def unavailable(self, workspace: Path, config: Mapping[str, Any]) -> str | None:
        """Offered only where an installed server takes a language present."""
        return await self.manager.unavailable(workspace)

    async def _sync(self, ctx: ToolContext, path: str) -> tuple[Path, Synced]:
        resolved = ctx.resolve(path)
        return resolved, await self.manager.sync(ctx.workspace, resolved, ctx.sandbox)

    async def _position(
        self, ctx: ToolContext, args: LspArgs | RenameArgs
    ) -> tuple[Synced, lsp.TextDocumentPositionParams]:
        from lsprotocol import types as lsp

        path, synced = await self._sync(ctx, args.path)
        lines = synced.text.splitlines()
        if args.line > len(lines):
            raise ToolError(f"{args.path} has {len(lines)} lines; line {args.line} does not exist")
        text = lines[args.line - 1]
        if args.symbol:
            column = text.find(args.symbol)
            if column < 0:
                message = f"{args.symbol!r} is not on line {args.line} of {args.path}"
                # The line is quoted only where the model may read it: this error may
                # reach it before anyone was asked (a preview's).
                if await asyncio.to_thread(Withheld(ctx).rule_for, path) is None:
                    message += f": {text.strip()!r}"
                raise ToolError(message)
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


class LspTool(_LspTool, Tool[LspArgs]):
    """Read-only questions to the language server of a file's language."""

    name = "lsp"
    description = (
        "Ask the language server: a symbol's definition, references or hover (type, docs) "
        "at path and line; a file's symbols, or the workspace's matching query; a file's "
        "diagnostics."
    )
    Args = LspArgs
    schema_budget = 580
    read_only = True

    async def unavailable(self, workspace: Path, config: Mapping[str, Any]) -> str | None:
        """Offered only where an installed server takes a language present. This
        tool's table is ``[tools.lsp]``, the plugin's settings: they follow it."""
        self.manager.follow(config)
        return await self.manager.unavailable(workspace)

    def summary(self, args: LspArgs) -> str:
        if args.operation in AT_A_LINE:
            return f"{args.operation} of {args.symbol or 'line'} at {args.path}:{args.line}"
        return f"{args.operation} {args.path or args.query}".rstrip()

    def paths(self, args: LspArgs) -> list[PathAccess]:
        return [PathAccess(args.path, write=False)] if args.path else []

    async def run(self, args: LspArgs, ctx: ToolContext) -> ToolResult:
        self.manager.follow(ctx.config)
        answer: Callable[[LspArgs, ToolContext], Awaitable[str]] = getattr(
            self, f"_{args.operation}"
        )
        if args.operation in AT_A_LINE and (not args.path or args.line < 1):
            raise ToolError(f"{args.operation} needs path and line (1-based) of the symbol")
        if args.operation == "diagnostics" and not args.path:
            raise ToolError("diagnostics needs the path of a file")
        return ToolResult(output=await answer(args, ctx))

    async def _diagnostics(self, args: LspArgs, ctx: ToolContext) -> str:
        from . import render

        text, found = await self.manager.diagnostics(
            ctx.workspace, ctx.resolve(args.path), ctx.sandbox
        )
        if found is None:
            wait = self.manager.settings().diagnostics_wait_s
            return (
                f"the language server sent no diagnostics for {args.path} within "
                f"{wait:g} s; try again"
            )
        if not found:
            return f"{args.path}: no problems found"
        lines, scrubbed = render.diagnostics(args.path, found, text)
        return "\n".join(lines) + ("\n" + LITERALS_NOTE if scrubbed else "")

    async def _definition(self, args: LspArgs, ctx: ToolContext) -> str:
        from lsprotocol import types as lsp

        synced, position = await self._position(ctx, args)
        params = lsp.DefinitionParams(
            text_document=position.text_document, position=position.position
        )
        found = await synced.connection.request(
            lsp.TEXT_DOCUMENT_DEFINITION, params, self._timeout()
        )
        return await _locations(found, ctx, "definition")

    async def _references(self, args: LspArgs, ctx: ToolContext) -> str:
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
        return await _locations(found, ctx, "reference")

    async def _hover(self, args: LspArgs, ctx: ToolContext) -> str:
        from lsprotocol import types as lsp

        from . import render

        synced, position = await self._position(ctx, args)
        # A hover shows the definition's type and value (``Literal['...']``): first
        # where the symbol is defined, and nothing from a file the model may not read.
        definition = await synced.connection.request(
            lsp.TEXT_DOCUMENT_DEFINITION,
            lsp.DefinitionParams(text_document=position.text_document, position=position.position),
            self._timeout(),
        )
        withheld = await asyncio.to_thread(_judged, _listed(definition), ctx)
        name = repr(args.symbol) if args.symbol else f"the symbol on line {args.line}"
        if withheld.restricted:
            rules = ", ".join(sorted(withheld.rules))
            return (
                f"the hover text of {name} is withheld: it is defined in a file read rules "
                f"keep from you ({rules}); do not try to read it another way"
            )
        if withheld.outside:
            where = ", ".join(sorted(str(path) for path in withheld.outside))
            return (
                f"the hover text of {name} is withheld: it is defined outside the workspace, "
                f"in {where}; read it with the read tool (reading outside the workspace asks "
                "the user)"
            )
        params = lsp.HoverParams(text_document=position.text_document, position=position.position)
        found = await synced.connection.request(lsp.TEXT_DOCUMENT_HOVER, params, self._timeout())
        if found is None:
            return "nothing to show for that position"
        text, scrubbed = scrub_literals(render.hover_text(found.contents).strip(), synced.text)
        return text + ("\n" + LITERALS_NOTE if scrubbed else "")

    async def _symbols(self, args: LspArgs, ctx: ToolContext) -> str:
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
            return "\n".join(render.symbols(found)) or f"{args.path} defines no symbols"
        anchor = await asyncio.to_thread(_first_handled, self.manager, ctx.workspace)
        if anchor is None:
            raise ToolError("no file in the workspace is handled by an installed language server")
        synced = (await self._sync(ctx, str(anchor)))[1]
        found = await synced.connection.request(
            lsp.WORKSPACE_SYMBOL, lsp.WorkspaceSymbolParams(query=args.query), self._timeout()
        )
        items = list(found or [])[:MAX_LOCATIONS]
        # A symbol's name is text of its file: only files the model may read show theirs.
        withheld = Withheld(ctx)
        shown = await asyncio.to_thread(
            lambda: [withheld.judge(render.path_of(item.location.uri)) for item in items]
        )
        lines = []
        for item, may in zip(items, shown, strict=True):
            if may != "text":
                continue
            kind = lsp.SymbolKind(item.kind).name.lower()
            if isinstance(item.location, lsp.Location):
                label, line, _ = render.location(item.location, ctx.workspace)
                lines.append(f"{kind} {item.name}  {label}:{line}")
            else:
                lines.append(
                    f"{kind} {item.name}  {render.where(item.location.uri, ctx.workspace)}"
                )
        text = "\n".join(lines) or f"no symbol matches {args.query!r}"
        return text + withheld.note("symbols", outside_shown=False)


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
        "Rename the symbol at a line of a file everywhere it is used, as the language server "
        "sees the code; returns the diff."
    )
    Args = RenameArgs
    schema_budget = 520
    edits_files = True

    def summary(self, args: RenameArgs) -> str:
        return f"{args.symbol or 'line'} → {args.new_name} at {args.path}:{args.line}"

    def paths(self, args: RenameArgs) -> list[PathAccess]:
        """Every file the call may change: the permission decision weighs each (and
        the call refuses to change any other)."""
        return [PathAccess(path, write=True) for path in (args.path, *args.files)]

    def session_rule(self, args: RenameArgs) -> str:
        """``lsp_rename(<path>)``, or with the other files: ``lsp_rename(a.py, b.py)``."""
        return f"lsp_rename({', '.join((args.path, *args.files))})"

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

        withheld = Withheld(ctx)
        rule = await asyncio.to_thread(withheld.rule_for, ctx.resolve(args.path))
        if rule is not None:
            raise ToolError(
                f"{args.path} is restricted by the read rule {rule}: lsp_rename changes no "
                "file a read rule denies or asks about; leave it to the user"
            )
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
        per_file = _per_file(edit, ctx.workspace)
        named = {ctx.resolve(path) for path in (args.path, *args.files)}
        await asyncio.to_thread(_refuse_unnamed, per_file, named, withheld, ctx.workspace)
        return await asyncio.to_thread(_apply, per_file, ctx.workspace)


def _refuse_unnamed(
    per_file: Mapping[Path, object], named: set[Path], withheld: Withheld, workspace: Path
) -> None:
    """Refuse a rename that changes a file the call did not name (no decision saw
    it), or one the model may not read (blocking: it resolves links).

    Nothing of those files' content is said: the error may reach the model
    before anyone was asked (a preview's).
    """
    from . import render

    for path in per_file:
        withheld.judge(path)
    if withheld.restricted:
        count = len(withheld.restricted)
        rules = ", ".join(sorted(withheld.rules))
        raise ToolError(
            f"the rename would change {count} file{'s' if count != 1 else ''} read rules "
            f"restrict ({rules}): lsp_rename changes no such file; leave this rename to the "
            "user, and do not try to read those files another way"
        )
    if withheld.outside:
        where = ", ".join(sorted(str(path) for path in withheld.outside))
        raise ToolError(f"the rename would change {where}, outside the workspace; refused")
    unnamed = sorted(render.where(path.as_uri(), workspace) for path in set(per_file) - named)
    if unnamed:
        raise ToolError(
            f"the rename would also change {', '.join(unnamed)}, which this call did not "
            "name: call again with them in files (the user may be asked about them)"
        )


async def _locations(found: Any, ctx: ToolContext, what: str) -> str:
    items = _listed(found)
    if not items:
        return f"no {what} found"
    return await asyncio.to_thread(_shown_locations, items, ctx, what)


def _listed(found: Any) -> list[Any]:
    """A server's Location, Location list or LocationLink list as a list."""
    return list(found) if isinstance(found, list | tuple) else [found] if found else []


def _judged(items: list[Any], ctx: ToolContext) -> Withheld:
    """What the model may see of the files of these locations (blocking)."""
    from . import render

    withheld = Withheld(ctx)
    for item in items:
        withheld.judge(render.path_of(render.location_uri(item)))
    return withheld


def _shown_locations(items: list[Any], ctx: ToolContext, what: str) -> str:
    """Each location with its line, as far as the model may read its file (blocking)."""
    from . import render

    withheld = Withheld(ctx)
    lines = []
    cache: dict[Path, list[str]] = {}
    for item in items[:MAX_LOCATIONS]:
        path = render.path_of(render.location_uri(item))
        shown = withheld.judge(path)
        if shown == "nothing":
            continue
        label, line, column = render.location(item, ctx.workspace)
        if shown == "path":
            lines.append(f"{label}:{line}:{column}")
            continue
        lines.append(f"{label}:{line}:{column}: {_line_of(ctx.workspace, path, line, cache)}")
    more = len(items) - MAX_LOCATIONS
    text = "\n".join(lines) if lines else f"no {what} shown"
    return text + (f"\n… and {more} more" if more > 0 else "") + withheld.note(f"{what}s")


def _line_of(workspace: Path, path: Path, line: int, cache: dict[Path, list[str]]) -> str:
    if path not in cache:
        try:
            # Reached without following a link, like every file kfd reads for the model.
            cache[path] = read_text(workspace, path).splitlines()
        except ToolError:
            cache[path] = []
    lines = cache[path]
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def _per_file(edit: lsp.WorkspaceEdit, workspace: Path) -> dict[Path, list[lsp.TextEdit]]:
    """The text edits of each file the rename changes (none read yet).

    The server names the files: one outside the workspace is refused.
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
    result: dict[Path, list[lsp.TextEdit]] = {}
    for uri, edits in per_file.items():
        path = Path(os.path.normpath(to_fs_path(uri) or uri))
        if not path.is_absolute() or not path.is_relative_to(workspace):
            raise ToolError(f"the rename would change {path}, outside the workspace; refused")
        result.setdefault(path, []).extend(edits)
    return result


def _apply(
    per_file: Mapping[Path, list[lsp.TextEdit]], workspace: Path
) -> dict[Path, tuple[str, str]]:
    """Each file's (old, new) text after the edit (nothing written yet); each is
    read without following a link (`kfd.api.open_beneath`)."""
    result: dict[Path, tuple[str, str]] = {}
    for path, edits in per_file.items():
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
