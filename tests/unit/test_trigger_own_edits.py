"""Which changes kfd made itself: by the paths a call claims and the content it left."""

from __future__ import annotations

from kfd import protocol as p
from kfd.triggers.own_edits import Claim, OwnEdits, claim_of_paths, named_paths

WS = "/w"


def claims(command: str) -> Claim:
    return named_paths({"command": command}, WS)


def test_a_command_claims_the_paths_it_names_and_nothing_else() -> None:
    claim = claims("sed -i s/a/b/ src/x.py > out.txt && pytest -q --rootdir=tests")
    assert claim.covers("/w/src/x.py") and claim.covers("/w/out.txt")
    assert claim.covers("/w/tests/test_a.py")  # --rootdir=tests names a directory
    assert not claim.covers("/w/src/y.py") and not claim.covers("/w/user.py")
    assert not claims("cat ../outside ~/x").paths - {"/w/cat"}  # only inside the workspace


def test_globs_claim_their_matches_and_git_work_tree_commands_claim_everything() -> None:
    glob = claims("ruff format *.py && rm build/*.o")
    assert glob.covers("/w/a.py") and not glob.covers("/w/src/a.py")
    assert glob.covers("/w/build/x.o") and not glob.covers("/w/build/x.c")
    assert claims("git -C . checkout main").covers("/w/any/file.py")
    assert not claims("git log --oneline; echo reset").covers("/w/any/file.py")
    assert claims("[ -e gate ]").covers("/w/gate") and not claims("[ -e gate ]").covers("/w/a")


def test_a_tool_that_declares_its_writes_claims_only_those() -> None:
    claim = claim_of_paths(["src/a.py"], {"path": "src/a.py", "content": "b.py c.py"}, WS)
    assert claim.covers("/w/src/a.py") and not claim.covers("/w/b.py")


def run(edits: OwnEdits, call: str, command: str, start: float, end: float | None) -> None:
    edits.observe(
        p.ToolRequested(session="s", call_id=call, name="bash", arguments={"command": command})
    )
    edits.observe(p.ToolStarted(session="s", call_id=call, name="bash", ts=start))
    if end is not None:
        edits.observe(p.ToolCompleted(session="s", call_id=call, name="bash", ts=end))


def test_a_change_is_kfds_only_if_a_call_claimed_its_path_and_it_happened_during_the_call() -> None:
    edits = OwnEdits(lambda event: claim_of_paths([], event.arguments, WS))
    run(edits, "c1", "echo 1 > gen.py; sleep 5", start=100.0, end=105.0)
    assert edits.made_by_kfd("/w/gen.py", 101.0, "d1", now=106.0)
    assert not edits.made_by_kfd("/w/user.py", 101.0, "u1", now=106.0)  # saved meanwhile
    assert not edits.made_by_kfd("/w/gen.py", 107.0, "d2", now=107.0)  # edited later
    # Once someone else changed it, kfd's old version no longer says anything.
    assert not edits.made_by_kfd("/w/gen.py", 107.0, "d1", now=108.0)


def test_kfds_version_of_a_file_is_remembered_by_content() -> None:
    edits = OwnEdits(lambda event: claim_of_paths([], event.arguments, WS))
    run(edits, "c1", "echo 1 > gen.py", start=100.0, end=101.0)
    assert edits.made_by_kfd("/w/gen.py", 100.5, "d1", now=101.0)
    assert edits.made_by_kfd("/w/gen.py", 100.5, "d1", now=500.0)  # reported late: same bytes
    run(edits, "c2", "rm old.py", start=200.0, end=201.0)
    assert edits.made_by_kfd("/w/old.py", None, None, now=202.0)  # a deletion just after
    assert not edits.made_by_kfd("/w/other.py", None, None, now=202.0)


def test_read_only_calls_claim_nothing() -> None:
    edits = OwnEdits(lambda event: claim_of_paths([], event.arguments, WS))
    edits.observe(
        p.ToolRequested(
            session="s", call_id="c1", name="grep", arguments={"pattern": "x.py"}, read_only=True
        )
    )
    edits.observe(p.ToolStarted(session="s", call_id="c1", name="grep", ts=100.0))
    assert not edits.made_by_kfd("/w/x.py", 100.5, "d", now=101.0)
