"""MCP servers as tools: the reference "everything" server (Node), mcp-server-time
(PyPI) and a server that crashes or hangs mid-call, over real stdio."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mcp_types
import pytest

import kfd_mcp
from kfd import protocol as p
from kfd.agent.toolcall import CallContext
from kfd.api import JsonArgs, ToolError
from kfd.testing import RecordedRequest, Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import collect_until, of_type, turn_completed
from kfd_mcp import McpSource, McpTool, tool_name
from kfd_mcp.tool import without_titles

if TYPE_CHECKING:
    from conftest import HttpMcpServer

HERE = Path(__file__).parent
EVERYTHING = HERE / "node/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
CRASHY = HERE / "mcp_servers/crashy.py"

needs_node = pytest.mark.skipif(
    shutil.which("node") is None or not EVERYTHING.exists(),
    reason="./test installs the everything server (npm ci in tests/plugins/node)",
)


def servers(**tables: dict[str, Any]) -> dict[str, Any]:
    return {"servers": tables}


EVERYTHING_SERVER = {"command": "node", "args": [str(EVERYTHING), "stdio"]}
CRASHY_SERVER = {"command": sys.executable, "args": [str(CRASHY)], "call_timeout_s": 1.5}
TIME_SERVER = {"command": sys.executable, "args": ["-m", "mcp_server_time"]}
MANY_SERVER = {"command": sys.executable, "args": [str(HERE / "mcp_servers/many_tools.py")]}
PINNED = {"defer": False}


@pytest.fixture
async def source_factory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[[dict[str, Any]], McpSource]]:
    """Sources whose logs and saved files go under tmp_path; closed at the end."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    made: list[McpSource] = []

    def make(mcp: dict[str, Any]) -> McpSource:
        made.append(McpSource(mcp))
        return made[-1]

    yield make
    for source in made:
        await source.close()


async def call(source: McpSource, name: str, **arguments: Any) -> Any:
    tools = {tool.name: tool for tool in await source.tools()}
    ctx = CallContext(session_id="s-test", workspace=Path("/"))
    return await tools[name].run(JsonArgs(values=arguments), ctx)


# --------------------------------------------------------------------------
# configuration


def test_server_tables_are_validated_one_by_one() -> None:
    source = McpSource(
        servers(
            good={"command": "true"},
            both={"command": "x", "url": "http://127.0.0.1:1/mcp"},
            neither={"args": ["x"]},
            typo={"comand": "x"},
            ftp={"url": "ftp://x"},
            **{"bad name!": {"command": "x"}},
        )
    )
    assert list(source.servers) == ["good"]
    errors = source.errors
    assert "exactly one of `command` (stdio) or `url`" in errors["both"]
    assert "exactly one of" in errors["neither"]
    assert "unknown field `comand`" in errors["typo"]
    assert "url must start with http" in errors["ftp"]
    assert "1-32 letters" in errors["bad name!"]
    listed = {s["name"]: s for s in source.status()["servers"]}
    assert listed["typo"]["status"] == "config error"
    assert listed["good"]["status"] == "not started"  # nothing starts until tools are asked for


def test_tool_names_fit_what_providers_accept() -> None:
    assert tool_name("every", "get-tiny-image") == "mcp__every__get-tiny-image"
    assert tool_name("s", "a.b c/d") == "mcp__s__a_b_c_d"
    long = tool_name("server", "x" * 100)
    assert len(long) == 64 and long.startswith("mcp__server__xxx")


def test_schemas_lose_their_title_annotations_and_keep_properties_named_title() -> None:
    schema = {
        "title": "toolArguments",
        "type": "object",
        "properties": {
            "title": {"title": "Title", "type": "string"},
            "repo": {"title": "Repo", "type": "string", "description": "owner/name"},
            "labels": {"anyOf": [{"items": {"type": "string"}, "type": "array", "title": "L"}]},
        },
        "required": ["title"],
    }
    assert without_titles(schema) == {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "repo": {"type": "string", "description": "owner/name"},
            "labels": {"anyOf": [{"items": {"type": "string"}, "type": "array"}]},
        },
        "required": ["title"],
    }


def test_a_servers_tools_are_deferrable_unless_it_says_defer_false() -> None:
    source = McpSource(servers(a={"command": "x"}, b={"command": "x", "defer": False}))
    assert source.servers["a"].config.defer and not source.servers["b"].config.defer
    spec = mcp_types.Tool(name="t", input_schema={"type": "object"})
    assert McpTool(source.servers["a"], spec, Path("/")).deferrable
    assert not McpTool(source.servers["b"], spec, Path("/")).deferrable


async def test_no_configured_servers_means_no_tools_but_a_source_editors_can_lend_to() -> None:
    for config in ({"mcp": {}}, {}):
        (source,) = kfd_mcp.kfd_tool_sources(config)
        assert isinstance(source, McpSource)
        assert list(await source.tools()) == []
        await source.close()


# --------------------------------------------------------------------------
# real servers, in process


@needs_node
async def test_the_everything_server_lists_tools_with_their_schemas_and_answers(
    source_factory: Callable[[dict[str, Any]], McpSource], tmp_path: Path
) -> None:
    source = source_factory(servers(every=EVERYTHING_SERVER))
    tools = {tool.name: tool for tool in await source.tools()}
    add = tools["mcp__every__get-sum"]
    assert add.parameters is not None and add.parameters["type"] == "object"
    assert set(add.parameters["properties"]) == {"a", "b"} and "$schema" not in add.parameters
    assert not add.read_only and add.network and add.deferrable
    assert add.description == "Returns the sum of two numbers"  # the name says the rest

    total = await call(source, "mcp__every__get-sum", a=2, b=3)
    assert total.untrusted and not total.is_error and "5" in total.output

    image = (await call(source, "mcp__every__get-tiny-image")).output
    saved = Path(image.split("[image saved to ", 1)[1].split(" (", 1)[0])
    assert saved.is_relative_to(tmp_path / "cache")
    assert saved.read_bytes().startswith(b"\x89PNG")

    resource = (await call(source, "mcp__every__get-resource-reference", resourceId=1)).output
    assert "[resource demo://resource/dynamic/text/1]\nResource 1:" in resource
    links = (await call(source, "mcp__every__get-resource-links", count=2)).output
    assert "[resource link demo://resource/dynamic/text/2 (Text Resource 2)" in links

    # Arguments that do not fit the schema: the server's message, and the server stays up.
    wrong = await call(source, "mcp__every__get-sum", a="two", b=[3], extra="\x00" * 100)
    assert wrong.is_error and "expected number, received string at a" in wrong.output
    assert source.servers["every"].status == "ready" and source.servers["every"].starts == 1


async def test_a_python_server_from_pypi_answers(
    source_factory: Callable[[dict[str, Any]], McpSource],
) -> None:
    source = source_factory(servers(time=TIME_SERVER))
    result = await call(source, "mcp__time__get_current_time", timezone="UTC")
    assert not result.is_error
    assert json.loads(result.output)["timezone"] == "UTC"
    wrong = await call(source, "mcp__time__get_current_time", timezone="Mars/Olympus")
    assert wrong.is_error and "Mars/Olympus" in wrong.output


async def test_a_streamable_http_server_answers_with_the_configured_headers(
    source_factory: Callable[[dict[str, Any]], McpSource],
    http_server: HttpMcpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRASHY_TOKEN", http_server.token)
    headers = {"Authorization": "Bearer ${CRASHY_TOKEN}"}
    source = source_factory(servers(web={"url": http_server.url, "headers": headers}))
    result = await call(source, "mcp__web__echo", text="over http")
    assert result.output == "echo: over http" and result.untrusted
    assert source.servers["web"].status == "ready"

    refused = source_factory(servers(web={"url": http_server.url, "headers": {}}))
    assert await refused.tools() == []  # no token: the server refuses, no tools offered
    assert refused.servers["web"].status == "failed"
    assert "HTTP 401" in refused.servers["web"].error
    assert "check the server's url and headers" in refused.servers["web"].error


async def test_a_hung_call_times_out_and_the_next_use_restarts_the_server(
    source_factory: Callable[[dict[str, Any]], McpSource],
) -> None:
    source = source_factory(servers(crashy=CRASHY_SERVER))
    with pytest.raises(ToolError, match=r"did not answer `hang` within 1.5 s; it was stopped"):
        await call(source, "mcp__crashy__hang")
    server = source.servers["crashy"]
    assert server.status == "crashed"
    assert (await call(source, "mcp__crashy__echo", text="back")).output == "echo: back"
    assert server.starts == 2 and server.status == "ready"


async def test_a_server_that_cannot_start_is_reported_and_offers_no_tools(
    source_factory: Callable[[dict[str, Any]], McpSource],
) -> None:
    source = source_factory(
        servers(
            gone={"command": "kfd-no-such-server"},
            dies={
                "command": sys.executable,
                "args": ["-c", "import sys; sys.stderr.write('bad token\\n')"],
            },
        )
    )
    assert await source.tools() == []
    listed = {s["name"]: s for s in source.status()["servers"]}
    assert listed["gone"]["status"] == "failed"
    assert "command not found: kfd-no-such-server" in listed["gone"]["error"]
    assert listed["dies"]["status"] == "failed" and "bad token" in listed["dies"]["error"]


# --------------------------------------------------------------------------
# through the daemon


def mcp_config(**tables: dict[str, Any]) -> str:
    lines = []
    for name, table in tables.items():
        lines.append(f"[mcp.servers.{name}]")
        for key, value in table.items():
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@needs_node
async def test_mcp_calls_ask_first_crashes_are_reported_and_kfd_mcp_list_shows_servers(
    make_daemon: Callable[..., KfdDaemon], model_server: ScriptedModelServer, workspace: Path
) -> None:
    # 13 + 3 tools: past the first 10, crashy's would wait behind tool_search.
    daemon = make_daemon(mcp_config(every=EVERYTHING_SERVER, crashy=CRASHY_SERVER | PINNED))
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("mcp__every__get-sum", {"a": 40, "b": 2})]),
        Reply(text="42."),
        Reply(tool_calls=[ScriptedToolCall("mcp__crashy__crash", {})]),
        Reply(tool_calls=[ScriptedToolCall("mcp__crashy__echo", {"text": "again"})]),
        Reply(text="done"),
    )
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as session:
            await client.send(info.id, "add 40 and 2")
            asked = (await collect_until(session, of_type(p.ApprovalRequested)))[-1]
            assert asked.tool == "mcp__every__get-sum"
            assert asked.session_rule == "mcp__every__get-sum"
            await client.respond(info.id, asked.approval_id, "allow")
            events = await collect_until(session, turn_completed, timeout=30)
            done = next(e for e in events if isinstance(e, p.ToolCompleted))
            assert done.status == "ok" and "<untrusted-content" in done.output
            assert "42" in done.output

            await client.set_mode(info.id, "auto")
            await client.send(info.id, "crash it, then echo")
            events = await collect_until(session, turn_completed, timeout=30)
    results = [e for e in events if isinstance(e, p.ToolCompleted)]
    assert [r.status for r in results] == ["error", "ok"]
    assert "exited during `crash`; side effects unknown" in results[0].output
    assert "echo: again" in results[1].output

    offered = {t["function"]["name"]: t["function"] for t in model_server.requests[0].body["tools"]}
    assert offered["mcp__every__get-sum"]["parameters"]["required"] == ["a", "b"]
    assert "mcp__crashy__echo" in offered and "read" in offered

    listed = daemon.cli("mcp", "list")
    assert listed.returncode == 0, listed.stderr
    assert "crashy (stdio): ready" in listed.stdout
    assert "3 tools: echo, crash, hang" in listed.stdout
    assert "every (stdio): ready" in listed.stdout
    data = json.loads(daemon.cli("mcp", "list", "--json").stdout)
    assert {s["name"]: s["starts"] for s in data} == {"every": 1, "crashy": 2}


async def test_kfd_mcp_list_starts_servers_and_reports_config_errors(
    make_daemon: Callable[..., KfdDaemon],
) -> None:
    daemon = make_daemon(
        mcp_config(time=TIME_SERVER, typo={"comand": "x"}, off={"command": "x", "enabled": False})
    )
    quiet = json.loads(daemon.cli("mcp", "list", "--no-start", "--json").stdout)
    assert {s["name"]: s["status"] for s in quiet} == {
        "time": "not started",
        "off": "disabled",
        "typo": "config error",
    }
    listed = daemon.cli("mcp", "list")
    assert listed.returncode == 1  # a config error is something to fix
    assert "time (stdio): ready" in listed.stdout and "get_current_time" in listed.stdout
    assert "typo: config error\n  error: [mcp.servers.typo]: " in listed.stdout
    async with await daemon.client() as client:
        assert "mcp__time__convert_time" in (await client.status()).tools


def offered(request: RecordedRequest) -> dict[str, dict[str, Any]]:
    return {tool["function"]["name"]: tool["function"] for tool in request.body["tools"]}


async def test_a_model_finds_an_unlisted_tool_calls_it_and_keeps_it_across_a_restart(
    make_daemon: Callable[..., KfdDaemon], model_server: ScriptedModelServer, workspace: Path
) -> None:
    daemon = make_daemon(mcp_config(many=MANY_SERVER))  # 88 tools: 10 listed
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("tool_search", {"query": "create issue"})]),
        Reply(
            tool_calls=[
                ScriptedToolCall("mcp__many__create_issue", {"repo": "o/r", "title": "Bug"})
            ]
        ),
        Reply(text="Filed."),
        Reply(text="Still here."),
    )
    async with await daemon.client() as client:
        info = await client.create_session(workspace, mode="auto")
        async with await client.attach(info.id) as session:
            await client.send(info.id, "file a bug about the crash")
            events = await collect_until(session, turn_completed, timeout=60)
        fork = await client.fork(info.id)
        forked = await client.context(fork.id)
    searched, called = [e for e in events if isinstance(e, p.ToolCompleted)]
    assert searched.name == "tool_search" and searched.status == "ok"
    assert searched.output.startswith(
        "Loaded 5 tool(s); call them now:\n"
        "- mcp__many__create_issue: Create an issue in a repository.\n"
    )
    loaded = next(e for e in events if isinstance(e, p.ToolsLoaded))
    assert loaded.names[0] == "mcp__many__create_issue" and len(loaded.names) == 5
    assert forked.tools_loaded == loaded.names  # a fork may call what its history found
    assert called.status == "ok"
    assert 'create_issue: {"body": "", "labels": null, "repo": "o/r", "title": "Bug"}' in (
        called.output
    )

    first, second = model_server.requests[0], model_server.requests[1]
    before, after = list(offered(first)), list(offered(second))
    assert before[-1] == "tool_search" and "mcp__many__create_issue" not in before
    assert len([name for name in before if name.startswith("mcp__")]) == 10
    assert "mcp__many__* (78)" in offered(first)["tool_search"]["description"]
    # The found tools join the end: what the provider cached is unchanged.
    assert after[: len(before)] == before and after[len(before)] == "mcp__many__create_issue"
    assert second.body["tools"][: len(before)] == first.body["tools"]
    schema = offered(second)["mcp__many__create_issue"]["parameters"]
    assert schema["required"] == ["repo", "title"]
    assert schema["properties"]["body"] == {
        "default": "",
        "description": "Markdown text.",
        "type": "string",
    }

    # The loaded set is session state in the log: a restarted daemon still offers it.
    daemon.restart()
    async with await daemon.client() as client:
        await client.send(info.id, "anything else?")
        later = await model_server.wait_for_request_async(3, timeout=30)
    assert list(offered(later))[: len(after)] == after


def test_a_servers_stderr_reaches_its_log_scrubbed(tmp_path: Path) -> None:
    import os

    from kfd_mcp.server import _scrub_into

    log = tmp_path / "mcp-x.log"
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, "w") as stderr:
        stderr.write("starting\nusing ghp_abcdefghijklmnopqrstuvwxyz0123456789\n")
    _scrub_into(read_fd, log)
    assert log.read_text() == "starting\nusing [redacted github-token]\n"
