"""A tiny MCP server for tests that shows what it can see: a file, a variable.

Run as ``python peek.py`` (stdio). ``peek`` returns a file's text (or why it
cannot), ``variable`` a variable of its environment; a test tells from them
whether the server runs confined (a canary in ``~/.ssh`` unreadable, the
daemon's secrets absent, the workspace there).
"""

from __future__ import annotations

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("peek")


@server.tool()
def peek(path: str) -> str:
    """The text of the file at path, or why it cannot be read."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"


@server.tool()
def variable(name: str) -> str:
    """The value of an environment variable, or (unset)."""
    return os.environ.get(name, "(unset)")


@server.tool()
def where() -> str:
    """The working directory."""
    return os.getcwd()


if __name__ == "__main__":
    server.run("stdio")
