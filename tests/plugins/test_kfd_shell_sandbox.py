"""The bash tool's sandbox, against real bubblewrap, in a real git repository.

Skipped, with bubblewrap's own words, only where bwrap cannot start a
sandbox at all; the "sandbox unavailable" path is tested everywhere.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from kfd.agent.toolcall import CallContext
from kfd.api import ApprovalNeeded, Sandbox
from kfd.testing.bubblewrap import PROBLEM, needs_bubblewrap
from kfd.testing.processes import processes_gone, processes_running
from kfd_shell import BashSettings, BashTool
from kfd_shell.bash import UNSANDBOXED

# The probes run inside the sandbox, whose /tmp is private: the virtualenv's
# interpreter may live under the host's /tmp (a checkout there), the
# system's never does.
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "python3"


# Every test runs twice: commands in a sandbox of their own, and in the pod.
pytestmark = pytest.mark.usefixtures("entry")


@pytest.fixture
def outside() -> Iterator[Path]:
    """A directory outside the workspace, and outside /tmp (which the sandbox replaces
    with its own, so a write there would fail for another reason)."""
    directory = Path(tempfile.mkdtemp(prefix="kfd-sandbox-", dir="/var/tmp"))
    (directory / "target.txt").write_text("untouched\n")
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def context(repo: Path, **sandbox: Any) -> CallContext:
    return CallContext(session_id="s", workspace=repo, sandbox=Sandbox(**sandbox))


async def run(ctx: CallContext, command: str, tool: BashTool | None = None, **args: Any) -> str:
    result = await (tool or BashTool()).run(BashTool.Args(command=command, **args), ctx)
    return result.output


@needs_bubblewrap
async def test_the_workspace_and_tmp_are_writable_and_nothing_else(
    repo: Path, outside: Path
) -> None:
    output = await run(
        context(repo),
        f"echo in > inside.txt && echo tmp > /tmp/t && cat /tmp/t; "
        f"echo out > {outside}/target.txt; echo etc > /etc/kfd-sandbox-test",
    )
    assert (repo / "inside.txt").read_text() == "in\n"
    assert "tmp\n" in output
    assert (outside / "target.txt").read_text() == "untouched\n"
    assert not Path("/etc/kfd-sandbox-test").exists()
    assert output.count("Read-only file system") == 2, output


@needs_bubblewrap
async def test_git_config_hooks_and_kfd_are_read_only_but_git_works(repo: Path) -> None:
    (repo / ".kfd").mkdir()
    (repo / ".kfd" / "config.toml").write_text("")
    before = (repo / ".git" / "config").read_text()
    output = await run(
        context(repo),
        "echo '[core]' >> .git/config; echo hook > .git/hooks/pre-commit; "
        "echo 'allow = [\"bash(*)\"]' > .kfd/config.toml; "
        "echo x > f && git add f && git -c user.name=t -c user.email=t@t commit -qm f "
        "&& git log --oneline | wc -l",
    )
    assert (repo / ".git" / "config").read_text() == before
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()
    assert (repo / ".kfd" / "config.toml").read_text() == ""
    # A stand-in for git's sample hooks refuses by permission, a read-only mount by its kind.
    assert output.count("Read-only file system") + output.count("Permission denied") == 3, output
    assert "\n1\n" in output  # objects, refs and the index stay writable: commits work


@needs_bubblewrap
async def test_a_missing_kfd_directory_cannot_be_created(repo: Path) -> None:
    output = await run(
        context(repo), "mkdir -p .kfd && echo x > .kfd/config.toml; chmod 700 .kfd; echo y > .kfd/x"
    )
    assert not (repo / ".kfd" / "config.toml").exists()
    assert not (repo / ".kfd" / "x").exists(), "what a command forces in vanishes with it"
    assert "Permission denied" in output


@needs_bubblewrap
async def test_a_symlink_in_the_workspace_gives_no_write_access_outside(
    repo: Path, outside: Path
) -> None:
    (repo / "link").symlink_to(outside / "target.txt")
    (repo / "dirlink").symlink_to(outside)
    output = await run(context(repo), "echo pwned > link; echo pwned > dirlink/new.txt")
    assert (outside / "target.txt").read_text() == "untouched\n"
    assert not (outside / "new.txt").exists()
    assert output.count("Read-only file system") == 2, output


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP listener on 127.0.0.1 of the host; yields its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


CONNECT = (
    f"{SYSTEM_PYTHON} -c \"import socket,sys; socket.create_connection(('127.0.0.1', "
    "int(sys.argv[1])), timeout=2); print('connected')\" {port}"
)


@needs_bubblewrap
async def test_the_network_is_unreachable_unless_allowed(repo: Path, listener: int) -> None:
    command = CONNECT.format(port=listener)
    assert "connected" in await run(context(repo, enabled=False), command), "the listener works"
    confined = await run(context(repo), command)
    assert "connected" not in confined and "ConnectionRefusedError" in confined
    assert "connected\n" in await run(context(repo), command, network=True)
    assert "connected\n" in await run(context(repo, network=True), command)


@pytest.fixture(scope="session")
def run_directory() -> Iterator[Path]:
    """A directory of this test process under the host's ``/run``, removed when the
    process ends: daemons of tests running beside this one see its socket while it
    is bound and mount over the directory, so it must not vanish under their next
    command (bubblewrap cannot make a mount point in the read-only ``/run``)."""
    runtime = Path("/run") / f"kfd-sandbox-test-{os.getpid()}"
    runtime.mkdir(mode=0o700)
    yield runtime
    shutil.rmtree(runtime, ignore_errors=True)


@needs_bubblewrap
async def test_kfds_own_sockets_are_out_of_reach(
    repo: Path, run_directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read-only file system does not stop a Unix socket connection: the
    # runtime directory (kfd's bus, the session D-Bus) is hidden instead.
    runtime = run_directory
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(runtime / "rpc.sock"))
        server.listen()
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
        probe_socket = (
            f'{SYSTEM_PYTHON} -c "import socket; s = socket.socket(socket.AF_UNIX); '
            f"s.connect('{runtime}/rpc.sock'); print('connected')\""
        )
        assert "connected" in await run(context(repo, enabled=False), probe_socket)
        confined = await run(context(repo), probe_socket)
        assert "connected" not in confined and "FileNotFoundError" in confined
    finally:
        server.close()
        (runtime / "rpc.sock").unlink(missing_ok=True)


@needs_bubblewrap
async def test_a_timed_out_command_leaves_no_process_behind(repo: Path) -> None:
    marker = "987.6543"
    command = f"sleep {marker} & (trap '' TERM; sleep {marker}) & setsid sleep {marker} & wait"
    output = await run(context(repo), command, timeout=0.5)
    assert "Timed out after 0.5 s" in output
    assert await processes_gone(marker, within=2.0), processes_running(marker)


@needs_bubblewrap
async def test_background_processes_end_with_the_command(repo: Path) -> None:
    marker = "876.5432"
    await run(context(repo), f"nohup sleep {marker} > /dev/null 2>&1 &")
    assert await processes_gone(marker, within=2.0)


@needs_bubblewrap
async def test_commands_see_other_processes_not(repo: Path) -> None:
    output = await run(context(repo), "ls /proc | grep -c '^[0-9]'")
    assert int(output.splitlines()[0]) <= 4  # bwrap's init, bash, ls, grep


async def test_the_environment_is_an_allow_list_whatever_the_names(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFD_TEST_API_KEY", "k-1")
    monkeypatch.setenv("NPM_TOKEN", "n-2")
    monkeypatch.setenv("DATABASE_URL", "postgres://app:pw-3@db/app")
    monkeypatch.setenv("MYSQL_PWD", "pw-4")
    monkeypatch.setenv("KFD_TEST_PLAIN", "p-5")
    monkeypatch.setenv("LC_TIME", "C")
    monkeypatch.setenv("https_proxy", "http://user:pw-6@proxy:3128")
    monkeypatch.setenv("http_proxy", "http://proxy:3128")
    command = (
        'echo "[$KFD_TEST_API_KEY][$NPM_TOKEN][$DATABASE_URL][$MYSQL_PWD][$KFD_TEST_PLAIN]'
        '[$LC_TIME][$https_proxy][$http_proxy][${HOME:+home}]"'
    )
    for enabled in (False, *(() if PROBLEM else (True,))):
        output = await run(context(repo, enabled=enabled, env=("NPM_*",)), command)
        assert output.startswith("[][n-2][][][][C][][http://proxy:3128][home]\n"), output
        output = await run(context(repo, enabled=enabled, env_allow=("KFD_TEST_PLAIN",)), command)
        assert output.startswith("[][][][][p-5][C][][http://proxy:3128][home]\n"), output


async def test_when_bwrap_is_missing_the_tool_asks_before_running_unconfined(
    repo: Path,
) -> None:
    tool = BashTool(BashSettings(bwrap="kfd-no-such-bwrap"))
    with pytest.raises(ApprovalNeeded) as needed:
        await run(context(repo), "echo ran > ran.txt", tool)
    assert needed.value.grant == UNSANDBOXED
    assert "bubblewrap (kfd-no-such-bwrap) is not installed" in str(needed.value)
    assert "apt install bubblewrap" in str(needed.value)
    assert not (repo / "ran.txt").exists()
    granted = CallContext(
        session_id="s", workspace=repo, sandbox=Sandbox(), granted=frozenset({UNSANDBOXED})
    )
    assert await run(granted, "echo ran > ran.txt", tool) == "(no output)\n[exit code 0]\n"
    assert (repo / "ran.txt").read_text() == "ran\n"


async def test_when_bwrap_cannot_make_namespaces_the_tool_says_what_it_said(
    repo: Path, tmp_path: Path
) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    tool = BashTool(BashSettings(bwrap=str(fake)))
    with pytest.raises(ApprovalNeeded) as needed:
        await run(context(repo), "echo ran > ran.txt", tool)
    assert "No permissions to creating new namespace" in str(needed.value)
    assert not (repo / "ran.txt").exists()


async def test_with_the_sandbox_off_commands_run_unconfined_without_asking(
    repo: Path, outside: Path
) -> None:
    tool = BashTool(BashSettings(bwrap="kfd-no-such-bwrap"))
    await run(context(repo, enabled=False), f"echo changed > {outside}/target.txt", tool)
    assert (outside / "target.txt").read_text() == "changed\n"


@pytest.mark.parametrize(
    ("table", "says"),
    [({"bwrap": ""}, "bwrap"), ({"bwrap": "x" * 5000}, "bwrap"), ({"bwrap": 7}, "bwrap")],
)
def test_a_bad_bwrap_setting_fails_the_start_with_its_key(table: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=r"\[tools.bash\]") as error:
        BashSettings.from_config(table)
    assert says in str(error.value)


@pytest.mark.parametrize("network", ["yes", 1, None, [True]])
def test_the_network_argument_must_be_a_boolean(network: object) -> None:
    with pytest.raises(msgspec.ValidationError, match="network"):
        msgspec.convert({"command": "true", "network": network}, BashTool.Args)
