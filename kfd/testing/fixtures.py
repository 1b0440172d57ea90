"""pytest fixtures for kfd and plugin tests. Enable with::

    pytest_plugins = ["kfd.testing.fixtures"]

``model_server``  a running `ScriptedModelServer` (add replies with ``.add``)
``workspace``     a temporary git repository with one committed file
``make_daemon``   a factory for `KfdDaemon` processes pointed at ``model_server``
``daemon``        one started daemon

A failed test's report ends with the log of each daemon it made, so a failure
seen once in CI says what the daemon was doing.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kfd.testing.daemon import FAST_RETRIES, KfdDaemon
from kfd.testing.model_server import ScriptedModelServer

LOG_TAIL = 12_000
_FIRST_DAEMON = pytest.StashKey[int]()


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


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_FIRST_DAEMON] = len(KfdDaemon.made)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed or call.when == "teardown":
        return
    for number, ref in enumerate(KfdDaemon.made[item.stash.get(_FIRST_DAEMON, 0) :]):
        daemon = ref()
        if daemon is None:
            continue
        text = daemon.log_text()
        cut = "" if len(text) <= LOG_TAIL else f"(the last {LOG_TAIL:,} characters)\n"
        report.sections.append((f"daemon {number} log", cut + text[-LOG_TAIL:]))
