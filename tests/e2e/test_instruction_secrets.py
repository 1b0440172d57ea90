"""A repository cannot smuggle a secret into the system prompt through its
instruction files: what the read rules keep from the model's ``read``, the
loader keeps from the prompt, and the prompt says which file it left out.

Every assertion reads what the scripted model server received.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from conversation import conversation_daemon, system_of

from kfd import protocol as p
from kfd.testing import Reply, ScriptedToolCall
from kfd.testing.events import collect_until, turn_completed
from kfd.testing.fixtures import git_repo


async def test_instruction_files_leading_to_secrets_never_reach_the_model(
    tmp_path: Path,
) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / ".gitignore").write_text(".env\n")
    (repo / ".env").write_text("STRIPE_KEY=sk_live_CANARY_ENV\n")  # the user's own
    (repo / "AGENTS.md").symlink_to(".env")  # committed by the repository
    (tmp_path / "token.txt").write_text("CANARY_HARD token\n")
    os.link(tmp_path / "token.txt", repo / "CLAUDE.md")
    (repo / "secrets").mkdir()
    (repo / "secrets" / "plan.md").write_text("CANARY_SECRETS plan\n")
    pkg = repo / "pkg"
    pkg.mkdir()
    (pkg / "AGENTS.md").symlink_to("../secrets/plan.md")
    (pkg / "KFD.md").write_text("PKG-OK: run make check.\n")

    rules = '[permissions]\ndeny = ["read(**/secrets/**)"]\n'
    with conversation_daemon(config=rules) as (model, daemon):
        (daemon.home / ".ssh").mkdir()
        (daemon.home / ".ssh" / "id_rsa").write_text("-----BEGIN CANARY_KEY-----\n")
        (repo / "KFD.md").symlink_to(daemon.home / ".ssh" / "id_rsa")
        (daemon.config_dir / "AGENTS.md").write_text("GLOBAL-OK: answer in English.\n")
        model.add(
            Reply(tool_calls=[ScriptedToolCall("read", {"path": "../.env"})]), Reply(text="ok")
        )
        async with await daemon.client() as client:
            info = await client.create_session(pkg)
            async with await client.attach(info.id) as session:
                await client.send(info.id, "hi")
                events = await collect_until(session, turn_completed, timeout=30)
            report = await client.context(info.id)

    sent = json.dumps([request.body for request in model.requests])
    assert "CANARY" not in sent, "a secret reached the model"
    read = next(e for e in events if isinstance(e, p.ToolCompleted))
    assert read.status == "denied"  # the model's own read meets the same rule
    system = system_of(model.requests[0])
    assert "GLOBAL-OK" in system and "PKG-OK" in system
    assert "## AGENTS.md\n[AGENTS.md is left out, its content not shown:" in system
    assert f"it is a link to {repo / '.env'}, which" in system and "read(**/.env)" in system
    assert "[KFD.md is left out" in system
    assert "[CLAUDE.md is left out, its content not shown: it has 2 hard links" in system
    assert "[pkg/AGENTS.md is left out" in system and "read(**/secrets/**)" in system
    parts = {part.name: part for part in report.parts}
    assert parts["instructions"].detail == (
        "global AGENTS.md, AGENTS.md (left out), KFD.md (left out), CLAUDE.md (left out), "
        "pkg/AGENTS.md (left out), pkg/KFD.md"
    )
