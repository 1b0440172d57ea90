"""Instruction files meet the read rules: what the model may not read unasked, the
loader does not give it unasked; it says which file it left out and why instead.

Real files on disk; the read rules are the `ReadGuard` the session passes in
(`kfd.policy.rulebook.RuleBook.read_guard`), over the built-in rules and the user's.
"""

from __future__ import annotations

import os
from pathlib import Path

from kfd.agent.instructions import InstructionFile, find_instructions, render
from kfd.policy.defaults import builtin_rules
from kfd.policy.read_guard import ReadGuard
from kfd.policy.rules import SourcedRule, parse_rule
from kfd.testing.fixtures import git_repo

SECRET = "STRIPE_KEY=sk_live_CANARY123\n"


def guard(workspace: Path, home: Path, *user: tuple[str, str]) -> ReadGuard:
    rules = [SourcedRule(parse_rule(text), decision, "user") for text, decision in user]  # type: ignore[arg-type]
    return ReadGuard([*rules, *builtin_rules()], str(workspace), str(home))


def load(workspace: Path, tmp_path: Path, read_denied: ReadGuard | None) -> list[InstructionFile]:
    global_dir = tmp_path / "config" / "kfd"
    global_dir.mkdir(parents=True, exist_ok=True)
    return find_instructions(
        workspace, global_dir, per_file=10_000, total=40_000, read_denied=read_denied
    )


def by_label(files: list[InstructionFile]) -> dict[str, InstructionFile]:
    return {file.label: file for file in files}


def test_a_link_to_a_file_a_read_rule_denies_is_left_out_with_the_rule_named(
    tmp_path: Path,
) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / ".env").write_text(SECRET)
    (repo / "AGENTS.md").symlink_to(".env")

    files = load(repo, tmp_path, guard(repo, tmp_path / "home"))

    (agents,) = files
    assert agents.label == "AGENTS.md" and agents.text == ""
    assert "read(**/.env)" in agents.left_out and str(repo / ".env") in agents.left_out
    assert agents.listed == "AGENTS.md (left out)"
    prompt = render(files)
    assert "CANARY" not in prompt
    assert "## AGENTS.md\n[AGENTS.md is left out, its content not shown:" in prompt
    assert "read(**/.env)" in prompt


def test_a_link_into_a_directory_the_user_denies_is_left_out(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / "secrets").mkdir()
    (repo / "secrets" / "plan.md").write_text("CANARY plan\n")
    (repo / "CLAUDE.md").symlink_to("secrets/plan.md")
    (repo / "KFD.md").write_text("KFD-OK: run make.\n")

    files = by_label(
        load(repo, tmp_path, guard(repo, tmp_path / "home", ("read(**/secrets/**)", "deny")))
    )

    assert "read(**/secrets/**)" in files["CLAUDE.md"].left_out
    assert files["KFD.md"].text == "KFD-OK: run make." and not files["KFD.md"].left_out
    assert "CANARY" not in render(list(files.values()))


def test_a_file_an_ask_rule_names_where_it_stands_is_left_out(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    docs = repo / "docs"
    docs.mkdir()
    (docs / "AGENTS.md").write_text("CANARY draft\n")  # a plain file, no link

    files = load(docs, tmp_path, guard(docs, tmp_path / "home", ("read(*.md)", "ask")))

    (agents,) = files
    assert agents.label == "docs/AGENTS.md" and agents.text == ""
    assert agents.left_out == "it is kept from the model unasked by the read rule read(*.md)"


def test_a_link_to_a_key_in_the_home_directory_is_left_out(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("-----BEGIN CANARY KEY-----\n")
    (repo / "AGENTS.md").symlink_to(home / ".ssh" / "id_rsa")

    (agents,) = load(repo, tmp_path, guard(repo, home))

    assert agents.text == "" and "read rule read(" in agents.left_out


def test_a_link_outside_the_repository_is_left_out_with_no_rules_at_all(
    tmp_path: Path,
) -> None:
    repo = git_repo(tmp_path / "repo")
    (tmp_path / "elsewhere.txt").write_text("CANARY elsewhere\n")
    (repo / "AGENTS.md").symlink_to(tmp_path / "elsewhere.txt")

    (agents,) = load(repo, tmp_path, None)

    assert agents.text == ""
    assert agents.left_out == f"it is a link to {tmp_path / 'elsewhere.txt'}, outside {repo}"


def test_a_hard_linked_file_is_left_out_whatever_the_rules(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    secret = tmp_path / "id_ed25519"  # another name no rule of the repository sees
    secret.write_text("CANARY hard\n")
    os.link(secret, repo / "AGENTS.md")

    for read_denied in (None, guard(repo, tmp_path / "home")):
        (agents,) = load(repo, tmp_path, read_denied)
        assert agents.text == "" and "it has 2 hard links" in agents.left_out
        assert "CANARY" not in render([agents])


def test_a_file_two_names_lead_to_is_left_out_once(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / ".env").write_text(SECRET)
    (repo / "AGENTS.md").symlink_to(".env")
    (repo / "CLAUDE.md").symlink_to("AGENTS.md")

    files = load(repo, tmp_path, guard(repo, tmp_path / "home"))

    assert [file.listed for file in files] == ["AGENTS.md (left out)"]


def test_plain_files_and_a_link_between_them_are_read_as_before(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / "AGENTS.md").write_text("ROOT: use tabs.\n")
    (repo / "CLAUDE.md").symlink_to("AGENTS.md")
    (tmp_path / "config" / "kfd").mkdir(parents=True)
    (tmp_path / "config" / "kfd" / "AGENTS.md").write_text("GLOBAL: be brief.\n")

    files = load(repo, tmp_path, guard(repo, tmp_path / "home"))

    assert [(file.listed, file.text) for file in files] == [
        ("global AGENTS.md", "GLOBAL: be brief."),
        ("AGENTS.md", "ROOT: use tabs."),
    ]
    assert "left out" not in render(files)
