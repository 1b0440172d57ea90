"""What the model sees: the system prompt, project instructions, and compaction.

Every assertion reads what the scripted model server received, so it holds
for the bytes a real provider would get.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conversation import (
    SUMMARY,
    SUMMARY_PREFIX,
    assert_tool_pairs_intact,
    conversation_daemon,
    is_summary_request,
    system_of,
)

from kfd import protocol as p
from kfd.agent.prompt import STABLE_PREFIX
from kfd.client import RequestFailed
from kfd.testing import CONTEXT_TOO_LONG, Reply, ScriptedToolCall
from kfd.testing.events import collect_until, turn_completed
from kfd.testing.fixtures import git_repo


def read(path: str) -> ScriptedToolCall:
    return ScriptedToolCall("read", {"path": path})


async def turn(client, session, info: p.SessionInfo, text: str) -> list:
    await client.send(info.id, text)
    return await collect_until(session, turn_completed, timeout=30)


def notes(workspace: Path, count: int, lines: int = 60) -> None:
    """Files of about 4 KB each (about 1,000 tokens read back)."""
    for index in range(count):
        body = "".join(f"note {index}.{n:03d} " + "x" * 48 + "\n" for n in range(lines))
        (workspace / f"notes_{index}.txt").write_text(body)


# -- instructions and the stable prefix -----------------------------------------


async def test_instruction_files_come_in_order_after_a_byte_stable_prefix(
    tmp_path: Path,
) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / "AGENTS.md").write_text("ROOT-AGENTS: use tabs.\n")
    (repo / "CLAUDE.md").symlink_to("AGENTS.md")  # the same file: read once
    sub = repo / "pkg" / "sub"
    sub.mkdir(parents=True)
    (repo / "pkg" / "KFD.md").write_text("PKG-KFD: run make check.\n")
    (sub / "CLAUDE.md").write_text("SUB-CLAUDE: begin.\n" + "filler line\n" * 3000)
    other = git_repo(tmp_path / "other")

    with conversation_daemon() as (model, daemon):
        (daemon.config_dir / "AGENTS.md").write_text("GLOBAL: answer in English.\n")
        model.add(Reply(text="one"), Reply(text="two"), Reply(text="three"), Reply(text="four"))
        async with await daemon.client() as client:
            info = await client.create_session(sub)
            async with await client.attach(info.id) as session:
                await turn(client, session, info, "first")
                await turn(client, session, info, "second")
                (repo / "pkg" / "KFD.md").write_text("PKG-KFD: run make test now.\n")
                await turn(client, session, info, "third")
            other_info = await client.create_session(other)
            async with await client.attach(other_info.id) as session:
                await turn(client, session, other_info, "elsewhere")

    first, second, third, elsewhere = (system_of(r) for r in model.requests)
    assert first.startswith(STABLE_PREFIX) and elsewhere.startswith(STABLE_PREFIX)
    assert second == first, "the system prompt changed between turns"
    order = [first.index(mark) for mark in ("GLOBAL:", "ROOT-AGENTS:", "PKG-KFD:", "SUB-CLAUDE:")]
    assert order == sorted(order)
    assert first.index("# Environment") < order[0]
    assert first.count("ROOT-AGENTS:") == 1
    assert "pkg/sub/CLAUDE.md is cut here" in first and len(first) < 20_000
    assert "Git: branch main" in first
    # An edited instruction file is read again at the next turn.
    assert "run make test now" in third and "run make check" not in third
    assert "ROOT-AGENTS" not in elsewhere and "GLOBAL:" in elsewhere
    tools = [json.dumps(r.body["tools"], sort_keys=False) for r in model.requests]
    assert len(set(tools)) == 1, "the tool definitions changed between requests"
    names = [t["function"]["name"] for t in model.requests[0].body["tools"]]
    assert names == sorted(names)
    assert {"read_output", "remember", "recall", "forget", "tasks_set"} <= set(names)


# -- compaction ---------------------------------------------------------------------

WINDOW = """
context_window = 12000
max_output_tokens = 1000
"""


def script_reading_turns(model, count: int) -> None:
    for index in range(count):
        model.add(Reply(tool_calls=[read(f"notes_{index}.txt")]), Reply(text=f"read {index}"))


async def test_a_long_session_compacts_exactly_once_at_the_threshold(workspace: Path) -> None:
    turns = 9
    notes(workspace, turns)
    with conversation_daemon(WINDOW) as (model, daemon):
        model.add(
            Reply(
                tool_calls=[
                    ScriptedToolCall(
                        "tasks_set",
                        {"tasks": [{"text": "read every note", "status": "in_progress"}]},
                    )
                ]
            )
        )
        script_reading_turns(model, turns)
        async with await daemon.client() as client:
            info = await client.create_session(workspace)
            threshold = (await client.context(info.id)).threshold
            seen: list = []
            async with await client.attach(info.id) as session:
                for index in range(turns):
                    seen += await turn(client, session, info, f"read notes {index}")
            report = await client.context(info.id)

            # After a restart the session resumes with the summary and the recent turns.
            daemon.restart()
            model.add(Reply(text="resumed"))
            async with await client.attach(info.id, since_seq=report_seq(seen)) as session:
                await turn(client, session, info, "go on")

    compacted = [e for e in seen if isinstance(e, p.ContextCompacted)]
    assert len(compacted) == 1, "compaction fired more or less than once"
    event = compacted[0]
    assert event.reason == "auto"
    assert event.tokens_before > threshold > event.tokens_after
    assert len(model.summary_requests()) == 1
    assert report.compactions == 1 and report.tokens < threshold

    summary_request = model.summary_requests()[0]
    index = model.requests.index(summary_request)
    # The summary request is the conversation so far, plus the instruction.
    assert summary_request.body["tools"] == model.requests[index - 1].body["tools"]
    assert_tool_pairs_intact(summary_request.body["messages"][:-1])

    after = model.requests[index + 1].body["messages"]
    assert after[1]["role"] == "user" and after[1]["content"].startswith(SUMMARY_PREFIX)
    assert SUMMARY in after[1]["content"]
    assert "[~] read every note" in after[1]["content"], "the task list is not in the summary"
    assert_tool_pairs_intact(after)
    # The recent turns are kept verbatim: the latest user message and its tool result.
    contents = [m.get("content") or "" for m in after]
    assert any(str(c).startswith("read notes") for c in contents[2:])
    assert any(m["role"] == "tool" and "note " in m["content"] for m in after)
    # The older turns are gone from what the model reads.
    assert "read notes 0" not in contents

    resumed = model.requests[-1].body["messages"]
    assert resumed[1]["content"].startswith(SUMMARY_PREFIX)
    assert resumed[-1] == {"role": "user", "content": "go on"}
    assert_tool_pairs_intact(resumed)


def report_seq(items: list) -> int:
    return max(e.seq for e in items if isinstance(e, p.Event))


async def test_with_compaction_off_no_summary_is_ever_requested(workspace: Path) -> None:
    turns = 9
    notes(workspace, turns)
    with conversation_daemon(WINDOW, "[context]\nauto_compact = false\n") as (model, daemon):
        script_reading_turns(model, turns)
        async with await daemon.client() as client:
            info = await client.create_session(workspace)
            seen: list = []
            async with await client.attach(info.id) as session:
                for index in range(turns):
                    seen += await turn(client, session, info, f"read notes {index}")
            report = await client.context(info.id)

    assert model.summary_requests() == []
    assert not [e for e in seen if isinstance(e, p.ContextCompacted)]
    assert report.tokens > report.threshold and not report.auto_compact
    last = model.requests[-1].body["messages"]
    assert last[1] == {"role": "user", "content": "read notes 0"}


async def test_a_context_too_long_rejection_compacts_once_and_the_retry_succeeds(
    workspace: Path,
) -> None:
    notes(workspace, 3)
    with conversation_daemon() as (model, daemon):
        script_reading_turns(model, 2)
        model.add(Reply(fault=CONTEXT_TOO_LONG), Reply(text="fits now"))
        async with await daemon.client() as client:
            info = await client.create_session(workspace)
            seen: list = []
            async with await client.attach(info.id) as session:
                for index in range(3):
                    seen += await turn(client, session, info, f"read notes {index}")

    compacted = [e for e in seen if isinstance(e, p.ContextCompacted)]
    assert [e.reason for e in compacted] == ["overflow"]
    assert seen[-1].stop_reason == "end_turn"
    assert not [e for e in seen if isinstance(e, p.ErrorEvent)]
    rejected, summary, retried = model.requests[-3:]
    assert rejected.outcome == "error_status" and is_summary_request(summary)
    messages = retried.body["messages"]
    assert messages[1]["content"].startswith(SUMMARY_PREFIX)
    assert messages[-1] == {"role": "user", "content": "read notes 2"}
    assert_tool_pairs_intact(messages)


async def test_a_second_rejection_after_compacting_ends_the_turn_with_the_error(
    workspace: Path,
) -> None:
    notes(workspace, 1)
    with conversation_daemon() as (model, daemon):
        script_reading_turns(model, 1)
        model.add(Reply(fault=CONTEXT_TOO_LONG), Reply(fault=CONTEXT_TOO_LONG))
        async with await daemon.client() as client:
            info = await client.create_session(workspace)
            async with await client.attach(info.id) as session:
                await turn(client, session, info, "read notes 0")
                seen = await turn(client, session, info, "and again")

    assert len(model.summary_requests()) == 1
    assert seen[-1].stop_reason == "error"
    assert "context window" in seen[-1].message


async def test_compact_by_hand_follows_the_users_instructions(workspace: Path) -> None:
    notes(workspace, 2)
    with conversation_daemon() as (model, daemon):
        script_reading_turns(model, 2)
        model.add(Reply(text="carrying on"))
        async with await daemon.client() as client:
            info = await client.create_session(workspace)
            fresh = await client.compact(info.id)
            async with await client.attach(info.id) as session:
                for index in range(2):
                    await turn(client, session, info, f"read notes {index}")
                result = await client.compact(info.id, "keep the port number 8123")
                events = await collect_until(session, lambda e: isinstance(e, p.ContextCompacted))
                await turn(client, session, info, "next")
            cli = daemon.cli("context", "--session", info.id, "--json")

    assert not fresh.compacted and "nothing to compact" in fresh.message
    assert result.compacted and result.tokens_after < result.tokens_before
    assert events[-1].reason == "manual" and events[-1].instructions == "keep the port number 8123"
    ask = model.summary_requests()[0].body["messages"][-1]["content"]
    assert "keep the port number 8123" in ask
    assert model.requests[-1].body["messages"][1]["content"].startswith(SUMMARY_PREFIX)
    report = json.loads(cli.stdout)
    assert report["compactions"] == 1
    assert {part["name"] for part in report["parts"]} >= {"system", "tools", "summary"}


async def test_compact_is_refused_while_a_turn_runs_and_for_bad_input(workspace: Path) -> None:
    gate = workspace / "gate"
    with conversation_daemon() as (model, daemon):
        model.add(
            Reply(
                tool_calls=[
                    ScriptedToolCall(
                        "bash", {"command": f"while [ ! -e {gate} ]; do sleep 0.01; done"}
                    )
                ]
            ),
            Reply(text="done"),
        )
        async with await daemon.client() as client:
            info = await client.create_session(workspace, mode="auto")
            async with await client.attach(info.id) as session:
                await client.send(info.id, "wait for the gate")
                await collect_until(session, lambda e: isinstance(e, p.ToolStarted))
                with pytest.raises(RequestFailed) as busy:
                    await client.compact(info.id)
                gate.touch()
                await collect_until(session, turn_completed)
            with pytest.raises(RequestFailed) as long:
                await client.compact(info.id, "x" * 3000)
            with pytest.raises(RequestFailed) as missing:
                await client.compact("s_nonexistent")
            with pytest.raises(RequestFailed) as no_context:
                await client.context("s_nonexistent")
            assert (await client.status()).pid == daemon.pid

    assert busy.value.code == "conflict" and "busy" in busy.value.message
    assert long.value.code == "bad_request"
    assert missing.value.code == no_context.value.code == "not_found"


async def test_context_report_shows_what_fills_the_window(workspace: Path) -> None:
    (workspace / "AGENTS.md").write_text("Use tabs.\n")
    notes(workspace, 1)
    with conversation_daemon() as (model, daemon):
        script_reading_turns(model, 1)
        async with await daemon.client() as client:
            info = await client.create_session(workspace)
            before = await client.context(info.id)
            async with await client.attach(info.id) as session:
                seen = await turn(client, session, info, "read notes 0")
            after = await client.context(info.id)

    parts = {part.name: part for part in after.parts}
    assert parts["instructions"].detail == "AGENTS.md" and parts["instructions"].tokens > 0
    assert parts["tool_outputs"].tokens > 900 and parts["tool_outputs"].detail == "1 results"
    assert parts["tools"].tokens > 500
    assert after.tokens == sum(part.tokens for part in after.parts)
    assert after.tokens > before.tokens
    assert after.reported_tokens > 0 and after.calibration != 1.0
    usage = [e for e in seen if isinstance(e, p.UsageReported)]
    assert usage and usage[-1].context_window == 128_000
    # The calibrated estimate lands near what the provider counted.
    last_input = usage[-1].request.input_tokens
    assert abs(after.tokens - last_input) < 0.25 * last_input


async def test_a_compaction_that_cannot_get_under_the_threshold_is_not_repeated_every_step(
    workspace: Path,
) -> None:
    # The fixed prompt alone is over this threshold: only new material re-arms compaction.
    tiny = "\ncontext_window = 1900\nmax_output_tokens = 300\n"
    patterns = ["*.md", "*.txt", "*.py", "*.toml", "*.json", "*.cfg"]
    with conversation_daemon(tiny) as (model, daemon):
        model.add(
            *[Reply(tool_calls=[ScriptedToolCall("glob", {"pattern": g})]) for g in patterns],
            Reply(text="listed"),
        )
        async with await daemon.client() as client:
            info = await client.create_session(workspace)
            async with await client.attach(info.id) as session:
                seen = await turn(client, session, info, "list everything")

    assert seen[-1].stop_reason == "end_turn"
    assert len(model.summary_requests()) == 1
    # Here the summary is no smaller than the little it would replace: it is not used.
    compacted = [e for e in seen if isinstance(e, p.ContextCompacted)]
    assert all(e.tokens_after < e.tokens_before for e in compacted)


async def test_a_fork_of_a_compacted_session_reads_the_same_summary(workspace: Path) -> None:
    notes(workspace, 2)
    with conversation_daemon() as (model, daemon):
        script_reading_turns(model, 2)
        model.add(Reply(text="in the fork"))
        async with await daemon.client() as client:
            info = await client.create_session(workspace)
            async with await client.attach(info.id) as session:
                for index in range(2):
                    await turn(client, session, info, f"read notes {index}")
            await client.compact(info.id)
            fork = await client.fork(info.id)
            async with await client.attach(fork.id, since_seq=fork.last_seq) as forked:
                await turn(client, forked, fork, "carry on in the fork")
            fork_report = await client.context(fork.id)

    parent_view = model.summary_requests()[0]
    sent = model.requests[-1].body["messages"]
    assert sent[1]["content"].startswith(SUMMARY_PREFIX) and SUMMARY in sent[1]["content"]
    assert sent[-1] == {"role": "user", "content": "carry on in the fork"}
    assert "read notes 0" not in [m.get("content") for m in sent]
    assert fork_report.compactions == 1
    assert parent_view.body["messages"][1]["content"] == "read notes 0"


async def test_an_openai_model_is_counted_with_its_own_tokenizer(workspace: Path) -> None:
    with conversation_daemon() as (model, daemon):
        model.add(Reply(text="hi"))
        async with await daemon.client() as client:
            info = await client.create_session(workspace, model="gpt-4o")
            async with await client.attach(info.id) as session:
                await turn(client, session, info, "hello")
            report = await client.context(info.id)
        shown = daemon.cli("context", "--session", info.id)
    assert report.model == "gpt-4o" and report.tokenizer == "o200k_base"
    assert "counted with the model's tokenizer (o200k_base)" in shown.stdout
    # Exact text counts, calibrated by the provider's framing: close to what it reported.
    assert abs(report.tokens - report.reported_tokens) < 0.1 * report.reported_tokens
