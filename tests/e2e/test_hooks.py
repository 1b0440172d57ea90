"""Shell hooks with a real daemon: a before_tool hook denies ``git push``, an
after_tool hook runs ``ruff format`` on edited Python files and reports, a hook
that hangs is killed and reported while the turn goes on, and a project's hooks
wait for trust."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from kfd import protocol as p
from kfd.client import Client
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import unasked_turn

MakeDaemon = Callable[..., KfdDaemon]

RUFF = str(Path(sys.executable).with_name("ruff"))


def bash(command: str) -> Reply:
    return Reply(tool_calls=[ScriptedToolCall("bash", {"command": command})])


async def run_turn(client: Client, session: str, text: str) -> list[object]:
    return list(await unasked_turn(client, session, text, 60.0))


def completed(items: list[object]) -> list[p.ToolCompleted]:
    return [i for i in items if isinstance(i, p.ToolCompleted)]


async def test_a_before_tool_hook_denies_git_push_and_lets_the_rest_run(
    make_daemon: MakeDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    daemon = make_daemon(
        """
[[hooks]]
event = "before_tool"
match = '^bash .*\\bgit push\\b'
command = "cat > seen.json; echo 'pushing is for humans here' >&2; exit 2"
sandbox = false
"""
    )
    model_server.add(bash("git push origin main"), bash("echo fine"), Reply(text="ok"))
    async with await daemon.client() as client:
        info = await client.create_session(workspace, mode="auto")
        items = await run_turn(client, info.id, "ship it")
    pushed, echoed = completed(items)
    assert pushed.status == "denied"
    assert "pushing is for humans here" in pushed.output
    assert pushed.reason.startswith("hook before_tool:")
    assert echoed.status == "ok" and echoed.output.startswith("fine\n")
    seen = (workspace / "seen.json").read_text()  # the event, as JSON on stdin
    assert '"tool":"bash"' in seen and '"command":"git push origin main"' in seen
    reported = [i for i in items if isinstance(i, p.HookReported)]
    assert [(r.outcome, r.hook[:12]) for r in reported] == [("denied", "before_tool:")]


async def test_an_after_tool_hook_formats_edited_python_files_and_reports(
    make_daemon: MakeDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    script = workspace.parent / "format.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"{sys.executable} -c 'import json,sys; print(*json.load(sys.stdin)[\"paths\"])' |"
        f" xargs {RUFF} format --no-cache 2>&1\n"
    )
    script.chmod(0o755)
    daemon = make_daemon(
        f"""
[[hooks]]
event = "after_tool"
match = '^(edit|write) .*\\.py"'
command = "{script}"
sandbox = false
"""
    )
    model_server.add(
        Reply(
            tool_calls=[
                ScriptedToolCall("write", {"path": "ugly.py", "content": "x = [1,2 ,3]\n"}),
                ScriptedToolCall("write", {"path": "notes.txt", "content": "a  =  b\n"}),
            ]
        ),
        Reply(text="written"),
    )
    async with await daemon.client() as client:
        info = await client.create_session(workspace, mode="auto")
        items = await run_turn(client, info.id, "write it")
    python, text = completed(items)
    assert (workspace / "ugly.py").read_text() == "x = [1, 2, 3]\n"
    assert "[hook after_tool:" in python.output and "1 file reformatted" in python.output
    assert (workspace / "notes.txt").read_text() == "a  =  b\n"  # not matched: not run
    assert "[hook" not in text.output


async def test_a_hook_that_hangs_is_killed_and_reported_and_the_turn_goes_on(
    make_daemon: MakeDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    daemon = make_daemon(
        """
[[hooks]]
event = "before_tool"
command = "sleep 300 & sleep 300"
timeout_s = 1
sandbox = false

[[hooks]]
event = "turn_end"
command = "exit 3"
sandbox = false
"""
    )
    model_server.add(bash("echo still here"), Reply(text="done anyway"))
    started = time.monotonic()
    async with await daemon.client() as client:
        info = await client.create_session(workspace, mode="auto")
        items = await run_turn(client, info.id, "go")
        (call,) = completed(items)
        assert call.status == "ok" and call.output.startswith("still here\n")
        (hung,) = [i for i in items if isinstance(i, p.HookReported)]
        assert hung.outcome == "timeout" and "killed" in hung.message
        assert [i.stop_reason for i in items if isinstance(i, p.TurnCompleted)] == ["end_turn"]
        assert time.monotonic() - started < 60
        # The turn_end hook runs after the turn; its failure is reported too.
        async with await client.attach(info.id, since_seq=items[-1].seq) as view:  # type: ignore[attr-defined]
            while True:
                item = await view.next_event(20.0)
                if isinstance(item, p.HookReported):
                    break
        assert item.outcome == "failed" and "exit status 3" in item.message
    assert "sleep 300" not in _processes()


async def test_a_projects_hooks_wait_for_trust_and_then_run_confined(
    make_daemon: MakeDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    (workspace / ".kfd").mkdir()
    # Confined, the hook writes in the workspace but cannot see the daemon's home.
    command = 'ls "$KFD_HOME_PROBE" > seen.txt 2>&1; touch ran; echo "not in this repo" >&2; exit 2'
    (workspace / ".kfd" / "config.toml").write_text(
        f"[[hooks]]\nevent = \"before_tool\"\ncommand = '{command}'\nsandbox = false\n"
    )
    daemon = make_daemon('[sandbox]\nenv = ["KFD_HOME_PROBE"]\n')
    daemon.env["KFD_HOME_PROBE"] = str(daemon.state_dir)
    daemon.restart()
    model_server.add(bash("echo hi"), Reply(text="ok"), bash("echo again"), Reply(text="ok"))
    async with await daemon.client() as client:
        shown = await client.trust(workspace)
        assert f"hook before_tool: {command}" in shown.grants
        assert any(i.startswith("hook before_tool") for i in shown.ignored)
        info = await client.create_session(workspace, mode="auto")
        items = await run_turn(client, info.id, "say hi")
        assert completed(items)[0].status == "ok"
        assert not (workspace / "ran").exists()  # untrusted: not run

        await client.set_trust(workspace, shown.sha256)
        items = await run_turn(client, info.id, "say it again")
    (denied,) = completed(items)
    assert denied.status == "denied" and "not in this repo" in denied.output
    assert (workspace / "ran").exists()
    # sandbox = false is not honoured from a project: kfd's state stayed hidden.
    assert "kfd.db" not in (workspace / "seen.txt").read_text()


def _processes() -> str:
    import subprocess

    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
