"""After an ``edit`` or ``write``: the errors the language server now sees in that file."""

from __future__ import annotations

from kfd.api import FinishedCall, ToolContext, ToolError, ToolResult

from .manager import LspManager
from .withheld import LITERALS_NOTE

MAX_SHOWN = 20


class DiagnosticsAfterEdit:
    """An `kfd.api.AfterToolHook`: appends the file's errors to a file tool's result."""

    name = "lsp-diagnostics-after-edit"

    def __init__(self, manager: LspManager) -> None:
        self.manager = manager

    async def after_tool(
        self, call: FinishedCall, result: ToolResult, ctx: ToolContext
    ) -> str | None:
        if result.is_error or not call.edits_files or call.tool.startswith("lsp_"):
            return None
        for access in call.paths:
            if access.write:
                self.manager.wrote(ctx.workspace, ctx.resolve(access.path))
        try:
            if not self.manager.settings().after_edit:
                return None
        except ToolError:
            return None
        notes = []
        for access in call.paths:
            if not access.write:
                continue
            path = ctx.resolve(access.path)
            if not self.manager.handles(path):
                continue
            try:
                text, found = await self.manager.diagnostics(ctx.workspace, path, ctx.sandbox)
            except ToolError as exc:
                notes.append(f"(no diagnostics for {access.path}: {exc})")
                continue
            errors = [d for d in found or [] if (d.severity or 1) == 1]
            if not errors:
                continue
            from . import render  # lsprotocol: imported on first use

            lines, scrubbed = render.diagnostics(access.path, errors[:MAX_SHOWN], text)
            more = len(errors) - MAX_SHOWN
            if more > 0:
                lines.append(f"… and {more} more")
            if scrubbed:
                lines.append(LITERALS_NOTE)
            count = len(errors)
            notes.append(
                f"The language server reports {count} error{'s' if count > 1 else ''} in "
                f"{access.path} after this change:\n" + "\n".join(lines)
            )
        return "\n\n".join(notes) or None
