"""The chat bridge (``kfd chat``) against a real daemon and chat servers on 127.0.0.1.

No homeserver or Slack can run here in reasonable time, so `chat_servers`
serves the services' documented payloads; the bridge runs as the real
``kfd chat`` subprocess, with its real SDKs (mautrix, slack_sdk).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chat_servers import MatrixServer, SlackServer
from frontend_process import frontend

from kfd import protocol as p
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon

ROOM = "!ops:localhost"
ALICE = "@alice:localhost"
MALLORY = "@mallory:localhost"


def matrix_config(server: MatrixServer, workspace: Path, state: Path) -> str:
    return f"""
[chat]
workspace = {json.dumps(str(workspace))}
state_file = {json.dumps(str(state))}

[chat.matrix]
homeserver = "{server.url}"
user_id = "{server.bot}"
rooms = ["{ROOM}"]
allow = ["{ALICE}"]
edit_interval_s = 0.2
"""


def bridge(daemon: KfdDaemon, adapter: str, **env: str):
    return frontend(daemon, "chat", adapter, ready="bridging", **env)


@pytest.fixture
async def matrix():
    server = await MatrixServer().start()
    yield server
    await server.stop()


def body_is(server: MatrixServer, text: str):
    return lambda: [m for m in server.messages(ROOM) if m["body"] == text]


def body_has(server: MatrixServer, text: str):
    return lambda: [m for m in server.messages(ROOM) if text in m["body"]]


async def test_an_allow_listed_message_starts_a_turn_whose_answer_streams_by_edits(
    make_daemon, model_server: ScriptedModelServer, workspace: Path, tmp_path: Path, matrix
) -> None:
    answer = "".join(f"word{i} " for i in range(60)).strip()
    model_server.add(Reply(text=answer, chunk_chars=8, chunk_delay_s=0.02))
    daemon = make_daemon(matrix_config(matrix, workspace, tmp_path / "state.json"))
    async with bridge(daemon, "matrix", KFD_MATRIX_TOKEN=MatrixServer.TOKEN) as running:
        await matrix.say(ROOM, MALLORY, "delete everything")
        await matrix.append(ROOM, ALICE, "m.room.message", {"body": 5, "m.relates_to": "x"})
        await matrix.append(ROOM, ALICE, "m.room.message", ["not", "an", "object"])
        await matrix.append(ROOM, ALICE, "m.reaction", {"m.relates_to": {"rel_type": "bogus"}})
        await matrix.say("!elsewhere:localhost", ALICE, "not a room of the bot")
        await matrix.say(ROOM, ALICE, "count the words")
        [streamed] = await matrix.wait_for(body_is(matrix, answer))
        await matrix.say(ROOM, ALICE, "!mode plan")
        await matrix.wait_for(body_is(matrix, "mode is now plan"))
        await matrix.say(ROOM, ALICE, "!status")
        [status] = await matrix.wait_for(body_has(matrix, "mode plan"))
        ignored = await running.line(f"ignored a message from {MALLORY}")

    assert len(model_server.requests) == 1  # garbage events were skipped, not fatal
    assert model_server.requests[0].body["messages"][-1]["content"] == "count the words"
    assert streamed["edits"] >= 1  # posted early, then edited as the text grew
    assert "not on the allow-list" in ignored
    assert "idle" in status["body"] and str(workspace) in status["body"]


async def test_an_approval_is_answered_from_chat_by_reply_and_by_reaction(
    make_daemon, model_server: ScriptedModelServer, workspace: Path, tmp_path: Path, matrix
) -> None:
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "echo chat > chat.txt"})]),
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "echo no > no.txt"})]),
        Reply(text="finished"),
    )
    daemon = make_daemon(matrix_config(matrix, workspace, tmp_path / "state.json"))
    async with bridge(daemon, "matrix", KFD_MATRIX_TOKEN=MatrixServer.TOKEN):
        await matrix.say(ROOM, ALICE, "write the files")
        [first] = await matrix.wait_for(body_has(matrix, "echo chat > chat.txt"))
        await matrix.say(ROOM, MALLORY, "allow", reply_to=first["event_id"])  # not allowed to
        await matrix.say(ROOM, ALICE, "allow", reply_to=first["event_id"])
        await matrix.wait_for(body_has(matrix, "→ allowed by kfd-chat"))
        [second] = await matrix.wait_for(body_has(matrix, "echo no > no.txt"))
        await matrix.react(ROOM, ALICE, second["event_id"], "👎")
        await matrix.wait_for(body_has(matrix, "→ denied by kfd-chat"))
        await matrix.wait_for(body_is(matrix, "finished"))

    assert (workspace / "chat.txt").read_text() == "chat\n"
    assert not (workspace / "no.txt").exists()
    tool_results = [m for m in model_server.requests[2].body["messages"] if m["role"] == "tool"]
    assert "denied in chat by @alice:localhost" in tool_results[-1]["content"]


async def test_an_always_reply_keeps_the_rule_for_the_project_but_never_a_one_off_grant(
    make_daemon, model_server: ScriptedModelServer, workspace: Path, tmp_path: Path, matrix
) -> None:
    command = "echo kept > kept.txt"
    rule = f"bash({command})"
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": command})]), Reply(text="finished")
    )
    # The sandbox cannot start: after the rule's question comes a one-off grant's.
    no_sandbox = '[tools.bash]\nbwrap = "kfd-no-such-bwrap"\n'
    daemon = make_daemon(matrix_config(matrix, workspace, tmp_path / "state.json") + no_sandbox)
    async with bridge(daemon, "matrix", KFD_MATRIX_TOKEN=MatrixServer.TOKEN):
        await matrix.say(ROOM, ALICE, "write it")
        [asked] = await matrix.wait_for(body_has(matrix, f"keeps the rule `{rule}`"))
        await matrix.say(ROOM, ALICE, "always", reply_to=asked["event_id"])
        await matrix.wait_for(body_has(matrix, "→ allowed always in this project by kfd-chat"))
        [grant] = await matrix.wait_for(body_has(matrix, "The sandbox cannot start"))
        assert "always" not in grant["body"]
        await matrix.say(ROOM, ALICE, "allow always", reply_to=grant["event_id"])
        await matrix.wait_for(body_has(matrix, "`always` cannot answer it"))
        await matrix.say(ROOM, ALICE, "allow", reply_to=grant["event_id"])
        await matrix.wait_for(body_is(matrix, "finished"))

    async with await daemon.client() as client:
        listed = await client.rules(cwd=workspace)
    assert [r.rule for r in listed.rules if r.source == "always"] == [rule]
    assert (workspace / "kept.txt").read_text() == "kept\n"


async def test_a_dropped_connection_and_a_restart_lose_nothing_and_repeat_nothing(
    make_daemon, model_server: ScriptedModelServer, workspace: Path, tmp_path: Path, matrix
) -> None:
    model_server.add(Reply(text="one"), Reply(text="two"), Reply(text="three"))
    daemon = make_daemon(matrix_config(matrix, workspace, tmp_path / "state.json"))
    token = {"KFD_MATRIX_TOKEN": MatrixServer.TOKEN}
    async with bridge(daemon, "matrix", **token):
        await matrix.say(ROOM, ALICE, "first")
        await matrix.wait_for(body_is(matrix, "one"))
        syncs = matrix.syncs
        matrix.drop()  # the long poll in flight dies, and the next one too
        await matrix.wait_for(lambda: matrix.syncs >= syncs + 2)
        await matrix.say(ROOM, ALICE, "second")
        await matrix.wait_for(body_is(matrix, "two"))
    await matrix.say(ROOM, ALICE, "third")  # while no bridge runs
    async with bridge(daemon, "matrix", **token):
        await matrix.wait_for(body_is(matrix, "three"))

    async with await daemon.client() as client:
        [session] = await client.sessions()
        async with await client.attach(session.id) as view:
            history: list = []
            while not history or history[-1].seq < session.last_seq:
                history.append(await view.next_event(5))
    said = [e.text for e in history if isinstance(e, p.MessageUser)]
    assert said == ["first", "second", "third"]
    assert len(model_server.requests) == 3
    bodies = [m["body"] for m in matrix.messages(ROOM)]
    assert bodies.count("one") == bodies.count("two") == bodies.count("three") == 1
    # A post the bridge could not confirm before the restart may be sent again,
    # always under its first transaction id, which the homeserver keeps once:
    # every send carried one of the ids the room shows.
    assert matrix.sends >= len(matrix.by_txn)


def test_missing_credentials_and_empty_allow_lists_are_refused(
    make_daemon, workspace: Path, tmp_path: Path
) -> None:
    config = f"""
[chat.matrix]
homeserver = "http://127.0.0.1:9"
user_id = "@kfd:localhost"
rooms = ["{ROOM}"]
"""
    daemon = make_daemon(config)
    no_token = daemon.cli("chat", "matrix", timeout=20)
    assert no_token.returncode == 2 and "$KFD_MATRIX_TOKEN is not set" in no_token.stderr
    daemon.env["KFD_MATRIX_TOKEN"] = "x"
    no_allow = daemon.cli("chat", "matrix", timeout=20)
    assert no_allow.returncode == 2 and "allow is empty" in no_allow.stderr
    no_slack = daemon.cli("chat", "slack", timeout=20)
    assert no_slack.returncode == 2 and "[chat.slack] is missing" in no_slack.stderr
    (daemon.config_dir / "config.toml").write_text("[chat]\nmode = 'reckless'\n")
    bad = daemon.cli("chat", "matrix", timeout=20)
    assert bad.returncode == 2 and "mode" in bad.stderr


async def test_slack_messages_reach_the_session_once_across_redeliveries_and_a_drop(
    make_daemon, model_server: ScriptedModelServer, workspace: Path, tmp_path: Path
) -> None:
    slack = await SlackServer().start()
    model_server.add(Reply(text="hello alice"), Reply(text="second answer"), Reply(text="third"))
    daemon = make_daemon(f"""
[chat]
workspace = {json.dumps(str(workspace))}
state_file = {json.dumps(str(tmp_path / "slack.json"))}

[chat.slack]
base_url = "{slack.base_url}"
channels = ["C1"]
allow = ["UALICE"]
edit_interval_s = 0.2
ping_interval_s = 0.3
""")
    env = {
        "KFD_SLACK_APP_TOKEN": SlackServer.APP_TOKEN,
        "KFD_SLACK_BOT_TOKEN": SlackServer.BOT_TOKEN,
    }
    try:
        async with bridge(daemon, "slack", **env):
            await slack.wait_for(lambda: slack.connections == 1)
            await slack.message("C1", "UMALLORY", "drop the database")
            await slack.message("C1", "UALICE", "hi", event_id="EvHi")
            await slack.wait_for(
                lambda: any(slack.text_of(x["ts"]) == "hello alice" for x in slack.posts)
            )
            await slack.message("C1", "UALICE", "hi", event_id="EvHi")  # Slack's retry
            await slack.message("C1", "UALICE", "and again", event_id="EvAgain")
            await slack.wait_for(
                lambda: any(slack.text_of(x["ts"]) == "second answer" for x in slack.posts)
            )
            await slack.drop()
            await slack.message("C1", "UALICE", "after the drop", event_id="EvAfter")
            await slack.wait_for(lambda: slack.connections == 2)
            await slack.wait_for(
                lambda: any(slack.text_of(x["ts"]) == "third" for x in slack.posts)
            )
    finally:
        await slack.stop()

    users = [
        m["content"] for m in model_server.requests[-1].body["messages"] if m["role"] == "user"
    ]
    assert users == ["hi", "and again", "after the drop"]
    assert len(model_server.requests) == 3
