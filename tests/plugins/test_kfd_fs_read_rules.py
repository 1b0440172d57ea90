"""grep and glob leave out what read rules deny, and say so: real files, real ripgrep,
the daemon's own read guard."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from kfd.agent.toolcall import CallContext
from kfd.policy.defaults import builtin_rules
from kfd.policy.read_guard import ReadGuard
from kfd.policy.rules import SourcedRule, parse_rule
from kfd_fs import GlobTool, GrepTool

SECRET = "sk-CANARY-4f1d"


def guarded(repo: Path, *extra: str, tool: str = "grep") -> CallContext:
    rules = [SourcedRule(parse_rule(text), "deny", "user") for text in extra]
    guard = ReadGuard([*rules, *builtin_rules()], str(repo), str(Path.home()), tool)
    return CallContext(session_id="s", workspace=repo, read_denied=guard)


async def grep(ctx: CallContext, pattern: str, **kwargs: Any) -> str:
    return (await GrepTool().run(GrepTool.Args(pattern=pattern, **kwargs), ctx)).output


async def glob(ctx: CallContext, pattern: str, path: str = "") -> str:
    return (await GlobTool().run(GlobTool.Args(pattern=pattern, path=path), ctx)).output


@pytest.fixture
def secrets(repo: Path) -> Path:
    (repo / ".env").write_text(f"API_KEY={SECRET}\nDEBUG=1\n")
    (repo / "deploy").mkdir()
    (repo / "deploy" / "server.key").write_text(f"-----BEGIN PRIVATE KEY-----\n{SECRET}\n")
    (repo / "deploy" / "secrets").mkdir()
    (repo / "deploy" / "secrets" / "prod.txt").write_text(f"token {SECRET}\n")
    (repo / "app.py").write_text(f"KEY = getenv('API_KEY')  # not {SECRET[:3]}\n")
    return repo


@pytest.mark.parametrize("mode", ["content", "files_with_matches", "count"])
async def test_grep_never_returns_env_or_key_lines_and_says_what_it_left_out(
    secrets: Path, mode: str
) -> None:
    output = await grep(guarded(secrets, "read(**/secrets/**)"), "API_KEY|CANARY", output_mode=mode)
    assert SECRET not in output
    shown = output.split("\n[", 1)[0]
    assert ".env" not in shown and "server.key" not in shown and "prod.txt" not in shown
    assert "app.py" in output
    assert "3 files with matches left out by read rules" in output
    assert "read(**/.env)" in output and "read(**/*.key)" in output
    assert "read(**/secrets/**)" in output


async def test_grep_with_context_keeps_groups_apart_and_leaves_the_secret_out(
    secrets: Path,
) -> None:
    (secrets / "notes.txt").write_text("a\nAPI_KEY here\nb\nc\nd\nAPI_KEY again\ne\n")
    output = await grep(guarded(secrets), "API_KEY", output_mode="content", context=1)
    assert output.splitlines()[:8] == [
        "app.py:1:KEY = getenv('API_KEY')  # not sk-",
        "--",
        "notes.txt-1-a",
        "notes.txt:2:API_KEY here",
        "notes.txt-3-b",
        "--",
        "notes.txt-5-d",
        "notes.txt:6:API_KEY again",
    ]
    assert SECRET not in output and "DEBUG" not in output


async def test_grep_says_so_when_only_left_out_files_matched(secrets: Path) -> None:
    output = await grep(guarded(secrets), "DEBUG", output_mode="content")
    assert output.startswith("No matches for 'DEBUG' in the workspace.")
    assert "1 file with matches left out by read rules (read(**/.env))" in output


async def test_grep_of_a_directory_reached_through_a_symlink_checks_the_real_path(
    secrets: Path, tmp_path: Path
) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "token.txt").write_text(f"{SECRET}\n")
    (secrets / "linked").symlink_to(vault)
    ctx = guarded(secrets, f"read({vault}/**)")
    output = await grep(ctx, "CANARY", path="linked", output_mode="content")
    assert SECRET not in output and "1 file with matches left out" in output


async def test_a_crafted_file_name_cannot_pass_a_denied_file_for_another(
    secrets: Path,
) -> None:
    crafted = secrets / "deploy" / "secrets" / "a\nb"
    crafted.write_text(f"{SECRET} in a crafted name\n")
    for mode in ("content", "count", "files_with_matches"):
        output = await grep(guarded(secrets, "read(**/secrets/**)"), "crafted", output_mode=mode)
        assert "crafted name" not in output and "b:1" not in output, output
        assert "left out by read rules" in output
    (secrets / "plain\nname.txt").write_text("crafted but readable\n")
    output = await grep(guarded(secrets), "crafted but", output_mode="content")
    assert output == "plain\\nname.txt:1:crafted but readable"


async def test_glob_leaves_out_denied_files_and_says_how_many(secrets: Path) -> None:
    listed = await glob(guarded(secrets, "read(**/secrets/**)", tool="glob"), "**")
    names = listed.split("\n[")[0].splitlines()
    assert sorted(names) == ["app.py"]
    assert "3 matching files left out by read rules" in listed
    only_py = await glob(guarded(secrets, tool="glob"), "*.py")
    assert only_py == "app.py"  # nothing left out among what the pattern matched


async def test_without_read_rules_nothing_is_left_out(secrets: Path) -> None:
    ctx = CallContext(session_id="s", workspace=secrets)
    output = await grep(ctx, "CANARY", output_mode="files_with_matches")
    assert ".env" in output and "left out" not in output


async def test_grep_and_glob_keep_their_paths_exact_under_a_subdirectory(
    secrets: Path,
) -> None:
    ctx = guarded(secrets)
    assert await grep(ctx, "PRIVATE", path="deploy") == (
        "No matches for 'PRIVATE' in deploy.\n"
        "[1 file with matches left out by read rules (read(**/*.key)): their content is not "
        "shown to you; do not try to read them another way]"
    )
    assert os.path.exists(secrets / "deploy" / "server.key")
    listed = await glob(guarded(secrets, tool="glob"), "*", path="deploy")
    assert listed.splitlines()[0] == "deploy/secrets/prod.txt"


@pytest.mark.parametrize("mode", ["content", "files_with_matches", "count"])
async def test_a_hard_link_to_a_denied_file_is_left_out_of_grep_under_any_name(
    secrets: Path, mode: str
) -> None:
    os.link(secrets / ".env", secrets / "notes.txt")  # the same content, an innocent name
    ctx = guarded(secrets, "read(**/secrets/**)")
    output = await grep(ctx, "API_KEY|CANARY", output_mode=mode)
    assert SECRET not in output
    assert "notes.txt" not in output.split("\n[", 1)[0]
    assert "app.py" in output
    assert "files with several hard links" in output
    listed = await glob(guarded(secrets, tool="glob"), "notes.*")
    assert listed == "notes.txt"  # a name alone shows no content: glob lists it
