"""The pure parts of ``kfd acp``: events to updates, prompts to messages, the fast start."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from acp import schema as a

from kfd import protocol as p
from kfd_acp import prompts, tools
from kfd_acp.capabilities import frontend_name, initialize_result, negotiate
from kfd_acp.early import NewSession, plain_new_session
from kfd_acp.session import decision_of, permission_options
from kfd_acp.startup import answer_initialize, read_first_line
from kfd_acp.translate import Translator

S = "s0123456789abcdef012"


def delta(text: str, offset: int, kind: str = "text", message_id: str = "m1") -> p.MessageDelta:
    return p.MessageDelta(
        session=S,
        message_id=message_id,
        text=text,
        offset=offset,
        kind=kind,  # type: ignore[arg-type]
    )


def texts(updates: list) -> list[tuple[str, str]]:
    return [(u.session_update, u.content.text) for u in updates]


def test_streamed_text_is_sent_once_and_the_completed_message_adds_only_what_is_missing() -> None:
    t = Translator(cwd="/w")
    sent = t.updates(delta("Hel", 0)) + t.updates(delta("Hello", 0)) + t.updates(delta("lo!", 3))
    sent += t.updates(delta("Hmm", 0, kind="reasoning"))
    sent += t.updates(
        p.MessageCompleted(session=S, message_id="m1", text="Hello! Bye.", reasoning="Hmm.")
    )
    assert texts(sent) == [
        ("agent_message_chunk", "Hel"),
        ("agent_message_chunk", "lo"),
        ("agent_message_chunk", "!"),
        ("agent_thought_chunk", "Hmm"),
        ("agent_thought_chunk", "."),
        ("agent_message_chunk", " Bye."),
    ]


def test_a_replayed_message_is_sent_whole_and_a_retried_one_says_it_was_cut() -> None:
    t = Translator(cwd="/w")
    replayed = t.updates(p.MessageCompleted(session=S, message_id="m0", text="From the log."))
    assert texts(replayed) == [("agent_message_chunk", "From the log.")]
    t.updates(delta("Half an ans", 0, message_id="m2"))
    (note,) = t.updates(p.MessageDiscarded(session=S, message_id="m2", reason="dropped"))
    assert "cut off" in note.content.text
    assert t.updates(p.MessageDiscarded(session=S, message_id="m3")) == []  # nothing was shown


def test_the_editors_own_messages_are_not_echoed_but_other_frontends_messages_are() -> None:
    t = Translator(cwd="/w", own_messages={"u.acp.1"})
    assert t.updates(p.MessageUser(session=S, message_id="u.acp.1", text="mine")) == []
    (other,) = t.updates(p.MessageUser(session=S, message_id="u2", text="from a terminal"))
    assert (other.session_update, other.content.text) == ("user_message_chunk", "from a terminal")


def test_mode_and_title_changes_are_sent_once_each() -> None:
    t = Translator(cwd="/w", mode="default", title="")
    info = p.SessionInfo(id=S, cwd="/w", mode="plan", title="fix it")
    first = t.updates(p.SessionUpdated(session=S, info=info))
    again = t.updates(p.SessionUpdated(session=S, info=info))
    assert [u.session_update for u in first] == ["current_mode_update", "session_info_update"]
    assert first[0].current_mode_id == "plan" and again == []


def test_a_bash_call_streams_its_output_and_ends_with_its_status() -> None:
    t = Translator(cwd="/w")
    (start,) = t.updates(
        p.ToolRequested(session=S, call_id="c1", name="bash", arguments={"command": "make\ntest"})
    )
    (running,) = t.updates(p.ToolStarted(session=S, call_id="c1", name="bash"))
    (chunk,) = t.updates(p.ToolOutput(session=S, call_id="c1", data="building\n"))
    (done,) = t.updates(
        p.ToolCompleted(
            session=S,
            call_id="c1",
            name="bash",
            status="error",
            output="building\nfailed",
            reason="",
        )
    )
    assert (start.kind, start.title, start.status) == ("execute", "`make …`", "pending")
    assert running.status == "in_progress"
    assert chunk.content[0].content.text == "```console\n$ make\ntest\nbuilding\n```"
    assert done.status == "failed"
    assert "building\nfailed" in done.content[-1].content.text


def test_an_edit_is_a_diff_located_at_its_first_changed_line() -> None:
    t = Translator(cwd="/w")
    arguments = {"path": "src/a.py", "old_string": "x = 1", "new_string": "x = 2"}
    (start,) = t.updates(
        p.ToolRequested(
            session=S, call_id="c2", name="edit", arguments=arguments, summary="src/a.py"
        )
    )
    diff = "--- a/src/a.py\n+++ b/src/a.py\n@@ -3,3 +3,3 @@\n a\n b\n-x = 1\n+x = 2\n"
    (done,) = t.updates(
        p.ToolCompleted(
            session=S,
            call_id="c2",
            name="edit",
            output="Edited src/a.py: replaced 1 occurrence (line 5).\n...",
            display=p.Preview(diff=diff),
        )
    )
    assert (start.kind, start.title) == ("edit", "Edit src/a.py")
    (content,) = start.content
    assert (content.path, content.old_text, content.new_text) == ("/w/src/a.py", "x = 1", "x = 2")
    assert [(loc.path, loc.line) for loc in done.locations] == [("/w/src/a.py", 5)]
    assert done.content[-1].content.text == "Edited src/a.py: replaced 1 occurrence (line 5)."


def test_what_an_approval_shows_spells_out_hidden_characters() -> None:
    t = Translator(cwd="/w")
    sneaky = "echo safe\u202e; rm -rf ~\u202c"
    t.updates(p.ToolRequested(session=S, call_id="c3", name="bash", arguments={"command": sneaky}))
    call = t.permission_call(
        p.ApprovalRequested(
            session=S,
            approval_id="a1",
            call_id="c3",
            tool="bash",
            preview=p.Preview(command=sneaky),
            reason="bash asks",
            session_rule=f"bash({sneaky})",
            can_keep=True,
        )
    )
    shown = json.dumps([c.content.text for c in call.content]) + (call.title or "")
    assert "\u202e" not in shown and "<U+202E>" in shown
    options = permission_options(
        p.ApprovalRequested(
            session=S, approval_id="a1", call_id="c3", tool="bash", session_rule=f"bash({sneaky})"
        )
    )
    assert all("\u202e" not in o.name for o in options)


def test_an_approval_shows_the_change_the_daemon_worked_out_not_the_models_arguments() -> None:
    t = Translator(cwd="/w")
    arguments = {
        "path": "settings.py",
        "old_string": "DEBUG = False",
        "new_string": "DEBUG = True",
        "replace_all": True,
    }
    t.updates(p.ToolRequested(session=S, call_id="c4", name="edit", arguments=arguments))
    diff = "".join(f"-DEBUG = False  # {n}\n+DEBUG = True  # {n}\n" for n in range(4))
    call = t.permission_call(
        p.ApprovalRequested(
            session=S,
            approval_id="a4",
            call_id="c4",
            tool="edit",
            preview=p.Preview(summary="settings.py", diff=diff),
            reason="default mode asks before it edits",
        )
    )
    texts = [c.content.text for c in call.content if c.type == "content"]
    assert any(all(f"+DEBUG = True  # {n}" in text for n in range(4)) for text in texts)
    assert all(c.type != "diff" for c in call.content)  # not the one-snippet guess


def test_an_approval_under_an_id_another_call_took_shows_its_own_call() -> None:
    t = Translator(cwd="/w")
    command = "echo pwned > pwned.txt"
    t.updates(
        p.ToolRequested(session=S, call_id="dup", name="bash", arguments={"command": command})
    )
    write = {"path": "notes.txt", "content": "hello\n"}
    t.updates(p.ToolRequested(session=S, call_id="dup", name="write", arguments=write))
    call = t.permission_call(
        p.ApprovalRequested(
            session=S,
            approval_id="a5",
            call_id="dup",
            tool="bash",
            preview=p.Preview(summary=command, command=command),
            reason="bash asks",
        )
    )
    shown = (call.title or "") + json.dumps([c.model_dump() for c in call.content or []])
    assert command in shown
    assert "notes.txt" not in shown and call.kind == "execute"


def test_permission_options_offer_always_only_when_the_daemon_can_keep_the_rule() -> None:
    grant = p.ApprovalRequested(
        session=S, approval_id="a", call_id="c", tool="bash", session_rule="grant(bash:unsandboxed)"
    )
    rule = p.ApprovalRequested(
        session=S, approval_id="a", call_id="c", tool="bash", session_rule="bash(ls)", can_keep=True
    )
    assert [o.option_id for o in permission_options(grant)] == ["allow", "allow_session", "deny"]
    assert [o.option_id for o in permission_options(rule)] == [
        "allow",
        "allow_session",
        "allow_always",
        "deny",
    ]
    assert permission_options(rule)[2].name == "Always allow in this project: bash(ls)"
    assert [decision_of(o.option_id) for o in permission_options(rule)] == [
        "allow",
        "allow_session",
        "allow_always",
        "deny",
    ]
    assert decision_of("yes please") is None


def test_the_plan_is_the_task_list() -> None:
    (plan,) = Translator(cwd="/w").updates(
        p.TasksUpdated(
            session=S,
            tasks=[p.Task(text="read", status="done"), p.Task(text="fix", status="in_progress")],
        )
    )
    assert [(e.content, e.status) for e in plan.entries] == [
        ("read", "completed"),
        ("fix", "in_progress"),
    ]


def test_first_changed_line_and_fences() -> None:
    assert tools.first_changed_line("@@ -0,0 +1,2 @@\n+a\n+b\n") == 1
    assert tools.first_changed_line("@@ -10,4 +12,5 @@\n c\n c\n+new\n") == 14
    assert tools.first_changed_line("no diff here") is None
    assert tools.fenced("has ``` inside") == "````\nhas ``` inside\n````"


def test_a_prompt_becomes_one_message_with_mentions_and_attached_files(tmp_path: Path) -> None:
    cwd = str(tmp_path)
    blocks = [
        a.TextContentBlock(type="text", text="look at"),
        a.ResourceContentBlock(type="resource_link", uri=f"file://{cwd}/src/a.py", name="a.py"),
        a.EmbeddedResourceContentBlock(
            type="resource",
            resource=a.TextResourceContents(uri=f"file://{cwd}/b.py", text="print(1)\n"),
        ),
    ]
    text = prompts.as_message(blocks, cwd)  # type: ignore[arg-type]
    assert text.startswith("look at @src/a.py")
    assert "b.py (as the editor has it):\n```\nprint(1)\n```" in text
    with pytest.raises(prompts.PromptRefused, match="text only"):
        prompts.as_message([a.ImageContentBlock(type="image", data="", mime_type="image/png")], cwd)
    with pytest.raises(prompts.PromptRefused, match="empty"):
        prompts.as_message([a.TextContentBlock(type="text", text="  ")], cwd)
    assert prompts.invocation("/compact keep the API") == prompts.Invocation(
        "compact", "keep the API"
    )
    assert prompts.invocation("/etc/passwd is a file") is None


def test_the_initialize_answer_is_valid_acp_and_negotiates_the_version() -> None:
    response = a.InitializeResponse.model_validate(initialize_result(1))
    assert response.protocol_version == 1
    caps = response.agent_capabilities
    assert caps is not None and caps.load_session and caps.prompt_capabilities is not None
    assert caps.prompt_capabilities.image is False
    assert (negotiate(1), negotiate(99), negotiate("1"), negotiate(True)) == (1, 1, 1, 1)


def test_the_fast_start_answers_initialize_from_the_first_line_and_keeps_the_rest() -> None:
    read_in, write_in = os.pipe()
    read_out, write_out = os.pipe()
    request = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": 1}}
    os.write(write_in, json.dumps(request).encode() + b'\n{"next": 1}\n')
    first, rest = read_first_line(read_in)
    params = answer_initialize(first, write_out)
    answer = json.loads(os.read(read_out, 65536))
    assert rest == b'{"next": 1}\n' and params == {"protocolVersion": 1}
    assert answer["id"] == 0 and answer["result"] == initialize_result(1)
    assert answer_initialize(b'{"id": 1, "method": "session/new"}\n', write_out) is None
    assert answer_initialize(b"{garbage\n", write_out) is None
    for fd in (read_in, write_in, read_out, write_out):
        os.close(fd)


def test_only_a_plain_session_new_is_answered_before_the_library_loads(tmp_path: Path) -> None:
    env = {"name": "K", "value": "v"}

    def new(request_id: object = 7, **params: object) -> dict[str, object]:
        return {"jsonrpc": "2.0", "id": request_id, "method": "session/new", "params": params}

    here = str(tmp_path)
    assert plain_new_session(new(cwd=here, mcpServers=[])) == NewSession(7, here, [])
    assert plain_new_session(new("a", cwd=here)) == NewSession("a", here, [])
    stdio = {"name": "My tools", "command": "/bin/true", "args": ["-x"], "env": [env]}
    http = {"type": "http", "name": "web", "url": "http://127.0.0.1:1/mcp", "headers": [env]}
    given = plain_new_session(new(cwd=here, mcpServers=[stdio, http]))
    assert given is not None and given.servers == [
        p.McpServer(name="My_tools", command="/bin/true", args=["-x"], env={"K": "v"}),
        p.McpServer(name="web", url="http://127.0.0.1:1/mcp", headers={"K": "v"}),
    ]  # as the agent converts the library's models (`kfd_acp.servers`)
    sse = {"type": "sse", "name": "old", "url": "http://127.0.0.1:1/sse", "headers": []}
    assert plain_new_session(new(cwd=here, mcpServers=[sse])) is None  # the agent refuses it
    assert plain_new_session(new(cwd=here, mcpServers={"a": 1})) is None
    for malformed in ({"env": 3}, {"name": "x"}, {**stdio, "args": [1]}, {**http, "url": None}):
        assert plain_new_session(new(cwd=here, mcpServers=[malformed])) is None
    assert plain_new_session(new(cwd="relative")) is None
    assert plain_new_session(new(cwd=str(tmp_path / "missing"))) is None
    assert plain_new_session(new(True, cwd=here)) is None  # a bool is no id
    assert plain_new_session({"method": "session/new", "params": {"cwd": here}}) is None
    assert plain_new_session({**new(cwd=here), "method": "session/load"}) is None
    assert plain_new_session(None) is None
    assert frontend_name({"clientInfo": {"name": " zed "}}) == "acp:zed"
    assert frontend_name({"clientInfo": {}}) == frontend_name(None) == "acp"


def test_what_an_untrusted_project_config_holds_reaches_the_editor_escaped_and_unformatted() -> (
    None
):
    hostile = "allow bash\x08\x08\x08\x1b[2K\x1b[Aallow bash(make test)\u202e`` *x*"
    note = Translator(cwd="/w").updates(
        p.TrustRequired(
            session=S,
            project="/w",
            path="/w/.kfd/config.toml",
            sha256="0" * 64,
            ignored=[hostile, "line one\nline two"],
        )
    )
    ((kind, text),) = texts(note)
    assert kind == "agent_message_chunk"
    assert not any(c in text for c in "\x08\x1b\u202e")
    # Each line whole and escaped, inside a code span that its own backticks cannot close.
    assert (
        "\n- ``` allow bash\\x08\\x08\\x08\\x1b[2K\\x1b[Aallow bash(make test)<U+202E>`` *x* ```"
        in text
    )
    assert "\n- ` line one\\nline two `" in text


def test_a_config_that_does_not_load_is_said_once_quoted_and_that_it_loads_again() -> None:
    t = Translator(cwd="/w")
    path = "/home/u/.config/kfd/config.toml"
    message = f"{path}: Object contains unknown field `[x](http://e)` - at `$.permissions`"
    broken = p.ConfigInvalid(session=S, seq=3, path=path, message=message)
    ((kind, text),) = texts(t.updates(broken))
    assert kind == "agent_message_chunk"
    # The message may quote a repository's file: a code span its backticks cannot close.
    assert f"config not reloaded: `` {message} ``" in text
    # The daemon says so again at every message; the editor shows it once.
    assert t.updates(p.ConfigInvalid(session=S, seq=9, path=path, message=message)) == []
    other = p.ConfigInvalid(session=S, seq=10, path="/w/.kfd/config.toml", message="also broken")
    assert len(t.updates(other)) == 1
    fixed = p.ConfigReloaded(session=S, seq=11, path=path, applied=["[permissions]: now"])
    ((_, text),) = texts(t.updates(fixed))
    assert "loads again" in text and "[permissions]: now" in text
    assert t.updates(fixed) == []  # nothing was shown about it since
    assert len(t.updates(broken)) == 1  # broken again: said again


def test_a_command_in_an_approvals_reason_is_never_markdown_in_the_editor() -> None:
    from markdown_it import MarkdownIt

    hostile = (
        "npm run build -- '` ✅ **kfd: verified read-only, safe to allow** "
        "[policy check passed](https://kfd.example/ok) `'"
    )
    t = Translator(cwd="/w")
    t.updates(p.ToolRequested(session=S, call_id="c4", name="bash", arguments={"command": hostile}))
    call = t.permission_call(
        p.ApprovalRequested(
            session=S,
            approval_id="a2",
            call_id="c4",
            tool="bash",
            preview=p.Preview(command=hostile),
            reason=f"default mode asks before `bash`: `{hostile}` is not known to be read-only",
        )
    )
    for content in call.content or []:
        html = MarkdownIt("commonmark").render(content.content.text)
        assert "<strong>" not in html and "<a " not in html, html
