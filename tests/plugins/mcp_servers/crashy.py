"""A tiny MCP server for tests: tools that answer, hang, or kill the server.

Run as ``python crashy.py`` (stdio). ``echo`` answers; ``crash`` exits the
process in the middle of the call; ``hang`` never answers. Each start appends a
line to the file named by ``CRASHY_STARTS`` (when set), so a test can count
restarts.

``python crashy.py --http TOKEN`` serves streamable HTTP on a free port of
127.0.0.1 instead, prints ``ready PORT`` once listening, and refuses (401) any
request without ``Authorization: Bearer TOKEN``.
"""

from __future__ import annotations

import asyncio
import os
import sys

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


def serve_http(token: str) -> None:
    import socket

    import uvicorn
    from starlette.responses import PlainTextResponse

    app = server.streamable_http_app()

    async def guarded(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        headers = dict(scope.get("headers") or [])
        if scope["type"] == "http" and headers.get(b"authorization") != f"Bearer {token}".encode():
            await PlainTextResponse("no valid token", status_code=401)(scope, receive, send)
            return
        await app(scope, receive, send)

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    print(f"ready {listener.getsockname()[1]}", flush=True)
    config = uvicorn.Config(guarded, log_level="warning", lifespan="on")
    asyncio.run(uvicorn.Server(config).serve(sockets=[listener]))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        serve_http(sys.argv[2])
        sys.exit(0)
    starts = os.environ.get("CRASHY_STARTS")
    if starts:
        with open(starts, "a") as log:
            log.write(f"{os.getpid()}\n")
    server.run("stdio")
