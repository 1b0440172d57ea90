"""Containment end to end: a real daemon, real bubblewrap, real git, canaries.

The daemon's ``$HOME`` holds canary credentials, its environment a canary
token and a canary database password, a socket listens outside the
workspace, a file lies outside it. A scripted model runs one command that
tries every escape; then the repository is armed the way a command that
escaped would arm it, and kfd's own host-side git runs (a trigger's diff, a
new session's environment block). Afterwards no program the repository
names has run, the outside file is unchanged, and no canary is in any event,
in the database, in the log, or in any file kfd wrote.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import msgspec
import pytest

from kfd import protocol as p
from kfd.client import Client, Follower
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.bubblewrap import needs_bubblewrap
from kfd.testing.daemon import KfdDaemon
from kfd.testing.fixtures import git_repo

pytestmark = needs_bubblewrap

SSH = "CANARY-SSH-a1b2c3d4e5"
AWS = "CANARY-AWS-f6g7h8i9j0"
TOKEN = "canary-token-Zq8Xw2Lm9Pv4"
PASSWORD = "Canary-Pw-7Yt5Rk3"
DATABASE_URL = f"postgres://app:{PASSWORD}@db.internal/app"
CANARIES = (SSH, AWS, TOKEN, PASSWORD, "sk-test-not-a-real-key")


@pytest.fixture
def root() -> Iterator[Path]:
    """Everything of the test outside /tmp, which the sandbox replaces with its own."""
    directory = Path(tempfile.mkdtemp(prefix="kfd-contain-", dir="/var/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _arm_repository(workspace: Path, payload: Path) -> None:
    """What a command that got out of the sandbox would leave for kfd's own git."""
    with open(workspace / ".git" / "config", "a") as config:
        config.write(
            f"[core]\n\tfsmonitor = {payload}\n\tpager = {payload}\n"
            f"[diff]\n\texternal = {payload}\n"
            f'[filter "x"]\n\tclean = {payload}\n\tprocess = {payload}\n'
            f'[diff "x"]\n\ttextconv = {payload}\n'
        )
    (workspace / ".gitattributes").write_text("* filter=x diff=x\n")


async def test_no_escape_family_gets_out_and_no_canary_is_kept(
    model_server: ScriptedModelServer, root: Path
) -> None:
    home = root / "daemon"
    (home / "home" / ".ssh").mkdir(parents=True)
    (home / "home" / ".ssh" / "id_rsa").write_text(f"{SSH}\n")
    (home / "home" / ".aws").mkdir()
    (home / "home" / ".aws" / "credentials").write_text(f"aws_secret_access_key = {AWS}\n")
    outside = root / "outside.txt"
    outside.write_text("untouched\n")
    ran = root / "payload-ran"
    payload = root / "payload.sh"
    payload.write_text(f"#!/bin/sh\nenv >> {ran}\ncat\n")
    payload.chmod(0o755)
    workspace = git_repo(root / "ws")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(root / "docker.sock"))
    listener.listen()

    attack = (
        f"cat ~/.ssh/id_rsa ~/.aws/credentials; env; cat /proc/*/environ; "
        f"grep -rh CANARY {root} 2>/dev/null; "
        f"cat $XDG_STATE_HOME/kfd/kfd.db {home}/state/kfd/kfd.db 2>/dev/null | strings | head; "
        f"echo pwned > {outside}; "
        f'python3 -c "import socket; s = socket.socket(socket.AF_UNIX); '
        f"s.connect('{root}/docker.sock'); print('socket reached')\"; "
        f"git init -q --bare fake && printf '[core]\\n\\tfsmonitor = {payload}\\n' >> fake/config; "
        f"echo ../fake > .git/commondir; echo '[core] fsmonitor = {payload}' >> .git/config; "
        f"mv .git .git-moved; echo 'print(1)' > a.py; "
        f'echo "[$DATABASE_URL][$KFD_TEST_SERVICE_TOKEN]"'
    )
    final = f"The database is at {DATABASE_URL}; the token is {TOKEN}."
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": attack})]),
        Reply(text=final),
        Reply(text="Reviewed the trigger's diff."),
        Reply(text="Hello again."),
    )
    daemon = KfdDaemon(
        model=model_server,
        root=home,
        env={"KFD_TEST_SERVICE_TOKEN": TOKEN, "DATABASE_URL": DATABASE_URL},
        config=(
            # The user allows everything, as if the analyser were wrong: the sandbox
            # alone must hold.
            '\n[permissions]\nallow = ["bash", "edit(/**)", "read(/**)"]\n'
            f'\n[[triggers]]\nname = "review"\nworkspace = "{workspace}"\n'
            'paths = ["*.py"]\ndebounce_ms = 300\ncooldown_s = 0\n'
        ),
    ).start()
    try:
        async with await daemon.client() as client, await client.follow() as follower:
            first = await client.create_session(workspace, mode="auto")
            await client.send(first.id, "look around")
            await _turn_done(client, follower, first.id)

            _arm_repository(workspace, payload)
            (workspace / "a.py").write_text("print(2)\n")  # the trigger's diff runs git
            fired = await _next(follower, p.TriggerFired)
            await _turn_done(client, follower, fired.session)

            second = await client.create_session(workspace)
            await client.send(second.id, "hi")  # a new session: the environment block
            await _turn_done(client, follower, second.id)

            events = b""
            for session in (first.id, fired.session, second.id):
                attached = await client.request(p.SessionAttach(id="", session=session))
                events += msgspec.json.encode(attached)
    finally:
        listener.close()
        daemon.stop()

    command = next(m for m in model_server.requests[1].body["messages"] if m["role"] == "tool")[
        "content"
    ]
    assert "No such file or directory" in command, "the command did run"
    assert "socket reached" not in command and "Connection refused" in command
    assert not ran.exists(), "a program the repository named ran on the host"
    assert outside.read_text() == "untouched\n"
    assert (workspace / ".git").is_dir() and not (workspace / ".git" / "commondir").exists()
    assert "Git: branch" in model_server.requests[-1].body["messages"][0]["content"]
    for canary in (SSH, AWS, TOKEN):
        assert canary not in command, f"{canary} reached the sandbox"
    kept = {"events": events}
    for path in (home / "state").rglob("*"):
        if path.is_file():
            kept[str(path)] = path.read_bytes()
    for name, data in kept.items():
        for canary in CANARIES:
            assert canary.encode() not in data, f"{canary} is kept in {name}"
    assert b"[redacted $DATABASE_URL]" in events
    assert b"[redacted $KFD_TEST_SERVICE_TOKEN]" in events


T = TypeVar("T")


async def _next(follower: Follower, kind: type[T], timeout: float = 60) -> T:
    while True:
        item = await follower.next_event(timeout)
        if isinstance(item, kind):
            return item


async def _turn_done(client: Client, follower: Follower, session: str) -> None:
    """Wait for the session's turn to end, allowing whatever it asks: the worst case,
    a user who says yes to everything; the sandbox is the boundary."""
    while True:
        item = await follower.next_event(60)
        if isinstance(item, p.ApprovalRequested):
            await client.request(
                p.ApprovalRespond(
                    id="", session=item.session, approval_id=item.approval_id, decision="allow"
                )
            )
        elif isinstance(item, p.TurnCompleted) and item.session == session:
            return


def test_a_daemon_started_in_a_workspace_imports_and_runs_nothing_from_it(
    make_daemon: Callable[..., KfdDaemon], root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kfd.client.daemon import start_daemon

    canary = root / "imported"
    workspace = root / "clone"
    workspace.mkdir()
    for module in ("aiosqlite", "pluggy", "msgspec", "zmq"):
        (workspace / f"{module}.py").write_text(f"open({str(canary)!r}, 'a').write('{module}')\n")
    daemon = make_daemon(start=False)
    monkeypatch.chdir(workspace)  # where a user typed `kfd`
    with open(root / "stderr", "w+b") as stderr:
        process = start_daemon(daemon.env, stderr)
    try:
        # (The test's own `python -m kfd` must not run from the planted directory.)
        assert daemon.cli("status", cwd=root).returncode == 0
        assert os.readlink(f"/proc/{process.pid}/cwd") == "/"
    finally:
        daemon.cli("stop", cwd=root)
        process.wait(20)
    assert not canary.exists(), canary.read_text()
