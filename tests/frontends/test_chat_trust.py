"""The chat bridge asks about an untrusted project config when a session starts in a
room, and an allow-listed user trusts it with ``!trust yes``: a real daemon, the real
``kfd chat`` process, a Matrix server's documented payloads on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from chat_servers import MatrixServer
from test_chat import ALICE, MALLORY, ROOM, body_has, bridge, matrix, matrix_config

from kfd.testing import ScriptedModelServer

__all__ = ["matrix"]  # the fixture, imported for this module's tests


async def test_a_session_started_from_chat_asks_for_trust_and_an_allowed_user_answers(
    make_daemon, model_server: ScriptedModelServer, workspace: Path, tmp_path: Path, matrix
) -> None:
    (workspace / ".kfd").mkdir()
    config = workspace / ".kfd" / "config.toml"
    config.write_text('[permissions]\nallow = ["bash(make *)"]\n')
    daemon = make_daemon(matrix_config(matrix, workspace, tmp_path / "state.json"))
    async with bridge(daemon, "matrix", KFD_MATRIX_TOKEN=MatrixServer.TOKEN):
        await matrix.say(ROOM, ALICE, "!new work")
        await matrix.wait_for(body_has(matrix, "is not trusted, so it only narrows rights"))
        [question] = await matrix.wait_for(body_has(matrix, "allow bash(make *)"))
        assert "!trust yes" in question["body"]
        await matrix.say(ROOM, MALLORY, "!trust yes")  # not allow-listed: ignored
        await matrix.say(ROOM, ALICE, "!trust")
        await matrix.wait_for(body_has(matrix, "grants: allow bash(make *)"))
        await matrix.say(ROOM, ALICE, "!trust yes")
        await matrix.wait_for(body_has(matrix, f"trusted {config} as shown"))
        await matrix.wait_for(body_has(matrix, f"{config} is trusted (by kfd-chat"))
    async with await daemon.client() as client:
        info = await client.trust(workspace)
        assert info.trusted and info.pinned is not None
        assert info.pinned.by.startswith("kfd-chat")
