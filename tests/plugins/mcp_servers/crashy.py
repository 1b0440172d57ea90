"""A tiny MCP server (stdio) for tests: tools that answer, hang, or kill the server.

Run as ``python crashy.py``. ``echo`` answers; ``crash`` exits the process in
the middle of the call; ``hang`` never answers. Each start appends a line to the file named by
``CRASHY_STARTS`` (when set), so a test can count restarts.
"""

from __future__ import annotations

import asyncio
import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("crashy")


@server.tool()
def echo(text: str) -> str:
    """Say the text back."""
    return f"echo: {text}"


@server.tool()
def crash() -> str:
    """Exit the server in the middle of the call."""
    os._exit(3)


@server.tool()
async def hang() -> str:
    """Never answer."""
    await asyncio.Event().wait()
    return "never"


if __name__ == "__main__":
    starts = os.environ.get("CRASHY_STARTS")
    if starts:
        with open(starts, "a") as log:
            log.write(f"{os.getpid()}\n")
    server.run("stdio")
