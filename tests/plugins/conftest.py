"""Fixtures for the built-in plugin tests: a real git repository and a real context."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from kfd.agent.toolcall import CallContext

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty git repository (a workspace, as the daemon would see one)."""
    workspace = tmp_path / "repo"
    workspace.mkdir()
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    return workspace.resolve()


@pytest.fixture
def state() -> dict[str, Any]:
    """The plugin's session state, shared by every call of one test."""
    return {}


@pytest.fixture
def ctx(repo: Path, state: dict[str, Any]) -> CallContext:
    """A call context in ``repo``; every call of a test shares its state."""
    return CallContext(session_id="s-test", workspace=repo, state=state)
