"""What the lsp tools show of files, and which files a rename changes, meet the rules
the model's own ``read`` and ``edit`` meet: a real language server (basedpyright),
the daemon's read guard and the real permission gate."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from kfd.agent.toolcall import CallContext
from kfd.api import FinishedCall, PathAccess, Tool, ToolError, ToolResult
from kfd.config import PermissionsConfig
from kfd.policy.gate import CallSite, decide_call
from kfd.policy.rulebook import RuleBook
from kfd.store.db import Store
from kfd.store.rules import RuleStore
from kfd.store.trust import TrustStore
from kfd_lsp import LspManager, tools_for
from kfd_lsp.hook import DiagnosticsAfterEdit
from kfd_lsp.servers import find_program

pytestmark = pytest.mark.skipif(
    find_program("basedpyright-langserver") is None, reason="basedpyright is a dev dependency"
)

SECRET = "CANARY-lsp-7c2e"
CONFIG = {
    "lsp": {
        "servers": {
            "python": {"command": ["basedpyright-langserver", "--stdio"], "extensions": [".py"]}
        }
    }
}
APP = """import djsettings
from private.keys import API_TOKEN


def helper(x: object) -> object:
    return x


def tidy(x: object) -> object:
    return x


print(API_TOKEN, djsettings.SECRET_KEY)
"""


USE = """from private.keys import API_TOKEN

copy = API_TOKEN
wrong: int = API_TOKEN
print(copy, wrong, "plain")
"""


@pytest.fixture
def outside() -> Iterator[Path]:
    """A project outside the workspace (not in /tmp: a sandbox has its own)."""
    directory = Path(tempfile.mkdtemp(prefix="kfd-lsp-other-", dir="/var/tmp"))
    (directory / "djsettings.py").write_text(f'SECRET_KEY = "{SECRET}-outside"\n')
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def workspace(repo: Path, outside: Path) -> Path:
    """src/app.py uses a constant of private/keys.py (read rules deny it) and one of a
    directory outside the workspace that the project's pyright config adds."""
    (repo / "pyrightconfig.json").write_text(json.dumps({"extraPaths": [str(outside)]}))
    (repo / "private").mkdir()
    (repo / "private" / "__init__.py").write_text("")
    (repo / "private" / "keys.py").write_text(
        f'from src.app import helper\n\nAPI_TOKEN = "{SECRET}"\nhelper(API_TOKEN)\n'
    )
    (repo / "src").mkdir()
    (repo / "src" / "__init__.py").write_text("")
    (repo / "src" / "app.py").write_text(APP)
    (repo / "deploy.py").write_text("from src.app import helper, tidy\n\nhelper(1)\ntidy(2)\n")
    (repo / "src" / "use.py").write_text(USE)
    return repo


@pytest.fixture
async def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LspManager]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    manager = LspManager(CONFIG)
    yield manager
    await manager.close()


@pytest.fixture
async def book(tmp_path: Path) -> AsyncIterator[RuleBook]:
    """The user's rules: private/ may not be read; src/ may be edited unasked."""
    store = await Store.open(tmp_path / "kfd.db")
    permissions = PermissionsConfig(deny=["read(**/private/**)"], allow=["edit(src/**)"])
    yield RuleBook(permissions, RuleStore(store), TrustStore(store))
    await store.close()


def tool(manager: LspManager, name: str) -> Tool[Any]:
    return {t.name: t for t in tools_for(manager)}[name]


def context(manager: LspManager, book: RuleBook, workspace: Path, name: str) -> CallContext:
    """A call's context as the daemon makes it: with the workspace's read guard."""
    return CallContext(
        session_id="s",
        workspace=workspace,
        config=manager.tools_config["lsp"],
        read_denied=book.read_guard(str(workspace), name),
    )


def site(book: RuleBook, workspace: Path) -> CallSite:
    return CallSite(
        session_id="s",
        workspace=str(workspace),
        mode="default",
        session_rules=(),
        untrusted=None,
        rule_book=book,
        policies=(),
        network_allowed=False,
    )


async def ask(
    manager: LspManager, book: RuleBook, workspace: Path, operation: str, **arguments: Any
) -> str:
    """The ``lsp`` answer of a call the gate allowed (it is read-only: it does)."""
    lsp = tool(manager, "lsp")
    raw = {"operation": operation, **arguments}
    verdict = await decide_call(site(book, workspace), lsp, lsp.Args(**raw), raw)
    assert verdict.decision == "allow", verdict.reason
    ctx = context(manager, book, workspace, "lsp")
    return (await lsp.run(lsp.Args(**raw), ctx)).output


async def test_answers_show_nothing_of_a_file_read_rules_deny_and_say_what_they_left_out(
    manager: LspManager, book: RuleBook, workspace: Path
) -> None:
    at_use = {"path": "src/app.py", "line": 13, "symbol": "API_TOKEN"}
    definition = await ask(manager, book, workspace, "definition", **at_use)
    assert SECRET not in definition and "keys.py" not in definition
    assert definition.startswith("no definition shown\n")
    assert "[definitions in 1 file left out by read rules (read(**/private/**))" in definition

    references = await ask(manager, book, workspace, "references", **at_use)
    assert SECRET not in references and "keys.py" not in references
    assert "src/app.py:13:7: print(API_TOKEN, djsettings.SECRET_KEY)" in references.splitlines()
    assert "[references in 1 file left out by read rules (read(**/private/**))" in references

    # A hover shows the definition's value (Literal['...']): withheld, with the reason.
    hover = await ask(manager, book, workspace, "hover", **at_use)
    assert SECRET not in hover
    assert hover.startswith("the hover text of 'API_TOKEN' is withheld: it is defined in a file")
    assert "read(**/private/**)" in hover
    # A symbol defined in a readable file keeps its hover.
    helper = await ask(manager, book, workspace, "hover", path="deploy.py", line=3)
    assert "def helper(x: object) -> object" in helper

    symbols = await ask(manager, book, workspace, "symbols", query="API_TOKEN")
    assert "keys.py" not in symbols
    assert "[symbols in 1 file left out by read rules (read(**/private/**))" in symbols


async def test_a_value_a_type_checker_carries_out_of_a_denied_file_is_not_shown(
    manager: LspManager, book: RuleBook, workspace: Path
) -> None:
    # copy = API_TOKEN is Literal['CANARY…'] to the server, in a file the model may read.
    hover = await ask(manager, book, workspace, "hover", path="src/use.py", line=5, symbol="copy")
    assert SECRET not in hover
    assert "copy: Literal['…']" in hover and "shown as '…'" in hover
    diagnostics = await ask(manager, book, workspace, "diagnostics", path="src/use.py")
    assert SECRET not in diagnostics
    assert "src/use.py:4:14: error: Type \"Literal['…']\" is not assignable" in diagnostics
    edited = FinishedCall(
        session_id="s",
        tool="edit",
        arguments={},
        edits_files=True,
        paths=[PathAccess("src/use.py", write=True)],
    )
    ctx = context(manager, book, workspace, "edit")
    note = await DiagnosticsAfterEdit(manager).after_tool(edited, ToolResult(output="ok"), ctx)
    assert note is not None and SECRET not in note and "Literal['…']" in note


async def test_answers_name_a_file_outside_the_workspace_by_path_only(
    manager: LspManager, book: RuleBook, workspace: Path, outside: Path
) -> None:
    at_use = {"path": "src/app.py", "line": 13, "symbol": "SECRET_KEY"}
    definition = await ask(manager, book, workspace, "definition", **at_use)
    assert SECRET not in definition
    assert definition.splitlines()[0] == f"{outside}/djsettings.py:1:1"
    assert "outside the workspace shown without their text" in definition
    hover = await ask(manager, book, workspace, "hover", **at_use)
    assert SECRET not in hover
    assert hover.startswith("the hover text of 'SECRET_KEY' is withheld: it is defined outside")
    assert f"{outside}/djsettings.py" in hover


async def test_a_rename_changes_only_the_files_its_call_named_and_the_gate_weighed(
    manager: LspManager, book: RuleBook, workspace: Path
) -> None:
    rename = tool(manager, "lsp_rename")
    ctx = context(manager, book, workspace, "lsp_rename")
    before = {p: p.read_text() for p in workspace.rglob("*.py")}

    # Only src/app.py named: edit(src/**) allows the call, but deploy.py changes too.
    alone = {"path": "src/app.py", "line": 9, "symbol": "tidy", "new_name": "neat"}
    verdict = await decide_call(site(book, workspace), rename, rename.Args(**alone), alone)
    assert verdict.decision == "allow"
    with pytest.raises(ToolError, match=r"would also change deploy\.py, which this call did not"):
        await rename.run(rename.Args(**alone), ctx)
    assert {p: p.read_text() for p in workspace.rglob("*.py")} == before

    # Named, deploy.py meets the decision: no rule allows editing it, so the user is asked.
    named = {**alone, "files": ["deploy.py"]}
    verdict = await decide_call(site(book, workspace), rename, rename.Args(**named), named)
    assert verdict.decision == "ask"
    assert rename.session_rule(rename.Args(**named)) == "lsp_rename(src/app.py, deploy.py)"
    result = await rename.run(rename.Args(**named), ctx)
    assert result.output.startswith("Renamed tidy to neat in 2 files.")
    assert "neat(2)" in (workspace / "deploy.py").read_text()

    # helper is used in private/keys.py too: refused, naming neither that file nor its text.
    both = {"path": "src/app.py", "line": 5, "symbol": "helper", "new_name": "assist"}
    named = {**both, "files": ["deploy.py", "private/keys.py"]}
    for arguments in (both, named):
        with pytest.raises(ToolError) as refused:
            await rename.preview(rename.Args(**arguments), ctx)
        message = str(refused.value)
        assert SECRET not in message and "keys.py" not in message
        assert "1 file read rules restrict (read(**/private/**))" in message
    assert "helper" in (workspace / "private" / "keys.py").read_text()
    assert "def helper" in (workspace / "src" / "app.py").read_text()


async def test_a_rename_in_a_file_read_rules_deny_is_refused_without_quoting_it(
    manager: LspManager, book: RuleBook, workspace: Path
) -> None:
    rename = tool(manager, "lsp_rename")
    raw = {"path": "private/keys.py", "line": 3, "symbol": "zzz", "new_name": "y"}
    ctx = context(manager, book, workspace, "lsp_rename")
    # The preview runs before anyone is asked, and its error goes to the model.
    with pytest.raises(ToolError) as refused:
        await rename.preview(rename.Args(**raw), ctx)
    assert SECRET not in str(refused.value)
    assert "restricted by the read rule read(**/private/**)" in str(refused.value)
    # A position error quotes no line of a file the model may not read.
    lsp = tool(manager, "lsp")
    question = lsp.Args(operation="hover", path="private/keys.py", line=3, symbol="zzz")
    with pytest.raises(ToolError) as missing:
        await lsp.run(question, context(manager, book, workspace, "lsp"))
    assert str(missing.value) == "'zzz' is not on line 3 of private/keys.py"
