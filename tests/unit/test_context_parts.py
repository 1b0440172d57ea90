"""The pure parts of context handling, called directly: cuts, redaction,
queries, titles, instruction files, token calibration, output pages, and
the memory table on a real SQLite file."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from kfd.agent.compaction import choose_cut
from kfd.agent.environment import summarize_status
from kfd.agent.instructions import find_instructions, project_root, render
from kfd.agent.outputs import PAGE_CHARS, page
from kfd.agent.tasks import TasksSetArgs
from kfd.agent.titles import title_from
from kfd.agent.tokens import Calibration, estimate
from kfd.protocol import ToolCall
from kfd.redact import redact
from kfd.store.db import Store
from kfd.store.memory import MemoryStore, fts_query
from kfd.transcript import AssistantMessage, Message, ToolResultMessage, UserMessage

# -- where a compaction cuts ------------------------------------------------------------


def step(call_id: str, result_size: int = 1) -> list[Message]:
    return [
        AssistantMessage(tool_calls=[ToolCall(id=call_id, name="read", arguments="{}")]),
        ToolResultMessage(call_id=call_id, name="read", content="r" * result_size),
    ]


def one_token_each(message: Message) -> int:
    if isinstance(message, ToolResultMessage):
        return len(message.content)
    return 1


def test_a_cut_never_separates_a_tool_call_from_its_result() -> None:
    messages = [UserMessage(text="go"), *step("a", 50), *step("b", 50), *step("c", 50)]
    for keep in range(0, 200, 7):
        cut = choose_cut(messages, 0, keep, one_token_each)
        assert cut is not None
        assert not isinstance(messages[cut], ToolResultMessage)


def test_a_cut_prefers_whole_turns_that_fit_the_budget() -> None:
    messages = [
        UserMessage(text="one"),
        *step("a", 10),
        AssistantMessage(text="done"),
        UserMessage(text="two"),
        *step("b", 10),
        AssistantMessage(text="done"),
    ]
    assert choose_cut(messages, 0, 100, one_token_each) == 4  # keeps the second turn whole
    assert choose_cut(messages, 0, 3, one_token_each) == 7  # only the last step fits


def test_when_nothing_fits_the_last_step_is_still_kept_and_the_rest_summarised() -> None:
    messages = [UserMessage(text="go"), *step("a", 500), *step("b", 500)]
    assert choose_cut(messages, 0, 10, one_token_each) == 3


def test_there_is_nothing_to_cut_when_only_the_last_step_is_left() -> None:
    assert choose_cut([UserMessage(text="hi")], 0, 10, one_token_each) is None
    messages = [UserMessage(text="go"), *step("a"), *step("b")]
    assert choose_cut(messages, 3, 10, one_token_each) is None


# -- redaction ------------------------------------------------------------------------

SECRETS = {
    "sk-proj-abcdefghijklmnopqrstuvwx012345": "api-key",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789": "github-token",
    "AKIAIOSFODNN7EXAMPLE": "aws-access-key",
    "xoxb-123456789012-abcdefghij": "slack-token",
    "AIzaSyA1234567890abcdefghijklmnopqrstuv": "google-api-key",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N": "jwt",
}


@pytest.mark.parametrize(("secret", "kind"), SECRETS.items())
def test_common_key_formats_are_redacted(secret: str, kind: str) -> None:
    result = redact(f"use {secret} for it")
    assert result.text == f"use [redacted {kind}] for it" and result.count == 1


def test_headers_assignments_and_pem_blocks_are_redacted_keeping_their_names() -> None:
    text = (
        "Authorization: Bearer abcdef123456\n"
        "DB_PASSWORD=hunter2hunter2\n"
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    result = redact(text)
    assert result.text == (
        "Authorization: Bearer [redacted authorization]\n"
        "DB_PASSWORD=[redacted secret]\n"
        "[redacted private-key]\n"
    )
    assert redact(result.text).count == 0, "redacting twice finds nothing more"


def test_ordinary_prose_about_tokens_and_keys_is_left_alone() -> None:
    text = "The token limit is 400; keys are sorted; password: short"
    assert redact(text).text == text


# -- full-text queries ------------------------------------------------------------------


def test_queries_quote_every_word_and_drop_common_ones() -> None:
    assert fts_query("How do I run the tests?") == '"run" OR "tests"'
    assert fts_query('NEAR( "xy" AND y* : col:^z') == '"near" OR "xy" OR "col"'
    assert fts_query("the a of ?!") is None
    assert fts_query("") is None


async def test_the_memory_table_scopes_ranks_and_never_reuses_ids(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "kfd.db")
    try:
        memories = MemoryStore(store)
        here = "/repo/here"
        kept, created = await memories.add(
            "tests run with make check", scope="project", project=here, source="user"
        )
        again, created_again = await memories.add(
            "tests run with make check", scope="project", project=here, source="model"
        )
        await memories.add(
            "deploys use the release branch", scope="project", project=here, source="user"
        )
        await memories.add(
            "elsewhere tests use tox", scope="project", project="/other", source="user"
        )
        await memories.add(
            "answer tersely about tests", scope="global", project=here, source="user"
        )
        found = await memories.search("how are the tests run?", project=here)
        everywhere = await memories.search("tests", project=None)
        forgotten = await memories.forget(kept.id)
        newer, _ = await memories.add("a newer fact", scope="global", project="", source="user")
    finally:
        await store.close()

    assert created and not created_again and again.id == kept.id
    assert found[0].text == "tests run with make check"
    assert {m.text for m in found} == {"tests run with make check", "answer tersely about tests"}
    assert len(everywhere) == 3
    assert forgotten is not None and forgotten.id == kept.id
    assert newer.id > 4, "a forgotten id was reused"


# -- titles, git status -----------------------------------------------------------------


def test_titles_come_from_the_first_meaningful_line_cut_at_a_word() -> None:
    assert title_from("## Fix the login bug\nmore") == "Fix the login bug"
    assert title_from("```\n```\n- add a flag") == "add a flag"
    long = title_from("please refactor the configuration loader so that it reads every file")
    assert long.endswith("…") and len(long) <= 60 and " " in long
    assert title_from("   \n\n") == ""


def test_git_status_is_summarised_in_one_line() -> None:
    porcelain = (
        "## main...origin/main [ahead 2]\nM  staged.py\n M changed.py\n?? new.txt\nUU c.py\n"
    )
    assert summarize_status(porcelain) == (
        "branch main (ahead 2); 1 staged, 1 modified, 1 untracked, 1 conflicted"
    )
    assert summarize_status("## No commits yet on main\n") == "branch main; clean"
    assert summarize_status("garbage") == ""


# -- instruction files ------------------------------------------------------------------


def test_instruction_files_are_read_root_first_once_each_and_cut_with_a_note(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    deep = repo / "a" / "b"
    deep.mkdir(parents=True)
    (repo / ".git").mkdir()
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / "AGENTS.md").write_text("root\n")
    os.symlink("AGENTS.md", repo / "CLAUDE.md")
    (repo / "a" / "KFD.md").write_text("middle\n")
    (deep / "AGENTS.md").write_text("line\n" * 500)
    global_dir = tmp_path / "config"
    global_dir.mkdir()
    (global_dir / "KFD.md").write_text("global\n")
    (global_dir / "AGENTS.md").write_text("   \n")  # empty files are skipped

    files = find_instructions(deep, global_dir, per_file=1000, total=1100)

    assert [f.label for f in files] == ["global KFD.md", "AGENTS.md", "a/KFD.md", "a/b/AGENTS.md"]
    assert [f.cut for f in files] == [False, False, False, True]
    last = files[-1]
    assert last.text.endswith("read the file for the rest]") and len(last.text) < 1200
    assert project_root(deep) == repo
    assert render(files).index("global") < render(files).index("a/b/AGENTS.md")
    assert render([]) == ""


# -- tokens -----------------------------------------------------------------------------


def test_calibration_learns_the_providers_ratio_within_bounds() -> None:
    calibration = Calibration()
    assert calibration.scale(1000) == 1000
    calibration.observe(1000, 1200)
    assert calibration.scale(1000) == 1200
    calibration.observe(1000, 1_000_000)  # nonsense moves it only so far
    assert calibration.ratio <= Calibration.HIGH
    calibration.observe(1000, 0)  # no usage reported: nothing learnt
    assert calibration.reported == 1_000_000
    assert estimate("") == 0 and estimate("abcd") == 1 and estimate("é" * 4) == 2


# -- output pages and tool arguments ----------------------------------------------------


def test_output_pages_are_bounded_and_say_where_to_go_on() -> None:
    output = "\n".join(f"line {n}" for n in range(1, 101))
    text = page(output, "call_1", 10, 5)
    assert text.splitlines() == [
        "[output call_1: lines 10-14 of 100; next: read_output(id='call_1', offset=15)]",
        "line 10",
        "line 11",
        "line 12",
        "line 13",
        "line 14",
    ]
    assert page(output, "call_1", 96, 50).startswith("[output call_1: lines 96-100 of 100]")
    wide = "\n".join("w" * 5_000 for _ in range(100))
    assert len(page(wide, "call_2", 1, 100)) <= PAGE_CHARS + 200


def test_task_arguments_are_bounded() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"tasks": [{"text": "y" * 400}]}, TasksSetArgs)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"tasks": [{"text": "t"}] * 51}, TasksSetArgs)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"tasks": [{"text": "t", "status": "later"}]}, TasksSetArgs)


def test_an_instruction_file_that_links_out_of_the_repository_is_not_read(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key = CANARY-LINKED-OUT\n")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / "AGENTS.md").symlink_to(secret)
    (repo / "KFD.md").write_text("inside\n")
    os.symlink("KFD.md", repo / "CLAUDE.md")  # a link within the repository is fine
    global_dir = tmp_path / "config"
    global_dir.mkdir()
    files = find_instructions(repo, global_dir, per_file=1000, total=5000)
    assert [f.listed for f in files] == ["AGENTS.md (left out)", "KFD.md"]
    assert f"it is a link to {secret}, outside {repo}" in render(files)
    assert "CANARY" not in render(files)
