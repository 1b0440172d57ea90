"""A repository is untrusted until the user trusts it, and the config is live: a real
daemon, the scripted model calling real tools, a real git repository, canaries."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from kfd import protocol as p
from kfd.client import Client, Notices, RequestFailed
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import FAST_RETRIES, KfdDaemon
from kfd.testing.events import collect_until, of_type

MakeDaemon = Callable[..., KfdDaemon]

GRANTING = """\
[permissions]
allow = ["bash", "edit(/**)", "read(/**)"]
defaults = false
"""


def call(tool: str, **arguments: object) -> Reply:
    return Reply(tool_calls=[ScriptedToolCall(tool, dict(arguments))])


async def turn(
    client: Client, session: str, text: str, *, answer: p.ApprovalDecision | None = None
) -> list:
    """Send ``text`` and read the turn to its end, answering approvals with ``answer``."""
    since = (await client.session(session)).last_seq
    async with await client.attach(session, since_seq=since) as view:
        await client.send(session, text)
        items: list = []
        while True:
            item = await view.next_event(20.0)
            items.append(item)
            if isinstance(item, p.ApprovalRequested):
                assert answer is not None, f"unexpected approval: {item.reason}"
                await client.respond(session, item.approval_id, answer)
            if isinstance(item, p.TurnCompleted):
                return items


def of(items: list, kind: type) -> list:
    return [item for item in items if isinstance(item, kind)]


def commit(repo: Path, *paths: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "a",
        "GIT_AUTHOR_EMAIL": "a@localhost",
        "GIT_COMMITTER_NAME": "a",
        "GIT_COMMITTER_EMAIL": "a@localhost",
    }
    subprocess.run(["git", "add", *paths], cwd=repo, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "kfd config"], cwd=repo, check=True, env=env)


async def next_of(notices: Notices, kind: type, timeout: float = 15.0) -> p.Event:
    async with asyncio.timeout(timeout):
        while True:
            event = await notices.next_event(timeout)
            if isinstance(event, kind):
                return event


async def test_a_committed_project_config_grants_nothing_until_trusted_and_again_after_a_change(
    make_daemon: MakeDaemon, model_server: ScriptedModelServer, workspace: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    canary = outside / "canary.txt"
    canary.write_text("CANARY-OUTSIDE-7f3a\n")
    written = outside / "written.txt"
    (workspace / ".kfd").mkdir()
    config = workspace / ".kfd" / "config.toml"
    config.write_text(GRANTING)
    commit(workspace, ".kfd/config.toml")
    daemon = make_daemon()
    aws = daemon.home / ".aws"
    aws.mkdir()
    (aws / "credentials").write_text("aws_secret_access_key = CANARY-AWS-9c2e\n")

    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            asked = (await collect_until(view, of_type(p.TrustRequired), 15.0))[-1]
        assert asked.path == str(config) and asked.project == str(workspace)
        assert asked.grants == ["allow bash", "allow edit(/**)", "allow read(/**)"]
        assert "allow read(/**): not until you trust this file" in asked.ignored
        assert any("defaults = false" in line for line in asked.ignored)

        # Untrusted: reading outside the workspace asks (we deny), writing outside is denied.
        model_server.add(call("read", path=str(canary)), Reply(text="read it"))
        items = await turn(client, info.id, "read the canary", answer="deny")
        assert len(of(items, p.ApprovalRequested)) == 1
        assert "CANARY-OUTSIDE" not in json.dumps([str(i) for i in items])
        model_server.add(call("write", path=str(written), content="x"), Reply(text="wrote"))
        items = await turn(client, info.id, "write outside")
        (done,) = of(items, p.ToolCompleted)
        assert done.status == "denied" and "outside the workspace" in done.output
        assert not written.exists()

    rules = daemon.cli("rules", "list", "--cwd", str(workspace))
    assert "allow bash: not until you trust this file" in rules.stdout
    assert "defaults = false" in rules.stdout
    explained = daemon.cli("explain", "--cwd", str(workspace), "touch x")
    assert explained.stdout.startswith("ask:")
    assert "ignored in the project config (kfd trust): allow bash: not until" in explained.stdout

    shown = daemon.cli("trust", str(workspace), stdin=subprocess.DEVNULL)
    assert shown.returncode == 1, shown.stderr
    assert "not trusted" in shown.stdout and "allow edit(/**)" in shown.stdout
    trusted = daemon.cli("trust", "--yes", str(workspace))
    assert trusted.returncode == 0, trusted.stderr
    assert f"trusted {config}" in trusted.stdout

    async with await daemon.client() as client:
        async with await client.attach(info.id) as view:
            told = await collect_until(view, of_type(p.TrustChanged), 15.0)
            after = await collect_until(view, of_type(p.TrustRequired), 15.0)
        assert told[-1].trusted and told[-1].by is not None and told[-1].by.name == "kfd-trust"
        # Trusted, only what trust cannot change is still ignored: nothing left to grant.
        assert after[-1].grants == [] and all("defaults" in x for x in after[-1].ignored)
        # Trusted: the same read and write go through without a question.
        model_server.add(call("read", path=str(canary)), Reply(text="read it"))
        items = await turn(client, info.id, "read the canary again")
        assert of(items, p.ApprovalRequested) == []
        assert "CANARY-OUTSIDE" in of(items, p.ToolCompleted)[0].output
        model_server.add(call("write", path=str(written), content="x"), Reply(text="wrote"))
        items = await turn(client, info.id, "write outside again")
        assert of(items, p.ToolCompleted)[0].status == "ok" and written.read_text() == "x"
        # ... but `defaults = false` from a project is never honoured: credentials stay denied.
        model_server.add(call("read", path=str(aws / "credentials")), Reply(text="no"))
        items = await turn(client, info.id, "read the aws credentials")
        (denied,) = of(items, p.ToolCompleted)
        assert denied.status == "denied" and "read(~/.aws/**)" in denied.output
        assert "CANARY-AWS" not in denied.output

        # A change to the file (a pull, a checkout) makes it untrusted again.
        config.write_text(GRANTING + "# updated upstream\n")
        model_server.add(call("read", path=str(canary)), Reply(text="read it"))
        items = await turn(client, info.id, "read the canary once more", answer="deny")
        assert len(of(items, p.ApprovalRequested)) == 1
        async with await client.attach(info.id) as view:
            events = await collect_until(
                view, lambda item: isinstance(item, p.TrustRequired) and item.sha256 != asked.sha256
            )
        assert events[-1].grants == asked.grants
    listed = daemon.cli("trust", "--list")
    assert str(config) in listed.stdout and "changed since" in listed.stdout


async def test_trust_is_pinned_to_the_content_shown_and_every_frontend_hears_of_it(
    make_daemon: MakeDaemon, workspace: Path
) -> None:
    (workspace / ".kfd").mkdir()
    config = workspace / ".kfd" / "config.toml"
    config.write_text('[permissions]\nallow = ["bash(make *)"]\n')
    daemon = make_daemon()
    async with await daemon.client() as client, await daemon.client("other") as other:
        notices = await other.notices()
        assert (await client.explain("make all", cwd=workspace)).decision == "ask"
        shown = await client.trust(workspace)
        assert not shown.trusted and shown.grants == ["allow bash(make *)"]

        config.write_text('[permissions]\nallow = ["bash(make *)", "bash(curl *)"]\n')
        with pytest.raises(RequestFailed) as refused:
            await client.set_trust(workspace, shown.sha256)
        assert refused.value.code == "conflict" and "changed since it was shown" in str(
            refused.value.message
        )
        assert (await client.explain("curl http://127.0.0.1/", cwd=workspace)).decision == "ask"

        again = await client.trust(workspace)
        trusted = await client.set_trust(workspace, again.sha256)
        assert trusted.trusted
        changed = await next_of(notices, p.TrustChanged)
        assert changed.trusted and changed.path == str(config) and changed.by is not None
        assert (await client.explain("make all", cwd=workspace)).decision == "allow"
        listing = await client.trusted_files()
        assert [pin.path for pin in listing.files] == [str(config)] and listing.changed == []

    daemon.restart()
    async with await daemon.client() as client:
        assert (await client.explain("make all", cwd=workspace)).decision == "allow"
        revoked = await client.set_trust(workspace, trusted=False)
        assert not revoked.trusted and revoked.pinned is None
        assert (await client.explain("make all", cwd=workspace)).decision == "ask"
        with pytest.raises(RequestFailed) as bad:
            await client.set_trust(workspace, "nonsense")
        assert bad.value.code == "conflict"


async def test_a_config_edit_applies_to_the_next_decision_and_a_broken_one_keeps_the_last(
    make_daemon: MakeDaemon, workspace: Path
) -> None:
    daemon = make_daemon()
    user_config = daemon.config_dir / "config.toml"
    async with await daemon.client() as client, await client.notices() as notices:
        assert (await client.explain("touch made", cwd=workspace)).decision == "ask"

        user_config.write_text(FAST_RETRIES + '[permissions]\nallow = ["bash(touch made)"]\n')
        # The very next decision sees it: no waiting for the watcher.
        assert (await client.explain("touch made", cwd=workspace)).decision == "allow"
        reloaded = await next_of(notices, p.ConfigReloaded)
        assert reloaded.path == str(user_config)
        assert any(line.startswith("[permissions]") for line in reloaded.applied)

        user_config.write_text(FAST_RETRIES + "[permissions\nallow = [")
        broken = await next_of(notices, p.ConfigInvalid)
        assert str(user_config) in broken.message and "not valid TOML" in broken.message
        assert (await client.explain("touch made", cwd=workspace)).decision == "allow"
        status = await client.status()
        assert status.config_error == broken.message
        assert any(problem.startswith("config: ") for problem in status.problems)
        printed = daemon.cli("status")
        assert "does not load" in printed.stdout and "not valid TOML" in printed.stdout

        user_config.write_text(FAST_RETRIES + '[permissions]\ndeny = ["bash(touch *)"]\n')
        assert (await client.explain("touch made", cwd=workspace)).decision == "deny"
        await next_of(notices, p.ConfigReloaded)
        assert (await client.status()).config_error == ""
    assert daemon.running


async def test_the_agent_limits_of_a_reloaded_config_apply_to_the_next_turn(
    make_daemon: MakeDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    daemon = make_daemon()
    async with await daemon.client() as client, await client.notices() as notices:
        info = await client.create_session(workspace, mode="auto")
        daemon.config_dir.joinpath("config.toml").write_text(
            FAST_RETRIES + "[agent]\nmax_steps = 1\n"
        )
        reloaded = await next_of(notices, p.ConfigReloaded)
        assert any(line.startswith("[agent]") for line in reloaded.applied)
        model_server.add(call("glob", pattern="*.md"), Reply(text="never asked"))
        items = await turn(client, info.id, "look around")
        (done,) = of(items, p.TurnCompleted)
        assert done.stop_reason == "max_steps" and "max_steps" in done.message
