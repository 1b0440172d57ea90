"""The lsp tools against a real language server (basedpyright, from PyPI) on a small project."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

import kfd_lsp
from kfd import protocol as p
from kfd.agent.toolcall import CallContext
from kfd.api import FinishedCall, PathAccess, ToolError, ToolResult
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
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


async def run(manager: LspManager, ctx: CallContext, name: str, **arguments: object) -> str:
    tool = {t.name: t for t in tools_for(manager)}[name]
    return (await tool.run(tool.Args(**arguments), ctx)).output


async def test_definition_references_hover_and_symbols_come_from_the_server(
    manager: LspManager, ctx: CallContext
) -> None:
    definition = await run(
        manager, ctx, "lsp_definition", path="main.py", line=3, symbol="total_area"
    )
    assert definition == "shapes.py:9:5: def total_area(shapes: list[Square]) -> int:"
    references = (
        await run(manager, ctx, "lsp_references", path="shapes.py", line=1, symbol="Square")
    ).splitlines()
    assert "shapes.py:1:7: class Square:" in references
    assert "main.py:3:19: print(total_area([Square(2), Square(3)]))" in references
    assert len(references) == 5
    hover = await run(manager, ctx, "lsp_hover", path="shapes.py", line=9, symbol="total_area")
    assert "def total_area(shapes: list[Square]) -> int" in hover
    outline = await run(manager, ctx, "lsp_symbols", path="shapes.py")
    assert "class Square (line 1)\n  method __init__ (line 2)" in outline
    assert "function total_area (line 9)" in outline
    found = await run(manager, ctx, "lsp_symbols", query="total_area")
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
    diagnostics = await run(manager, ctx, "lsp_diagnostics", path="main.py")
    assert diagnostics.startswith("main.py:3:37: error:")


async def test_rename_previews_the_combined_diff_then_applies_it(
    manager: LspManager, ctx: CallContext
) -> None:
    tool = {t.name: t for t in tools_for(manager)}["lsp_rename"]
    args = tool.Args(path="shapes.py", line=9, symbol="total_area", new_name="sum_of_areas")
    assert tool.edits_files and not tool.read_only
    assert tool.session_rule(args) == "lsp_rename(shapes.py)"
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
        await run(manager, ctx, "lsp_definition", path="main.py", line=40)
    with pytest.raises(ToolError, match=r"'Circle' is not on line 3 of main\.py"):
        await run(manager, ctx, "lsp_hover", path="main.py", line=3, symbol="Circle")
    (ctx.workspace / "lib.rs").write_text("fn main() {}\n")
    with pytest.raises(ToolError, match=r"no language server handles \.rs"):
        await run(manager, ctx, "lsp_diagnostics", path="lib.rs")
    with pytest.raises(ToolError, match="does not exist"):
        await run(manager, ctx, "lsp_diagnostics", path="missing.py")
    with pytest.raises(ToolError, match="give either path"):
        await run(manager, ctx, "lsp_symbols")
    broken = LspManager(
        {"lsp": {"servers": {"python": {"command": ["kfd-no-such-ls"], "extensions": [".py"]}}}}
    )
    with pytest.raises(ToolError, match=r"language server python .* did not start"):
        await run(broken, ctx, "lsp_diagnostics", path="main.py")
    with pytest.raises(ToolError, match=r"\[tools.lsp\] in the kfd config"):
        await run(
            LspManager({"lsp": {"servers": "pyright"}}), ctx, "lsp_diagnostics", path="main.py"
        )


def test_the_plugin_offers_six_tools_and_one_after_edit_hook() -> None:
    tools = {t.name: t for t in kfd_lsp.kfd_tools({})}
    assert set(tools) == {
        "lsp_diagnostics",
        "lsp_definition",
        "lsp_references",
        "lsp_hover",
        "lsp_symbols",
        "lsp_rename",
    }
    assert [n for n, t in tools.items() if not t.read_only] == ["lsp_rename"]
    assert len(kfd_lsp.kfd_after_tool_hooks({})) == 1


async def test_through_the_daemon_an_edit_result_carries_the_type_error(
    make_daemon: Callable[..., KfdDaemon], model_server: ScriptedModelServer, tmp_path: Path
) -> None:
    from kfd.testing.fixtures import git_repo

    workspace = project(git_repo(tmp_path / "repo"))
    # A confined server starting on a loaded machine may take a while to answer.
    daemon = make_daemon("[tools.lsp]\ndiagnostics_wait_s = 12\n")
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
    config = {
        "lsp": {"servers": {"python": {"command": ["sh", "-c", attack], "extensions": [".py"]}}}
    }
    config["lsp"]["startup_timeout_s"] = 5
    manager = LspManager(config)
    ctx = CallContext(session_id="s", workspace=workspace)
    try:
        with pytest.raises(ToolError, match="did not initialize"):
            await run(manager, ctx, "lsp_diagnostics", path="a.py")
    finally:
        await manager.close()
    assert not (workspace / "leak").exists() and not outside.exists()
    log = (tmp_path / "state" / "kfd" / "lsp-python.log").read_text()
    assert "sk-canary-lsp" not in log and "Read-only file system" in log
