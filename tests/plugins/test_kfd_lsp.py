"""The lsp tools against a real language server (basedpyright, from PyPI) on a small project."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

import kfd_lsp
from kfd import protocol as p
from kfd.agent.toolcall import CallContext
from kfd.api import FinishedCall, PathAccess, ToolError, ToolResult
from kfd.testing import RecordedRequest, Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import collect_until, turn_completed
from kfd_lsp import LspManager, tools_for
from kfd_lsp.hook import DiagnosticsAfterEdit
from kfd_lsp.servers import find_program

pytestmark = pytest.mark.skipif(
    find_program("basedpyright-langserver") is None, reason="basedpyright is a dev dependency"
)

SHAPES = """class Square:
    def __init__(self, side: int) -> None:
        self.side = side

    def area(self) -> int:
        return self.side * self.side


def total_area(shapes: list[Square]) -> int:
    return sum(shape.area() for shape in shapes)
"""
MAIN = """from shapes import Square, total_area

print(total_area([Square(2), Square(3)]))
"""
CONFIG = {
    "lsp": {
        "servers": {
            "python": {"command": ["basedpyright-langserver", "--stdio"], "extensions": [".py"]}
        }
    }
}


def project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "shapes.py").write_text(SHAPES)
    (root / "main.py").write_text(MAIN)
    return root


@pytest.fixture
async def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LspManager]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    manager = LspManager(CONFIG)
    yield manager
    await manager.close()


@pytest.fixture
def ctx(tmp_path: Path) -> CallContext:
    return CallContext(session_id="s-test", workspace=project(tmp_path / "proj"))


async def ask(manager: LspManager, ctx: CallContext, operation: str, **arguments: object) -> str:
    """The ``lsp`` tool's answer, called as the daemon calls it: with ``[tools.lsp]``."""
    tool = {t.name: t for t in tools_for(manager)}["lsp"]
    ctx = CallContext(
        session_id=ctx.session_id, workspace=ctx.workspace, config=manager.tools_config["lsp"]
    )
    return (await tool.run(tool.Args(operation=operation, **arguments), ctx)).output


async def test_definition_references_hover_and_symbols_come_from_the_server(
    manager: LspManager, ctx: CallContext
) -> None:
    definition = await ask(manager, ctx, "definition", path="main.py", line=3, symbol="total_area")
    assert definition == "shapes.py:9:5: def total_area(shapes: list[Square]) -> int:"
    references = (
        await ask(manager, ctx, "references", path="shapes.py", line=1, symbol="Square")
    ).splitlines()
    assert "shapes.py:1:7: class Square:" in references
    assert "main.py:3:19: print(total_area([Square(2), Square(3)]))" in references
    assert len(references) == 5
    hover = await ask(manager, ctx, "hover", path="shapes.py", line=9, symbol="total_area")
    assert "def total_area(shapes: list[Square]) -> int" in hover
    outline = await ask(manager, ctx, "symbols", path="shapes.py")
    assert "class Square (line 1)\n  method __init__ (line 2)" in outline
    assert "function total_area (line 9)" in outline
    found = await ask(manager, ctx, "symbols", query="total_area")
    assert "function total_area  shapes.py:9" in found


async def test_an_edit_that_breaks_types_gets_the_errors_appended(
    manager: LspManager, ctx: CallContext
) -> None:
    hook = DiagnosticsAfterEdit(manager)
    edited = FinishedCall(
        session_id="s-test",
        tool="edit",
        arguments={},
        edits_files=True,
        paths=[PathAccess("main.py", write=True)],
    )
    assert await hook.after_tool(edited, ToolResult(output="Edited"), ctx) is None  # clean file
    (ctx.workspace / "main.py").write_text(MAIN.replace("Square(3)", 'Square("3")'))
    note = await hook.after_tool(edited, ToolResult(output="Edited"), ctx)
    assert note is not None
    assert note.startswith("The language server reports 1 error in main.py after this change:")
    assert "main.py:3:37: error: Argument of type" in note and "reportArgumentType" in note
    # A failed edit changed nothing: no note.
    assert await hook.after_tool(edited, ToolResult(output="x", is_error=True), ctx) is None
    diagnostics = await ask(manager, ctx, "diagnostics", path="main.py")
    assert diagnostics.startswith("main.py:3:37: error:")


async def test_rename_previews_the_combined_diff_then_applies_it(
    manager: LspManager, ctx: CallContext
) -> None:
    tool = {t.name: t for t in tools_for(manager)}["lsp_rename"]
    args = tool.Args(
        path="shapes.py", line=9, symbol="total_area", new_name="sum_of_areas", files=["main.py"]
    )
    assert tool.edits_files and not tool.read_only
    assert tool.session_rule(args) == "lsp_rename(shapes.py, main.py)"
    assert tool.paths(args) == [PathAccess("shapes.py", True), PathAccess("main.py", True)]
    preview = await tool.preview(args, ctx)
    assert "-def total_area(shapes" in preview.diff and "+def sum_of_areas(shapes" in preview.diff
    assert "+from shapes import Square, sum_of_areas" in preview.diff
    assert "total_area" in (ctx.workspace / "main.py").read_text()  # a preview writes nothing
    result = await tool.run(args, ctx)
    assert result.output.startswith("Renamed total_area to sum_of_areas in 2 files.")
    assert "sum_of_areas([Square(2)" in (ctx.workspace / "main.py").read_text()
    assert "def sum_of_areas" in (ctx.workspace / "shapes.py").read_text()


async def test_bad_positions_and_unknown_files_are_explained(
    manager: LspManager, ctx: CallContext
) -> None:
    with pytest.raises(ToolError, match=r"main\.py has 3 lines; line 40 does not exist"):
        await ask(manager, ctx, "definition", path="main.py", line=40)
    with pytest.raises(ToolError, match=r"'Circle' is not on line 3 of main\.py"):
        await ask(manager, ctx, "hover", path="main.py", line=3, symbol="Circle")
    (ctx.workspace / "lib.rs").write_text("fn main() {}\n")
    with pytest.raises(ToolError, match=r"no language server handles \.rs"):
        await ask(manager, ctx, "diagnostics", path="lib.rs")
    with pytest.raises(ToolError, match="does not exist"):
        await ask(manager, ctx, "diagnostics", path="missing.py")
    with pytest.raises(ToolError, match="give either path"):
        await ask(manager, ctx, "symbols")
    with pytest.raises(ToolError, match=r"definition needs path and line \(1-based\)"):
        await ask(manager, ctx, "definition", path="main.py")
    broken = LspManager(
        {"lsp": {"servers": {"python": {"command": ["kfd-no-such-ls"], "extensions": [".py"]}}}}
    )
    with pytest.raises(ToolError, match=r"language server python .* did not start"):
        await ask(broken, ctx, "diagnostics", path="main.py")
    with pytest.raises(ToolError, match=r"\[tools.lsp\] in the kfd config"):
        await ask(LspManager({"lsp": {"servers": "pyright"}}), ctx, "diagnostics", path="main.py")


def test_the_plugin_offers_a_question_tool_a_rename_tool_and_one_after_edit_hook() -> None:
    tools = {t.name: t for t in kfd_lsp.kfd_tools({})}
    assert set(tools) == {"lsp", "lsp_rename"}
    assert [n for n, t in tools.items() if not t.read_only] == ["lsp_rename"]
    assert len(kfd_lsp.kfd_after_tool_hooks({})) == 1


async def test_through_the_daemon_an_edit_result_carries_the_type_error(
    make_daemon: Callable[..., KfdDaemon], model_server: ScriptedModelServer, tmp_path: Path
) -> None:
    from kfd.testing.fixtures import git_repo

    workspace = project(git_repo(tmp_path / "repo"))
    # A confined server starting on a loaded machine may take a while to answer.
    daemon = make_daemon("[tools.lsp]\ndiagnostics_wait_s = 30\n")
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("read", {"path": "main.py"})]),
        Reply(
            tool_calls=[
                ScriptedToolCall(
                    "edit",
                    {"path": "main.py", "old_string": "Square(3)", "new_string": 'Square("3")'},
                )
            ]
        ),
        Reply(text="Oops."),
    )
    async with await daemon.client() as client:
        info = await client.create_session(workspace, mode="accept-edits")
        async with await client.attach(info.id) as session:
            await client.send(info.id, "make the second side a string")
            events = await collect_until(session, turn_completed, timeout=60)
    edit = [e for e in events if isinstance(e, p.ToolCompleted)][-1]
    assert edit.name == "edit" and edit.status == "ok"
    assert edit.output.startswith("Edited main.py")
    assert "The language server reports 1 error in main.py after this change:" in edit.output
    assert "reportArgumentType" in edit.output
    told = [m for m in model_server.requests[2].body["messages"] if m["role"] == "tool"][-1]
    assert "reportArgumentType" in told["content"]


def tool_names(request: RecordedRequest) -> list[str]:
    return [tool["function"]["name"] for tool in request.body.get("tools", [])]


async def test_the_lsp_tools_are_offered_where_a_server_takes_the_files_and_nowhere_else(
    make_daemon: Callable[..., KfdDaemon], model_server: ScriptedModelServer, tmp_path: Path
) -> None:
    from kfd.testing.fixtures import git_repo

    python = project(git_repo(tmp_path / "py"))
    docs = git_repo(tmp_path / "docs")  # README.md only
    daemon = make_daemon()
    model_server.add(
        Reply(text="a Python project"),
        Reply(text="only a README"),
        Reply(tool_calls=[ScriptedToolCall("write", {"path": "app.py", "content": "x = 1\n"})]),
        Reply(text="wrote it"),
    )
    async with await daemon.client() as client:
        first = await client.create_session(python)
        async with await client.attach(first.id) as session:
            await client.send(first.id, "what is here?")
            await collect_until(session, turn_completed, timeout=60)
        second = await client.create_session(docs, mode="accept-edits")
        async with await client.attach(second.id) as session:
            await client.send(second.id, "what is here?")
            await collect_until(session, turn_completed, timeout=60)
            report = await client.context(second.id)
            status = await client.status(cwd=str(docs))
            shown = daemon.cli("context", "--session", second.id)
            listed = daemon.cli("status", cwd=docs)
            await client.send(second.id, "start the code")
            await collect_until(session, turn_completed, timeout=60)

    requests = model_server.requests
    assert {"lsp", "lsp_rename"} <= set(tool_names(requests[0]))
    assert not {"lsp", "lsp_rename"} & set(tool_names(requests[1]))
    reason = "no file here is of a language an installed server takes (.py, .pyi"
    missing = {tool.name: tool.reason for tool in report.tools_missing}
    assert missing.keys() >= {"lsp", "lsp_rename"} and missing["lsp"].startswith(reason)
    assert {tool.name for tool in status.tools_missing} >= {"lsp", "lsp_rename"}
    assert "not offered here: lsp, lsp_rename: " + reason in shown.stdout
    assert "not offered in this directory: lsp, lsp_rename: " + reason in listed.stdout
    # Nothing about it reached the model: the reason is for the user.
    assert "language server" not in str(requests[1].body["messages"])
    # kfd wrote the workspace's first Python file: the next request offers the tools.
    assert not {"lsp", "lsp_rename"} & set(tool_names(requests[2]))
    assert {"lsp", "lsp_rename"} <= set(tool_names(requests[3]))


async def test_a_config_edit_that_turns_the_server_off_takes_the_tools_away_at_the_next_request(
    make_daemon: Callable[..., KfdDaemon], model_server: ScriptedModelServer, tmp_path: Path
) -> None:
    from kfd.testing.daemon import FAST_RETRIES
    from kfd.testing.fixtures import git_repo

    workspace = project(git_repo(tmp_path / "py"))
    daemon = make_daemon()
    model_server.add(Reply(text="with"), Reply(text="without"))
    off = (
        "\n[tools.lsp.servers.python]\n"
        'command = ["basedpyright-langserver", "--stdio"]\n'
        'extensions = [".py"]\n'
        "enabled = false\n"
    )
    async with await daemon.client() as client, await client.notices() as notices:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as session:
            await client.send(info.id, "first")
            await collect_until(session, turn_completed, timeout=60)
            (daemon.config_dir / "config.toml").write_text(FAST_RETRIES + off)
            async with asyncio.timeout(15):
                while not isinstance(await notices.next_event(15), p.ConfigReloaded):
                    pass
            await client.send(info.id, "second")
            await collect_until(session, turn_completed, timeout=60)
        report = await client.context(info.id)
    assert "lsp" in tool_names(model_server.requests[0])
    assert "lsp" not in tool_names(model_server.requests[1])
    reason = {tool.name: tool.reason for tool in report.tools_missing}["lsp"]
    assert reason.startswith("no language server is installed for the files here (for Python:")


async def test_a_language_server_runs_confined_with_the_workspace_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server that runs what it finds in the workspace (a project's Python, its
    # TypeScript) does what this one does on purpose.
    from kfd.sandbox import probe

    if problem := await probe("bwrap", network=False):
        pytest.skip(f"bubblewrap cannot run here: {problem}")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("KFD_TEST_API_KEY", "sk-canary-lsp-0123456789")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "a.py").write_text("x = 1\n")
    outside = Path("/var/tmp") / f"kfd-lsp-outside-{tmp_path.name}"
    attack = (
        f"echo $KFD_TEST_API_KEY > {workspace}/leak; touch {outside}; "
        f'echo "$KFD_TEST_API_KEY" >&2; exit 1'
    )
    server = {"command": ["sh", "-c", attack], "extensions": [".py"]}
    manager = LspManager({"lsp": {"servers": {"python": server}, "startup_timeout_s": 5}})
    ctx = CallContext(session_id="s", workspace=workspace)
    try:
        with pytest.raises(ToolError, match="did not initialize"):
            await ask(manager, ctx, "diagnostics", path="a.py")
    finally:
        await manager.close()
    assert not (workspace / "leak").exists() and not outside.exists()
    log = (tmp_path / "state" / "kfd" / "lsp-python.log").read_text()
    assert "sk-canary-lsp" not in log and "Read-only file system" in log
