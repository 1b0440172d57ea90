"""A home reached through a link, and a dotfile linked into it, keep their secrets
from the read and grep tools.

Round 23: with ``$HOME`` a link (``/home`` -> ``/var/home`` on Fedora Silverblue and
CoreOS) and a session in the home, ``read(~/.aws/**)`` and the other built-in home
rules were matched at ``$HOME`` as spelled while kfd weighs each path where it
really is: ``grep`` printed the AWS key and the GitHub token and ``read`` returned
both files, in auto mode, with no question. A real daemon, real links, the scripted
model calling the tools; the canaries must never reach the model.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kfd import protocol as p
from kfd.client import Item
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import turn_completed

AWS = "CanaryAwsThroughALink9"
GH = "CanaryGhThroughALink8"


@pytest.fixture
def linked_root() -> Iterator[Path]:
    """A daemon root whose ``home`` is a link to ``var_home/u``, holding the secrets."""
    root = Path(tempfile.mkdtemp(prefix="kfd-"))
    real = root / "var_home" / "u"
    (real / ".aws").mkdir(parents=True)
    (real / ".aws" / "credentials").write_text(f"[default]\naws_secret_access_key = {AWS}\n")
    # `.config` a link into the user's dotfiles, as GNU stow or yadm make it (round 24).
    (real / "dotfiles" / "config" / "gh").mkdir(parents=True)
    (real / "dotfiles" / "config" / "gh" / "hosts.yml").write_text(
        f"github.com:\n  oauth_token: {GH}\n"
    )
    (real / ".config").symlink_to("dotfiles/config")
    (real / "proj").mkdir()
    (real / "proj" / "notes.txt").write_text("hello\n")
    (root / "home").symlink_to(real)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def call(tool: str, **arguments: object) -> Reply:
    return Reply(tool_calls=[ScriptedToolCall(tool, dict(arguments))])


@pytest.mark.parametrize("where", ["home", "proj"])
async def test_the_homes_secrets_stay_out_when_home_is_a_link(
    make_daemon: Callable[..., KfdDaemon],
    model_server: ScriptedModelServer,
    linked_root: Path,
    where: str,
) -> None:
    home = linked_root / "home"
    real = linked_root / "var_home" / "u"
    workspace = home if where == "home" else home / "proj"
    up = "" if where == "home" else "../"
    model_server.add(
        call("grep", pattern="Canary", path=str(real), output_mode="content"),
        call("read", path=f"{up}.aws/credentials"),
        call("read", path=str(real / "dotfiles" / "config" / "gh" / "hosts.yml")),
        call("read", path="~/.aws/credentials"),
        Reply(text="done"),
    )
    daemon = make_daemon(root=linked_root)
    events: list[Item] = []
    async with await daemon.client() as client:
        info = await client.create_session(workspace, mode="auto")
        async with await client.attach(info.id) as view:
            await client.send(info.id, "find the canaries")
            while not events or not turn_completed(events[-1]):
                events.append(await view.next_event(60))
                asked = events[-1]
                if isinstance(asked, p.ApprovalRequested):  # grep of the home from proj
                    assert asked.tool == "grep" and where == "proj", asked
                    await client.respond(info.id, asked.approval_id, "allow")
    done = [e for e in events if isinstance(e, p.ToolCompleted)]
    assert len(done) == 4, events
    # Denied by the home's rules: not asked (an answer could not let the secret out).
    assert [c.status for c in done[1:]] == ["denied"] * 3, [c.output for c in done]
    assert "left out" in str(done[0].output)
    sent = json.dumps([request.body for request in model_server.requests])
    assert AWS not in sent and GH not in sent
