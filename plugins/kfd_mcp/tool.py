"""An MCP server's tool as a kfd tool: ``mcp__<server>__<tool>``, with the server's schema."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import mimetypes
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kfd.api import JsonArgs, Preview, Tool, ToolContext, ToolError, ToolResult

from .server import McpServer, ServerError

if TYPE_CHECKING:
    import mcp_types as types

MAX_DESCRIPTION = 1024
_INVALID = re.compile(r"[^A-Za-z0-9_-]")


def tool_name(server: str, tool: str) -> str:
    """The name the model calls: ``mcp__server__tool``, within the 64 characters providers allow."""
    name = f"mcp__{server}__{_INVALID.sub('_', tool)}"
    if len(name) <= 64:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[:55]}_{digest}"


class McpTool(Tool[JsonArgs]):
    """One tool of one MCP server. Calls are asked for unless a rule allows them."""

    Args = JsonArgs
    network = True

    def __init__(self, server: McpServer, spec: types.Tool, files: Path) -> None:
        self.server = server
        self.remote_name = spec.name
        self.name = tool_name(server.name, spec.name)
        description = " ".join((spec.description or spec.title or spec.name).split())
        # The name says which server and tool; only a name kfd had to change says more.
        renamed = self.name != f"mcp__{server.name}__{spec.name}"
        self.description = description[:MAX_DESCRIPTION] + (
            f" (MCP tool `{spec.name}`)" if renamed else ""
        )
        schema = without_titles(dict(spec.input_schema or {}))
        schema.setdefault("type", "object")
        schema.pop("$schema", None)
        self.parameters = schema
        self.files = files
        self.deferrable = server.config.defer

    def summary(self, args: JsonArgs) -> str:
        text = json.dumps(args.values, ensure_ascii=False, sort_keys=True)
        return text if len(text) <= 120 else text[:119] + "…"

    def session_rule(self, args: JsonArgs) -> str:
        """The tool itself (``mcp__server__tool``): its arguments vary too much to pin."""
        return self.name

    def domains(self, args: JsonArgs, config: Mapping[str, Any]) -> list[str]:
        """The host of a server over HTTP; none for a local (stdio) server."""
        url = self.server.config.url
        host = urlsplit(url).hostname if url else None
        return [host.lower()] if host else []

    async def preview(self, args: JsonArgs, ctx: ToolContext) -> Preview:
        arguments = json.dumps(args.values, ensure_ascii=False, indent=2)
        return Preview(summary=f"{self.remote_name} on MCP server {self.server.name}:\n{arguments}")

    async def run(self, args: JsonArgs, ctx: ToolContext) -> ToolResult:
        try:
            result = await self.server.call(self.remote_name, args.values)
        except ServerError as exc:
            raise ToolError(str(exc)) from None
        # Saving images and blobs writes files: off the event loop.
        output = await asyncio.to_thread(render, result, self.files / ctx.session_id)
        return ToolResult(output=output, is_error=bool(result.is_error), untrusted=True)


def without_titles(node: Any) -> Any:
    """A schema without its ``title`` annotations: they validate nothing, and
    servers built from function signatures title every argument after its own
    name ("repo": {"title": "Repo"}), which the model would pay for in every
    request. Property names are data and stay, whatever they are called."""
    if isinstance(node, list):
        return [without_titles(item) for item in node]
    if not isinstance(node, dict):
        return node
    kept: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "properties" and isinstance(value, dict):
            kept[key] = {name: without_titles(sub) for name, sub in value.items()}
        else:
            kept[key] = without_titles(value)
    return kept


def render(result: types.CallToolResult, files: Path) -> str:
    """A tool result as text: text kept, images and blobs saved as files and named."""
    import mcp_types as types

    parts: list[str] = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        elif isinstance(block, types.ImageContent | types.AudioContent):
            parts.append(_save(block.data, block.mime_type, files, block.type))
        elif isinstance(block, types.EmbeddedResource):
            resource = block.resource
            if isinstance(resource, types.TextResourceContents):
                parts.append(f"[resource {resource.uri}]\n{resource.text}")
            else:
                saved = _save(resource.blob, resource.mime_type or "", files, "resource")
                parts.append(f"[resource {resource.uri}] {saved}")
        elif isinstance(block, types.ResourceLink):
            about = f": {block.description}" if block.description else ""
            parts.append(f"[resource link {block.uri} ({block.name}){about}]")
    if result.structured_content is not None and not parts:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, indent=2))
    return "\n".join(parts) if parts else "(the tool returned nothing)"


def _save(data: str, mime_type: str, files: Path, kind: str) -> str:
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return f"[{kind} ({mime_type}) that is not valid base64: dropped]"
    digest = hashlib.sha256(raw).hexdigest()[:16]
    extension = mimetypes.guess_extension(mime_type or "") or ".bin"
    files.mkdir(parents=True, exist_ok=True)
    path = files / f"{digest}{extension}"
    path.write_bytes(raw)
    return f"[{kind} saved to {path} ({mime_type or 'unknown type'}, {len(raw):,} bytes)]"
