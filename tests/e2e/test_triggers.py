"""File-watch triggers: real files changing in a real git repo, a real daemon."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kfd import protocol as p
from kfd.client import Follower, RequestFailed
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall, ScriptedUsage
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import collect_until, turn_completed


def commit(workspace: Path, *files: str) -> None:
    git = ["git", "-C", str(workspace), "-c", "user.name=kfd", "-c", "user.email=kfd@localhost"]
    subprocess.run([*git, "add", *files], check=True)
    subprocess.run([*git, "commit", "-qm", "test"], check=True)


def trigger_config(workspace: Path, **keys: object) -> str:
    table = {"name": "review", "workspace": str(workspace), "debounce_ms": 300, "cooldown_s": 0}
    table.update(keys)
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in table.items())
    return f"\n[[triggers]]\n{lines}\n"


async def next_fired(follower: Follower, timeout: float = 30) -> p.TriggerFired:
    while True:
        item = await follower.next_event(timeout)
        if isinstance(item, p.TriggerFired):
            return item


async def trigger_state(
    daemon: KfdDaemon, until: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> dict[str, Any]:
    """The first trigger as `kfd watch --json` shows it, once ``until`` holds.

    A trigger's state has no event to wait on: this polls, with a deadline.
    """
    deadline = time.monotonic() + timeout
    for _ in itertools.count():
        listed: dict[str, Any] = json.loads(daemon.cli("watch", "--json").stdout)["triggers"][0]
        if until(listed):
            return listed
        if time.monotonic() > deadline:
            pytest.fail(f"the trigger never got there; it is: {listed}")
        await asyncio.sleep(0.05)
    raise AssertionError("unreachable")


async def turn_done(follower: Follower, session: str, timeout: float = 30) -> p.TurnCompleted:
    while True:
        item = await follower.next_event(timeout)
        if isinstance(item, p.TurnCompleted) and item.session == session:
            return item


async def test_a_burst_of_saves_fires_one_turn_with_the_files_and_diff(
    make_daemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    prompt = "Changed:\n{changed_files}\nDiff:\n{diff}"
    (workspace / "a.py").write_text("value = 0\n")
    commit(workspace, "a.py")
    daemon = make_daemon(trigger_config(workspace, paths=["*.py"], prompt=prompt))
    model_server.add(Reply(text="looked at a.py"), Reply(text="looked at b.py"))
    async with await daemon.client() as client, await client.follow() as follower:
        for version in range(1, 5):  # spaced wider than the watcher's batching, inside the debounce
            (workspace / "a.py").write_text(f"value = {version}\n")
            await asyncio.sleep(0.06)
        (workspace / "notes.txt").write_text("not a python file\n")
        first = await next_fired(follower)
        await turn_done(follower, first.session)
        (workspace / "b.py").write_text("other = 1\n")
        second = await next_fired(follower)
        await turn_done(follower, second.session)

    assert first.files == ["a.py"] and first.kind == "change" and first.trigger == "review"
    assert second.files == ["b.py"] and second.session != first.session
    assert len(model_server.requests) == 2  # the burst made exactly one turn
    user_text = model_server.requests[0].body["messages"][-1]["content"]
    assert "Changed:\na.py" in user_text
    assert "-value = 0\n+value = 4" in user_text  # git's diff against HEAD
    listed = daemon.cli("watch", "--json")
    trigger = json.loads(listed.stdout)["triggers"][0]
    assert listed.returncode == 0 and trigger["fired"] == 2
    assert trigger["last_files"] == ["b.py"] and trigger["last_session"] == second.session


async def test_an_edit_made_by_kfd_itself_fires_nothing(
    make_daemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    daemon = make_daemon(trigger_config(workspace))
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("write", {"path": "gen.py", "content": "x = 1\n"})]),
        Reply(text="wrote gen.py"),
        Reply(text="reviewed"),
    )
    async with await daemon.client() as client, await client.follow() as follower:
        info = await client.create_session(workspace, mode="auto")
        await client.send(info.id, "write gen.py")
        await turn_done(follower, info.id)
        assert (workspace / "gen.py").read_text() == "x = 1\n"
        (workspace / "user.py").write_text("y = 2\n")
        fired = await next_fired(follower)

    assert fired.files == ["user.py"]  # gen.py, written by kfd, never fired
    listed = json.loads(daemon.cli("watch", "--json").stdout)["triggers"][0]
    assert listed["fired"] == 1


async def test_ai_comments_fire_with_the_right_file_and_line(
    make_daemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    daemon = make_daemon(trigger_config(workspace, prompt="", mode="plan"))
    model_server.add(Reply(text="done"), Reply(text="It returns 1 because of the constant."))
    (workspace / "src").mkdir()
    async with await daemon.client() as client, await client.follow() as follower:
        (workspace / "notes.py").write_text("# nothing to do here\n")
        (workspace / "src" / "app.py").write_text(
            "def value():\n    return 1\n    # make this return 2 AI!\n"
        )
        do = await next_fired(follower)
        await turn_done(follower, do.session)
        (workspace / "src" / "why.js").write_text("const a = 1;\n\n// why is a one? ai?\n")
        ask = await next_fired(follower)
        await turn_done(follower, ask.session)

    assert do.kind == "do"
    assert do.spots == [p.TriggerSpot(path="src/app.py", line=3, text="make this return 2")]
    assert ask.kind == "ask"
    assert ask.spots == [p.TriggerSpot(path="src/why.js", line=3, text="why is a one?", kind="ask")]
    prompt = model_server.requests[0].body["messages"][-1]["content"]
    assert "src/app.py:3 (AI!) make this return 2" in prompt and "return 1" in prompt
    assert "notes.py" not in prompt
    assert "src/why.js:3 (AI?)" in model_server.requests[1].body["messages"][-1]["content"]


async def test_git_internals_virtualenvs_and_ignored_files_fire_nothing(
    make_daemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    (workspace / ".gitignore").write_text("build/\n")
    commit(workspace, ".gitignore")
    env = workspace / "env"
    (env / "lib").mkdir(parents=True)
    (env / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (workspace / "build").mkdir()
    daemon = make_daemon(trigger_config(workspace))
    model_server.add(Reply(text="ok"))
    async with await daemon.client() as client, await client.follow() as follower:
        (workspace / "build" / "out.txt").write_text("built\n")
        (env / "lib" / "site.py").write_text("installed = True\n")
        (workspace / ".git" / "kfd-test").write_text("internal\n")
        (workspace / "real.py").write_text("real = True\n")
        fired = await next_fired(follower)
    assert fired.files == ["real.py"]


async def test_broken_trigger_tables_are_reported_and_reload_keeps_the_good_ones(
    make_daemon, model_server: ScriptedModelServer, workspace: Path, tmp_path: Path
) -> None:
    good = trigger_config(workspace, name="good")
    broken = (
        trigger_config(tmp_path / "missing", name="nowhere")
        + trigger_config(workspace, name="template", prompt="{changed_files} {secrets}")
        + trigger_config(workspace, name="good")
        + trigger_config(workspace, name="jumpy", debounce_ms=-5)
    )
    daemon = make_daemon(good + broken)
    listed = daemon.cli("watch")
    assert listed.returncode == 1
    problems = listed.stderr
    assert "'nowhere'" in problems and "is not a directory" in problems
    assert "unknown fields ['secrets']" in problems
    assert "names must be unique" in problems and "debounce_ms" in problems
    data = json.loads(daemon.cli("watch", "--json").stdout)
    watching = {t["name"]: t.get("watching", False) for t in data["triggers"]}
    assert watching == {"good": True, "nowhere": False, "template": False, "jumpy": False}

    config = daemon.config_dir / "config.toml"
    config.write_text(config.read_text() + "\n[[triggers]]\nname = 'x'\npaths = 5\n")
    reloaded = daemon.cli("watch", "reload")
    assert reloaded.returncode == 1 and reloaded.stderr.count("not reloaded") == 1
    assert "paths" in reloaded.stderr and reloaded.stdout == ""  # never "reloaded" too

    config.write_text(good.replace('"good"', '"renamed"'))
    reloaded = daemon.cli("watch", "reload", "--json")
    assert reloaded.returncode == 0, reloaded.stderr
    assert [t["name"] for t in json.loads(reloaded.stdout)["triggers"]] == ["renamed"]
    async with await daemon.client() as client:
        assert (await client.status()).pid == daemon.pid


async def test_hostile_focus_and_trigger_requests_get_clear_errors(daemon: KfdDaemon) -> None:
    async with await daemon.client() as client:
        with pytest.raises(RequestFailed) as unknown:
            await client.request(p.FrontendFocus(id="", session="s" * 5000))
        assert unknown.value.code == "not_found"
        for body in (
            b'{"id": "1", "method": "frontend.focus", "session": 7}',
            b'{"id": "2", "method": "trigger.reload", "extra": '
            + b"[" * 10_000
            + b"]" * 10_000
            + b"}",
        ):
            await client._rpc.send(body)
        listed = await client.request(p.TriggerList(id=""))
        assert listed.triggers == [] and listed.problems == []
        assert (await client.status()).pid == daemon.pid


async def test_a_trigger_with_a_budget_runs_its_turns_under_that_limit(
    make_daemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    daemon = make_daemon(trigger_config(workspace, budget_usd=0.5))
    model_server.add(Reply(text="cheap"))
    async with await daemon.client() as client, await client.follow() as follower:
        (workspace / "a.py").write_text("a = 1\n")
        fired = await next_fired(follower)
        await turn_done(follower, fired.session)
        info = await client.session(fired.session)
    assert info.budget_usd == 0.5  # the accounting refuses requests past it
    assert info.mode == "plan"


PRICED = """
[models."scripted-model"]
input = 1.0
output = 2.0
"""
"""$1 per million input tokens: a prompt of a few thousand tokens costs a few tenths of a cent."""


async def test_a_trigger_whose_budget_refuses_its_turn_stops_and_says_so(
    make_daemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    daemon = make_daemon(PRICED + trigger_config(workspace, budget_usd=0.000001))
    async with await daemon.client() as client, await client.follow() as follower:
        (workspace / "a.py").write_text("a = 1\n")
        fired = await next_fired(follower)
        done = await turn_done(follower, fired.session)
        assert done.stop_reason == "error"  # the budget refused the first request
        (workspace / "b.py").write_text("b = 1\n")
        listed = await trigger_state(daemon, lambda t: t.get("refused", 0) >= 1)
        shown = daemon.cli("watch")
        sessions = await client.sessions()
    assert "stopped: the budget of session" in listed["problem"] and listed["fired"] == 1
    assert shown.returncode == 1 and "problem: stopped:" in shown.stdout
    assert "kfd watch reload" in shown.stdout and "1 firing(s) refused" in shown.stdout
    assert [info.id for info in sessions] == [fired.session]  # no empty sessions after it
    assert model_server.requests == []


async def test_a_spent_daily_budget_starts_no_trigger_session(
    make_daemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    config = PRICED + "\n[budget]\ndaily_usd = 0.005\n" + trigger_config(workspace, paths=["*.py"])
    daemon = make_daemon(config)
    usage = ScriptedUsage(input_tokens=6000, output_tokens=10)  # $0.006: more than the day
    model_server.add(Reply(text="spent it", usage=usage))
    async with await daemon.client() as client:
        info = await client.create_session(workspace, mode="plan")
        async with await client.attach(info.id) as view:
            await client.send(info.id, "spend the day's budget")
            await collect_until(view, turn_completed)
        (workspace / "a.py").write_text("a = 1\n")
        listed = await trigger_state(daemon, lambda t: t.get("refused", 0) >= 1)
        sessions = await client.sessions()
    assert [s.id for s in sessions] == [info.id] and listed.get("fired", 0) == 0
    assert "not firing: today's budget is spent" in listed["problem"]
    assert "[budget] daily_usd" in listed["problem"]


async def test_the_changed_file_list_of_a_prompt_is_capped(
    make_daemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    daemon = make_daemon(trigger_config(workspace, prompt="Changed:\n{changed_files}\nEnd."))
    model_server.add(Reply(text="looked"))
    async with await daemon.client() as client, await client.follow() as follower:
        (workspace / "gen").mkdir()
        for index in range(300):
            (workspace / "gen" / f"f{index:03}.txt").write_text(f"{index}\n")
        fired = await next_fired(follower)
        await turn_done(follower, fired.session)
    prompt = model_server.requests[0].body["messages"][-1]["content"]
    listed = prompt.split("Changed:\n", 1)[1].split("\nEnd.", 1)[0].splitlines()
    assert (
        len(listed) == 101
        and listed[-1].startswith("… and ")
        and listed[-1].endswith(" more files")
    )
    assert len(fired.files) == 100


async def test_a_users_save_during_a_kfd_command_fires_and_kfds_own_write_does_not(
    make_daemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    daemon = make_daemon(trigger_config(workspace, paths=["*.py"], prompt="{changed_files}"))
    gate = workspace / "gate.txt"
    command = f"echo 'x = 1' > gen.py; echo started; while [ ! -e {gate} ]; do sleep 0.01; done"
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": command})]),
        Reply(text="generated"),
        Reply(text="reviewed the user's file"),
    )
    async with await daemon.client() as client, await client.follow() as follower:
        info = await client.create_session(workspace, mode="auto")
        async with await client.attach(info.id) as view:
            await client.send(info.id, "generate")
            await collect_until(view, lambda e: isinstance(e, p.ToolOutput) and "started" in e.data)
        (workspace / "user.py").write_text("mine = True\n")  # while kfd's command runs
        fired = await next_fired(follower)
        gate.touch()
        waiting = {info.id, fired.session}
        while waiting:  # the two turns end in either order
            item = await follower.next_event(30)
            if isinstance(item, p.TurnCompleted):
                waiting.discard(item.session)
    assert fired.files == ["user.py"]  # gen.py is kfd's: its command named it


async def test_a_timestamp_only_change_fires_nothing(
    make_daemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    (workspace / "tracked.py").write_text("t = 1\n")
    commit(workspace, "tracked.py")
    daemon = make_daemon(trigger_config(workspace, paths=["*.py"]))
    model_server.add(Reply(text="one"), Reply(text="two"))
    async with await daemon.client() as client, await client.follow() as follower:
        (workspace / "tracked.py").touch()  # same bytes as git's index
        (workspace / "new.py").write_text("n = 1\n")
        first = await next_fired(follower)
        await turn_done(follower, first.session)
        (workspace / "new.py").touch()  # same bytes as last seen
        (workspace / "tracked.py").write_text("t = 1\n")  # saved, unchanged
        (workspace / "other.py").write_text("o = 1\n")
        second = await next_fired(follower)
        await turn_done(follower, second.session)
    assert first.files == ["new.py"]
    assert second.files == ["other.py"]


async def test_an_ai_question_is_answered_in_plan_mode_even_when_the_trigger_acts(
    make_daemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    daemon = make_daemon(trigger_config(workspace, prompt="", mode="auto"))
    model_server.add(Reply(text="changed it"), Reply(text="answered it"))
    async with await daemon.client() as client, await client.follow() as follower:
        (workspace / "app.py").write_text(
            "def f():\n    return 1  # make it 2 AI!\n\n# why is it one? AI?\n"
        )
        fired: list[p.TriggerFired] = []
        ended: set[str] = set()
        while len(fired) < 2 or ended != {f.session for f in fired}:  # in any order
            item = await follower.next_event(30)
            if isinstance(item, p.TriggerFired):
                fired.append(item)
            elif isinstance(item, p.TurnCompleted):
                ended.add(item.session)
        modes = {f.kind: (await client.session(f.session)).mode for f in fired}
    assert modes == {"do": "auto", "ask": "plan"}


async def test_a_prompt_never_carries_what_a_read_rule_keeps_from_the_model(
    make_daemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    config = workspace / "config"
    config.mkdir()
    (config / ".env.production").write_text("DB_PASSWORD=old\n")
    (config / "app.toml").write_text("port = 1\n")
    (workspace / "notes.txt").write_text("TOKEN=canary-hardlink\n")
    commit(workspace, "config", "notes.txt")
    prompt = "Changed:\n{changed_files}\nDiff:\n{diff}"
    daemon = make_daemon(
        trigger_config(workspace, paths=["config/**"], prompt=prompt, ai_comments=True)
    )
    model_server.add(Reply(text="looked"))
    async with await daemon.client() as client, await client.follow() as follower:
        (config / ".env.production").write_text("DB_PASSWORD=canary-env  # rotate it AI!\n")
        (config / "server.key").write_text("-----BEGIN EC PRIVATE KEY-----\ncanary-key\n")
        (config / "app.toml").write_text("port = 2\n")
        (config / "copy.txt").hardlink_to(workspace / "notes.txt")
        fired = await next_fired(follower)
        await turn_done(follower, fired.session)

    assert fired.kind == "change"  # the AI! in .env.production was never read
    user_text = model_server.requests[0].body["messages"][-1]["content"]
    assert "-port = 1\n+port = 2" in user_text  # what may be read is shown
    for canary in ("canary-env", "canary-key", "canary-hardlink", "DB_PASSWORD"):
        assert canary not in user_text
    assert "config/.env.production: not shown (read(**/.env.*)" in user_text
    assert "config/server.key: not shown (read(**/*.key)" in user_text
    assert "config/copy.txt: not shown (2 hard links" in user_text
