"""pytest fixtures for kfd and plugin tests. Enable with::

    pytest_plugins = ["kfd.testing.fixtures"]

``model_server``  a running `ScriptedModelServer` (add replies with ``.add``)
``workspace``     a temporary git repository with one committed file
``make_daemon``   a factory for `KfdDaemon` processes pointed at ``model_server``
``daemon``        one started daemon
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kfd.testing.daemon import FAST_RETRIES, KfdDaemon
from kfd.testing.model_server import ScriptedModelServer


@pytest.fixture
def model_server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as server:
        yield server


def git_repo(path: Path) -> Path:
    """Make ``path`` a git repository with one committed file, README.md."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "README.md").write_text("# demo\n")

    def git(*args: str) -> None:
        subprocess.run(
            ["git", *args],
            cwd=path,
            check=True,
            capture_output=True,
            env={
                "GIT_AUTHOR_NAME": "kfd",
                "GIT_AUTHOR_EMAIL": "kfd@localhost",
                "GIT_COMMITTER_NAME": "kfd",
                "GIT_COMMITTER_EMAIL": "kfd@localhost",
                "HOME": str(path),
                "PATH": "/usr/bin:/bin:/usr/local/bin",
            },
        )

    git("init", "-q", "-b", "main")
    git("add", "README.md")
    git("commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return git_repo(tmp_path / "repo")


@pytest.fixture
def make_daemon(model_server: ScriptedModelServer) -> Iterator[Callable[..., KfdDaemon]]:
    made: list[KfdDaemon] = []

    def make(config: str = "", *, start: bool = True, **kwargs: Any) -> KfdDaemon:
        daemon = KfdDaemon(model=model_server, config=FAST_RETRIES + config, **kwargs)
        made.append(daemon)
        return daemon.start() if start else daemon

    yield make
    for daemon in made:
        daemon.close()


@pytest.fixture
def daemon(make_daemon: Callable[..., KfdDaemon]) -> KfdDaemon:
    return make_daemon()
