"""The REPL application against a real daemon and the scripted model.

Keys go in through prompt-toolkit's pipe input; what the REPL prints is read
from its printer's record. Every wait is on the REPL's own change signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import stat
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.input.base import PipeInput
from prompt_toolkit.output import DummyOutput

from kfd import protocol as p
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import collect_until, turn_completed
from kfd_repl.app import MESSAGE_LIMIT, Repl
from kfd_repl.history import history_path, open_history
from kfd_repl.live import approval_prompt, toolbar

ENTER = "\r"
CTRL_C = "\x03"
CTRL_D = "\x04"
SHIFT_TAB = "\x1b[Z"
ESC_ENTER = "\x1b\r"
UP = "\x1b[A"
BACKSPACE = "\x7f"
TAB = "\t"


class Driver:
    """A running REPL: type into it, wait for what it prints or knows."""

    def __init__(self, repl: Repl, keys: PipeInput, task: asyncio.Task[int]) -> None:
        self.repl = repl
        self.keys = keys
        self.task = task

    def type(self, text: str) -> None:
        self.keys.send_text(text)

    @property
    def printed(self) -> str:
        return self.repl.printer.text()

    async def wait(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        try:
            await self.repl.wait_until(condition, timeout)
        except TimeoutError:
            pytest.fail(f"condition not met; the REPL printed:\n{self.printed}")

    async def wait_printed(self, text: str, timeout: float = 10.0) -> None:
        await self.wait(lambda: text in self.printed, timeout)

    async def exited(self, timeout: float = 10.0) -> int:
        async with asyncio.timeout(timeout):
            return await self.task

    async def question(self) -> None:
        """Wait until an approval is open and its keys answer it."""
        await self.wait(lambda: self.repl.approval_keys() in ("answer", "focused"))


@contextlib.asynccontextmanager
async def running_repl(
    daemon: KfdDaemon,
    info: p.SessionInfo,
    *,
    name: str = "repl:test",
    history_of: str | None = None,
) -> AsyncIterator[Driver]:
    client = await daemon.client(name)
    try:
        with create_pipe_input() as keys, create_app_session(input=keys, output=DummyOutput()):
            history = open_history(history_of) if history_of else None
            repl = Repl(client, info, cwd=info.cwd, history=history)
            task = asyncio.create_task(repl.run())
            driver = Driver(repl, keys, task)
            await driver.wait_printed(f"session {info.id}")
            try:
                yield driver
            finally:
                repl.exit()
                await asyncio.wait_for(task, 10)
    finally:
        await client.close()


async def new_session(
    daemon: KfdDaemon, workspace: Path, mode: p.Mode = "default"
) -> p.SessionInfo:
    async with await daemon.client("setup") as client:
        return await client.create_session(workspace, mode=mode)


async def session_info(daemon: KfdDaemon, session_id: str) -> p.SessionInfo:
    async with await daemon.client("check") as client:
        return await client.session(session_id)


# -- talking ----------------------------------------------------------------------------


async def test_a_typed_message_is_sent_and_the_answer_printed_as_markdown(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    answer = "Here is **bold** text.\n\n```python\ndef f(x):\n    return x + 1\n```\n\nDone."
    model_server.add(Reply(text=answer, chunk_delay_s=0.002))
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info) as repl:
        repl.type("show me code" + ENTER)
        await repl.wait_printed("Done.")
        printed = repl.printed
    assert "› show me code" in printed
    assert "Here is bold text." in printed and "**" not in printed
    assert "def f(x):" in printed and "```" not in printed
    assert printed.count("return x + 1") == 1  # streamed, printed once
    user = model_server.requests[0].body["messages"][-1]
    assert user == {"role": "user", "content": "show me code"}


async def test_escape_enter_adds_a_line_and_enter_sends_the_whole_message(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="got both lines"))
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info) as repl:
        repl.type("line one" + ESC_ENTER + "line two" + ENTER)
        await repl.wait_printed("got both lines")
    assert model_server.requests[0].body["messages"][-1]["content"] == "line one\nline two"


async def test_messages_typed_during_a_turn_are_queued_shown_as_queued_then_run(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    gate = workspace / "gate"
    command = f"echo waiting; while [ ! -e {gate} ]; do sleep 0.01; done"
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": command})]),
        Reply(text="first done"),
        Reply(text="second done"),
    )
    info = await new_session(daemon, workspace, mode="auto")
    async with running_repl(daemon, info) as repl:
        repl.type("first" + ENTER)
        await repl.wait(lambda: any(c.output for c in repl.repl.view.running_calls))
        repl.type("second" + ENTER)
        await repl.wait(lambda: "queued: second" in _live(repl.repl))
        assert "› second" not in repl.printed
        gate.touch()
        await repl.wait_printed("second done")
        printed = repl.printed
    assert printed.index("first done") < printed.index("› second") < printed.index("second done")


# -- keys and commands ---------------------------------------------------------------------


async def test_shift_tab_and_the_mode_command_change_the_permission_mode(
    daemon: KfdDaemon, workspace: Path
) -> None:
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info) as repl:
        repl.type(SHIFT_TAB)
        await repl.wait_printed("mode accept-edits (set by you)")
        repl.type("/mode plan" + ENTER)
        await repl.wait_printed("mode plan (set by you)")
        repl.type("/mode sideways" + ENTER)
        await repl.wait_printed("unknown mode 'sideways'")
        assert repl.repl.view.info.mode == "plan"
    assert (await session_info(daemon, info.id)).mode == "plan"


async def test_the_model_command_shows_and_changes_the_model_and_refuses_nonsense(
    daemon: KfdDaemon, workspace: Path
) -> None:
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info) as repl:
        repl.type("/model" + ENTER)
        await repl.wait_printed("model: scripted-model")
        repl.type("/model other-model" + ENTER)
        await repl.wait_printed("model other-model (set by you)")
        repl.type("/model " + "x" * 300 + ENTER)
        await repl.wait_printed("model: a name of 1-200 characters")
    assert (await session_info(daemon, info.id)).model == "other-model"


async def test_unknown_commands_and_features_not_there_yet_say_so_plainly(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="a path, not a command"))
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info) as repl:
        repl.type("/frobnicate now" + ENTER)
        await repl.wait_printed("unknown command /frobnicate; /help lists the commands")
        repl.type("/help" + ENTER)
        await repl.wait_printed("Shift-Tab cycle the permission mode")
        repl.type("/cost" + ENTER)
        await repl.wait_printed("this session")
        repl.type("/mcp" + ENTER)
        await repl.wait_printed(
            "no MCP servers configured; add them as [mcp.servers.NAME] in config.toml"
        )
        repl.type("/usr/lib is empty?" + ENTER)
        await repl.wait_printed("a path, not a command")
    assert model_server.requests[0].body["messages"][-1]["content"] == "/usr/lib is empty?"


async def test_new_sessions_attach_and_fork_switch_the_terminal(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="the first answer"))
    first = await new_session(daemon, workspace)
    async with running_repl(daemon, first) as repl:
        repl.type("hello" + ENTER)
        await repl.wait_printed("the first answer")
        repl.type("/new" + ENTER)
        await repl.wait(lambda: repl.repl.view.info.id != first.id)
        second = repl.repl.view.info.id
        await repl.wait_printed(f"session {second}")
        repl.type("/sessions" + ENTER)
        await repl.wait(lambda: "/attach ID switches" in repl.printed)
        listing = repl.printed.rsplit("sessions (most recent", 1)[1]
        assert first.id in listing and second in listing
        repl.type(f"/attach {first.id[:3]}" + ENTER)
        await repl.wait_printed("is ambiguous")
        repl.type(f"/attach {first.id}" + ENTER)
        await repl.wait(lambda: repl.repl.view.info.id == first.id)
        await repl.wait(lambda: repl.printed.count("the first answer") == 2)  # history again
        repl.type("/fork" + ENTER)
        await repl.wait_printed(f"forked {first.id} into")
        await repl.wait(lambda: repl.repl.view.info.id not in (first.id, second))
        repl.type("/attach s-no-such-session" + ENTER)
        await repl.wait_printed("no session")
        assert repl.repl.view.info.forked_from == first.id


async def test_ctrl_c_on_an_idle_prompt_clears_then_detaches_on_the_second_press(
    daemon: KfdDaemon, workspace: Path
) -> None:
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info) as repl:
        repl.type("a draft")
        await repl.wait(lambda: repl.repl.input.text == "a draft")
        repl.type(CTRL_C)
        await repl.wait(lambda: repl.repl.input.text == "")
        repl.type(CTRL_C)
        await repl.wait(lambda: "press Ctrl-C again to detach" in _live(repl.repl))
        repl.type(CTRL_C)
        assert await repl.exited() == 0


async def test_ctrl_d_detaches_and_the_running_turn_goes_on_in_the_daemon(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    gate = workspace / "gate"
    command = f"while [ ! -e {gate} ]; do sleep 0.01; done; echo finished"
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": command})]),
        Reply(text="finished without you"),
    )
    info = await new_session(daemon, workspace, mode="auto")
    async with running_repl(daemon, info) as repl:
        repl.type("long job" + ENTER)
        await repl.wait(lambda: bool(repl.repl.view.running_calls))
        repl.type(CTRL_D)
        assert await repl.exited() == 0
    async with await daemon.client("after") as client:
        current = await client.session(info.id)
        assert current.status == "running"
        async with await client.attach(info.id, since_seq=current.last_seq) as view:
            gate.touch()
            events = await collect_until(view, turn_completed)
    assert events[-1].stop_reason == "end_turn"


async def test_a_denial_with_a_reason_reaches_the_model_and_is_shown(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "rm -rf build"})]),
        Reply(text="I will leave it"),
    )
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info) as repl:
        repl.type("clean up" + ENTER)
        await repl.question()
        await repl.wait_printed("$ rm -rf build")
        repl.type("x")  # not an answer: it goes to the input, and the input keeps the keys
        await repl.wait(lambda: repl.repl.input.text == "x")
        repl.type("n")
        await repl.wait(lambda: repl.repl.input.text == "xn")
        assert repl.repl.view.approval is not None and not repl.repl.denying
        repl.type(BACKSPACE * 2)
        await repl.question()
        repl.type("n")
        await repl.wait(lambda: repl.repl.denying)
        repl.type("keep the build dir" + ENTER)
        await repl.wait_printed("I will leave it")
        assert repl.repl.input.text == ""
    assert "✗ bash  rm -rf build · denied · answered by you: keep the build dir" in repl.printed
    assert repl.printed.count("keep the build dir") == 1  # the result does not repeat it
    tool = next(m for m in model_server.requests[1].body["messages"] if m["role"] == "tool")
    assert "keep the build dir" in tool["content"]


async def test_allow_for_this_session_shows_the_rule_it_added(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "echo hi > hi.txt"})]),
        Reply(text="written"),
    )
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info) as repl:
        repl.type("write" + ENTER)
        await repl.question()
        repl.type("a")
        await repl.wait_printed("written")
    assert "✓ allowed for this session: bash(echo hi > hi.txt) · answered by you" in repl.printed
    assert (workspace / "hi.txt").read_text() == "hi\n"


async def test_allow_always_keeps_the_rule_for_the_project_until_it_is_removed(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    command = "echo built >> built.txt"
    rule = f"bash({command})"
    build = Reply(tool_calls=[ScriptedToolCall("bash", {"command": command})])
    model_server.add(build, Reply(text="built once"), build, Reply(text="built twice"))
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info) as repl:
        repl.type("build" + ENTER)
        await repl.question()
        question = _question(repl.repl)
        assert "a allow for this session · A always (this project) · n deny" in question
        assert f"(a adds the rule {rule} for this session, A for this project)" in question
        repl.type("A")
        await repl.wait_printed("built once")
        assert f"✓ allowed always: {rule} · answered by you" in repl.printed

        repl.type("/rules" + ENTER)
        await repl.wait_printed("permission rules in")
        kept = re.search(rf"\[(\d+)\] allow {re.escape(rule)}", repl.printed)
        assert kept is not None, repl.printed

        repl.type("/new" + ENTER)  # a new session of the same workspace
        await repl.wait(lambda: repl.repl.view.info.id != info.id)
        second = repl.repl.view.info.id
        await repl.wait_printed(f"session {second}")
        repl.type("build again" + ENTER)
        await repl.wait_printed("built twice")
        in_second = repl.printed.split(f"session {second}", 1)[1]
        assert "? bash" not in in_second and "✓ bash" in in_second  # ran without asking

        repl.type(f"/rules remove {kept.group(1)}" + ENTER)
        await repl.wait_printed(f"removed [{kept.group(1)}] {rule}")
        repl.type("/rules" + ENTER)
        await repl.wait_printed('none kept with "allow always" yet')
    assert (workspace / "built.txt").read_text() == "built\nbuilt\n"


@pytest.mark.parametrize(
    ("config", "arguments", "rule"),
    [
        # The sandbox cannot start: running unsandboxed is a one-off grant.
        ('[tools.bash]\nbwrap = "kfd-no-such-bwrap"\n', {"command": "echo hi"}, "grant("),
        # A command asking for the network is allowed call by call: no rule at all.
        ("", {"command": "echo online", "network": True}, ""),
    ],
    ids=["grant", "no-rule"],
)
async def test_allow_always_is_not_offered_without_a_rule_to_keep(
    make_daemon: Callable[..., KfdDaemon],
    model_server: ScriptedModelServer,
    workspace: Path,
    config: str,
    arguments: dict[str, object],
    rule: str,
) -> None:
    daemon = make_daemon(config)
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", arguments)]), Reply(text="ran it once")
    )
    info = await new_session(daemon, workspace, mode="auto")
    async with running_repl(daemon, info) as repl:
        repl.type("go" + ENTER)
        await repl.question()
        asked = repl.repl.view.approval
        assert asked is not None and asked.session_rule.startswith(rule)
        assert bool(asked.session_rule) == bool(rule)
        question = _question(repl.repl)
        assert "y allow once · a allow for this session · n deny" in question
        assert "always" not in question
        repl.repl.answer("allow_always")  # what A would do, were it offered
        await repl.wait_printed("offers no rule to keep")  # the daemon's refusal
        assert repl.repl.view.approval is asked  # still open
        repl.type("A4y")  # A and 4 are not answers here: typed, never dropped
        await repl.wait(lambda: repl.repl.input.text == "A4y")
        assert repl.repl.view.approval is asked  # and y, after them, is typing too
        repl.type(TAB + "y")  # the keys to the approval: y answers
        await repl.wait_printed("ran it once")
        printed = repl.printed
        assert repl.repl.input.text == "A4y"  # the draft stays
    assert "· allowed once · answered by you" in printed
    assert printed.count("offers no rule to keep") == 1
    assert "allowed always" not in printed


async def test_the_mcp_command_lists_servers_with_status_errors_and_tools(
    make_daemon: Callable[..., KfdDaemon], workspace: Path
) -> None:
    servers = {
        "time": {"command": sys.executable, "args": ["-m", "mcp_server_time"]},
        "gone": {"command": "kfd-no-such-mcp-server"},
        "typo": {"comand": "x"},
    }
    config = "".join(
        f"[mcp.servers.{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
        for name, table in servers.items()
    )
    daemon = make_daemon(config)
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info) as repl:
        repl.type("/mcp" + ENTER)
        await repl.wait_printed("MCP servers ([mcp.servers.NAME] in config.toml)", timeout=30)
        listing = repl.printed.split("MCP servers (", 1)[1]
    assert "time (stdio): ready" in listing and "get_current_time" in listing
    assert "gone (stdio): failed\n  error: " in listing
    assert "typo: config error\n  error: [mcp.servers.typo]" in listing


async def test_cost_context_memory_and_tasks_show_what_the_daemon_reports(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    plan = [{"text": "read the code", "status": "done"}, {"text": "fix it", "status": "pending"}]
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("tasks_set", {"tasks": plan})]),
        Reply(text="planned"),
    )
    info = await new_session(daemon, workspace, mode="auto")
    async with running_repl(daemon, info) as repl:
        repl.type("make a plan" + ENTER)
        await repl.wait_printed("planned")
        repl.type("/tasks" + ENTER)
        await repl.wait_printed("☐ fix it")
        repl.type("/cost" + ENTER)
        await repl.wait(lambda: "this month" in repl.printed)
        repl.type("/context" + ENTER)
        await repl.wait_printed("% of the window")
        repl.type("/memory" + ENTER)
        await repl.wait_printed("nothing remembered yet")
        printed = repl.printed
    assert "☑ read the code" in printed
    session_line = next(line for line in printed.splitlines() if line.startswith("this session"))
    assert session_line.split()[2:4] == ["2", "req"]


# -- bad input ---------------------------------------------------------------------------------


async def test_escape_sequences_from_the_model_and_tools_never_reach_the_terminal(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    command = r"printf 'plain \033]0;pwned\007\033[2J\033[31mred\033[0m end\n'"
    model_server.add(
        Reply(
            text="title \x1b]0;pwned\x07 clear \x1b[2J",
            tool_calls=[ScriptedToolCall("bash", {"command": command})],
        ),
        Reply(text="after \x1b[31mcolour\x1b[0m"),
    )
    info = await new_session(daemon, workspace, mode="auto")
    async with running_repl(daemon, info) as repl:
        repl.type("be hostile" + ENTER)
        await repl.wait_printed("after colour")
        printed = repl.printed
    assert "plain red end" in printed and "title  clear" in printed
    assert "\x1b" not in printed and "\x07" not in printed


async def test_an_oversized_message_is_refused_and_kept_in_the_input(
    daemon: KfdDaemon, workspace: Path
) -> None:
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info) as repl:
        huge = "x" * (MESSAGE_LIMIT + 1)
        # Set, submit and clear at once: drawing an 8 MB draft is not this test's subject.
        repl.repl.input.text = huge
        repl.repl.submit()
        kept = repl.repl.input.text == huge
        repl.repl.input.text = ""
        await repl.wait_printed("the message is too large")
        assert kept
        repl.type("/model" + ENTER)  # the daemon and the REPL are still fine
        await repl.wait_printed("model: scripted-model")
    assert daemon.running


async def test_a_reference_to_a_missing_file_is_pointed_out(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="looked"))
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info) as repl:
        repl.type("compare @README.md with @docs/nothing.md, please" + ENTER)
        await repl.wait_printed("looked")
        await repl.wait_printed("@docs/nothing.md: no such file")
    assert "@README.md: no such file" not in repl.printed


# -- history and late attach --------------------------------------------------------------------


async def test_input_history_is_kept_per_project_outside_the_repository(
    daemon: KfdDaemon,
    model_server: ScriptedModelServer,
    workspace: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    model_server.add(Reply(text="noted"))
    (workspace / "sub").mkdir()
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info, history_of=str(workspace)) as repl:
        repl.type("remember this line" + ENTER)
        await repl.wait_printed("noted")
    path = history_path(str(workspace / "sub"))
    assert path == history_path(str(workspace))  # one history for the whole project
    assert path.is_relative_to(tmp_path / "state" / "kfd")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "remember this line" in path.read_text()
    async with running_repl(daemon, info, history_of=str(workspace / "sub")) as repl:
        # History loads in a thread: Up recalls the line once it is there.
        def recalled() -> bool:
            if repl.repl.input.text != "remember this line":
                repl.type(UP)
                return False
            return True

        await repl.wait(recalled)


async def test_a_terminal_attaching_later_shows_the_history_first(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(
            text="Listing.", tool_calls=[ScriptedToolCall("bash", {"command": "echo from-history"})]
        ),
        Reply(text="That was the listing."),
    )
    info = await new_session(daemon, workspace, mode="auto")
    async with await daemon.client("kfd-run") as client, await client.attach(info.id) as view:
        await client.send(info.id, "list it")
        await collect_until(view, turn_completed)
    async with running_repl(daemon, info) as repl:
        await repl.wait_printed("That was the listing.")
        printed = repl.printed
    assert printed.index("› list it  · from kfd-run") < printed.index("│ from-history")
    assert printed.index("│ from-history") < printed.index("That was the listing.")


def _live(repl: Repl) -> str:
    return "".join(fragment[1] for fragment in repl._live())


async def test_terminal_focus_reports_tell_the_other_frontends(
    daemon: KfdDaemon, workspace: Path
) -> None:
    if "frontend.focus" not in p.REQUEST_METHODS:
        pytest.skip("this protocol has no frontend.focus request")
    info = await new_session(daemon, workspace)
    async with await daemon.client("observer") as client, await client.attach(info.id) as view:

        def focus(focused: bool) -> Callable[[object], bool]:
            return lambda e: (
                isinstance(e, p.Event)
                and p.event_type(e) == "session.focus"
                and getattr(e, "focused", None) is focused
                and getattr(e, "frontend", None) is not None
                and e.frontend.name == "repl:test"  # type: ignore[attr-defined]
            )

        async with running_repl(daemon, info) as repl:
            await collect_until(view, focus(True))  # attached in a terminal the user typed in
            repl.type("\x1b[O")  # the terminal reports: focus lost
            await collect_until(view, focus(False))
            repl.type("\x1b[I")
            await collect_until(view, focus(True))
            assert repl.repl.input.text == ""  # the reports are not typed into the input
        await collect_until(view, focus(False))  # detached


async def test_while_the_daemon_is_dead_input_is_kept_and_sent_once_it_is_back(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="answered after the crash"))
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info) as repl:
        daemon.kill()
        await repl.wait_printed("lost the connection to the daemon")
        repl.type("are you there?" + ENTER)
        await repl.wait_printed("the message stays in the input")
        assert repl.repl.input.text == "are you there?"
        assert "disconnected" in _toolbar(repl.repl)
        repl.type(CTRL_C)  # no turn to cancel: Ctrl-C clears the draft
        await repl.wait(lambda: repl.repl.input.text == "")
        repl.type("/sessions" + ENTER)
        await repl.wait_printed("/sessions needs the daemon")
        daemon.start()
        await repl.wait_printed("reconnected to the daemon")
        repl.type("are you there?" + ENTER)
        await repl.wait_printed("answered after the crash")


def _question(repl: Repl) -> str:
    keys = repl.approval_keys() or "answer"
    return "".join(fragment[1] for fragment in approval_prompt(repl.view, 200, keys))


def _toolbar(repl: Repl) -> str:
    return "".join(fragment[1] for fragment in toolbar(repl.view, 80))


# -- approvals are deliberate ----------------------------------------------------------------


async def test_keys_typed_into_a_draft_never_answer_an_approval_and_tab_moves_to_it(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "echo ran > ran.txt"})]),
        Reply(text="ran it"),
        Reply(text="read your draft"),
    )
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info) as repl:
        repl.type("go" + ENTER)
        await repl.wait(lambda: repl.repl.view.approval is not None)
        repl.type("hey ")  # a draft, as the question opens
        await repl.wait(lambda: repl.repl.approval_keys() == "draft")
        repl.type("you, yes: all of it. n")
        await repl.wait(lambda: repl.repl.input.text == "hey you, yes: all of it. n")
        assert repl.repl.view.approval is not None and not repl.repl.denying
        assert "Tab answers it (your draft stays)" in _question(repl.repl)
        repl.type(TAB)  # deliberately: the keys go to the approval
        await repl.wait(lambda: repl.repl.approval_keys() == "focused")
        repl.type("y")
        await repl.wait_printed("ran it")
        assert repl.repl.input.text == "hey you, yes: all of it. n"  # the draft is intact
        repl.type(ENTER)
        await repl.wait_printed("read your draft")
    assert (workspace / "ran.txt").read_text() == "ran\n"
    assert "✓ bash  echo ran > ran.txt · allowed once · answered by you" in repl.printed
    sent = model_server.requests[2].body["messages"][-1]["content"]
    assert sent == "hey you, yes: all of it. n"


async def test_a_question_that_pops_up_while_the_user_types_takes_no_keys_at_first(
    daemon: KfdDaemon,
    model_server: ScriptedModelServer,
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("kfd_repl.app.ANSWER_DELAY_S", 60.0)  # a long moment, for the test
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "echo no > no.txt"})]),
        Reply(text="not run"),
    )
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info) as repl:
        repl.type("go" + ENTER)
        await repl.wait(lambda: repl.repl.approval_keys() == "arming")
        assert "keys answer it in a moment" in _question(repl.repl)
        repl.type("yes")  # meant as the next message
        await repl.wait(lambda: repl.repl.input.text == "yes")
        assert repl.repl.view.approval is not None
        repl.type(TAB + "n" + ENTER)  # deny, deliberately, with no reason
        await repl.wait_printed("not run")
        assert repl.repl.input.text == "yes"
    assert not (workspace / "no.txt").exists()


async def test_focus_on_the_approval_gives_other_keys_back_to_the_input(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "touch hi"})]), Reply(text="ok")
    )
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info) as repl:
        repl.type("go" + ENTER)
        await repl.question()
        repl.type("draft")  # an empty line: the approval had the keys, but d is no answer
        await repl.wait(lambda: repl.repl.input.text == "draft")
        repl.type(TAB)
        await repl.wait(lambda: repl.repl.approval_keys() == "focused")
        repl.type(TAB)  # and back
        await repl.wait(lambda: repl.repl.approval_keys() == "draft")
        repl.type(TAB + "!")  # focused, then a key that is no answer: typed, focus back
        await repl.wait(lambda: repl.repl.input.text == "draft!")
        assert repl.repl.approval_keys() == "draft"
        repl.type(TAB + "y")
        await repl.wait_printed("ok")


async def test_a_terminal_keeps_its_name_after_a_daemon_restart(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "touch hi"})]), Reply(text="done")
    )
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info, name="repl:pts/9") as repl:
        daemon.restart()
        await repl.wait_printed("reconnected to the daemon")

        def named() -> bool:
            status = json.loads(daemon.cli("status", "--json").stdout)
            return any(f["name"] == "repl:pts/9" and f["pid"] for f in status["frontends"])

        await repl.wait(named, timeout=10)  # re-checked on every redraw
        async with await daemon.client("watcher") as client, await client.attach(info.id) as view:
            repl.type("go" + ENTER)
            await repl.question()
            repl.type("y")
            resolved = await collect_until(view, lambda e: isinstance(e, p.ApprovalResolved))
        await repl.wait_printed("done")
    by = resolved[-1].by  # type: ignore[attr-defined]
    assert by is not None and by.name == "repl:pts/9"


# -- context, compaction and memory print the CLI's tables ------------------------------------


async def test_compact_never_makes_a_session_larger_and_prints_what_the_cli_prints(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(text="hi"),
        Reply(text="ok"),
        Reply(text="A summary far longer than the chat. " * 200),
    )
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info) as repl:
        for message, answer in (("hello", "hi"), ("more", "ok")):
            repl.type(message + ENTER)
            # The answer after the message ("hi" is in "this shell's ..." above), then
            # this turn's end (events come in order): /compact refuses a busy session.
            await repl.wait(
                lambda m=f"› {message}", a=answer: (
                    m in repl.printed
                    and a in repl.printed.rsplit(m, 1)[1]
                    and not repl.repl.view.busy
                )
            )
        repl.type("/context" + ENTER)
        await repl.wait_printed("% of the window")
        before = repl.printed.rsplit("/context\n", 1)[1]
        repl.type("/compact" + ENTER)
        await repl.wait_printed("not compacted: the summary would not make the context smaller")
        repl.type("/context" + ENTER)
        await repl.wait(lambda: repl.printed.count("% of the window") == 2)
        after = repl.printed.rsplit("/context\n", 1)[1]
    cli = daemon.cli("context", "--session", info.id)
    assert cli.returncode == 0
    assert after.split() == cli.stdout.split()  # one rendering (the REPL wraps at 80 columns)

    def part(report: str, name: str) -> list[str]:
        return next(line.split()[1:] for line in report.splitlines() if line.split()[:1] == [name])

    assert part(before, "summary") == part(after, "summary") == ["0"]  # nothing changed
    assert part(before, "transcript")[1:] == part(after, "transcript")[1:] == ["4", "messages"]
    assert "compacted" not in after
    assert len(model_server.requests) == 3


async def test_memory_with_a_query_shows_the_matching_facts_as_the_cli_does(
    daemon: KfdDaemon, workspace: Path
) -> None:
    async with await daemon.client("setup") as client:
        await client.remember("the staging port is 8123", cwd=workspace)
        await client.remember("deploys go out on Tuesdays", cwd=workspace)
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info) as repl:
        repl.type("/memory staging port" + ENTER)
        await repl.wait_printed("the best matches first")
        found = repl.printed.rsplit("the best matches first\n", 1)[1]
        repl.type("/memory" + ENTER)
        await repl.wait_printed("newest first")
        listed = repl.printed.rsplit("newest first\n", 1)[1]
    assert "staging port is 8123" in found and "Tuesdays" not in found
    assert "staging port" in listed and "Tuesdays" in listed
    cli = daemon.cli("memory", "search", "staging", "port", cwd=workspace)
    # One rendering: the same text once line breaks are set aside (the REPL wraps at
    # 80 columns, inside a long path too).
    assert "".join(found.split()) == "".join(cli.stdout.split())


async def test_an_edit_kfd_knows_will_fail_is_not_asked_about(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    (workspace / "notes.txt").write_text("old\n")
    edit = {"path": "notes.txt", "old_string": "old", "new_string": "new"}
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("edit", edit)]), Reply(text="I will read it first")
    )
    info = await new_session(daemon, workspace)  # default mode: an edit asks
    async with running_repl(daemon, info) as repl:
        repl.type("edit the notes" + ENTER)
        await repl.wait_printed("I will read it first")
        printed = repl.printed
    assert "? edit" not in printed  # nothing to approve: it cannot succeed
    assert "✗ edit  notes.txt" in printed and "you have not read it" in printed
    tool = next(m for m in model_server.requests[1].body["messages"] if m["role"] == "tool")
    assert "you have not read it in this session" in tool["content"]
    assert (workspace / "notes.txt").read_text() == "old\n"


async def test_a_long_paste_is_collapsed_live_and_on_replay_and_expands_on_request(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="read the log"))
    pasted = "why does this fail?\n" + "".join(f"trace line {n}\n" for n in range(799))
    info = await new_session(daemon, workspace)
    async with running_repl(daemon, info) as repl:
        repl.repl.input.text = pasted  # as a bracketed paste leaves it
        repl.type(ENTER)
        await repl.wait_printed("read the log")
        assert "› why does this fail?  [pasted 800 lines · /expand 1]" in repl.printed
        assert "trace line 400" not in repl.printed
    async with running_repl(daemon, info, name="repl:other") as again:  # replayed on attach
        await again.wait_printed("read the log")
        assert "[pasted 800 lines · /expand 1]" in again.printed
        assert "trace line 400" not in again.printed
        again.type("/expand" + ENTER)
        await again.wait_printed("trace line 798")
        assert "message 1 (800 lines)" in again.printed and "trace line 400" in again.printed
    assert model_server.requests[0].body["messages"][-1]["content"] == pasted  # the model got all
