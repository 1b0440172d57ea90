"""Fixtures for the built-in plugin tests: a real git repository and a real context."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kfd.agent.toolcall import CallContext
from kfd.sandbox import pod, reuse

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty git repository (a workspace, as the daemon would see one)."""
    workspace = tmp_path / "repo"
    workspace.mkdir()
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    return workspace.resolve()


@pytest.fixture
def private_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home of the test's own, with kfd's XDG directories in it: outside ``/tmp``
    (a sandbox has its own), and no layout remembered for another home."""
    directory = Path(tempfile.mkdtemp(prefix="kfd-home-", dir="/var/tmp"))
    (directory / ".config").mkdir()
    monkeypatch.setenv("HOME", str(directory))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(directory / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(directory / ".local" / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(directory / ".cache"))
    reuse.forget()
    try:
        yield directory
    finally:
        reuse.forget()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def state() -> dict[str, Any]:
    """The plugin's session state, shared by every call of one test."""
    return {}


@pytest.fixture
def ctx(repo: Path, state: dict[str, Any]) -> CallContext:
    """A call context in ``repo``; every call of a test shares its state."""
    return CallContext(session_id="s-test", workspace=repo, state=state)


@pytest.fixture(params=["own sandbox", "pod"])
def entry(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """How a test's bash commands are confined: each in a bubblewrap of its own, or
    (``pod``) in the session's pod from the first command on (as if every layout were
    remembered), which must then take every command offered to it."""
    offered: list[bool] = []
    if request.param == "pod":
        monkeypatch.setattr(reuse, "remembered", lambda _layout: True)
        enter = pod.enter

        async def counted(*args: Any, **kwargs: Any) -> pod.PodProcess | None:
            process = await enter(*args, **kwargs)
            offered.append(process is not None)
            return process

        monkeypatch.setattr(pod, "enter", counted)
    pod.close()
    yield request.param
    pod.close()
    assert all(offered), f"{offered.count(False)} of {len(offered)} commands entered no pod"
