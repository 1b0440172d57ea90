"""Fixtures shared by every test directory (kfd's own are in `kfd.testing.fixtures`)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["kfd.testing.fixtures"]

CRASHY_MCP = Path(__file__).parent / "plugins" / "mcp_servers" / "crashy.py"


@dataclass(frozen=True)
class HttpMcpServer:
    url: str
    """Its streamable HTTP endpoint (``/mcp``)."""
    token: str
    """The bearer token it wants; without it, HTTP 401."""


@pytest.fixture
def http_server() -> Iterator[HttpMcpServer]:
    """The crashy MCP server over streamable HTTP on 127.0.0.1, wanting a token."""
    token = "s3cret-http-token-7a1b"
    server = subprocess.Popen(
        [sys.executable, str(CRASHY_MCP), "--http", token],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready = server.stdout.readline().split()  # printed once it listens
        assert ready and ready[0] == "ready", ready
        yield HttpMcpServer(f"http://127.0.0.1:{ready[1]}/mcp", token)
    finally:
        server.terminate()
        server.wait(10)
