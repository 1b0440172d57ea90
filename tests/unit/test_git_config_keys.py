"""`kfd.policy.gitconfig`: the keys of a repository's own configuration that make a
read-only git command run a program or read what the repository names, as git
itself reads them (checked against real git where it matters)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kfd.policy.gitconfig import config_files, running_keys


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[core]\n\tfsmonitor = "touch x; false"\n', ["core.fsmonitor"]),
        ("[Core]\n  FSMonitor=./hook.sh\n", ["core.fsmonitor"]),
        ("[core]\n\tfsmonitor = true\n\tfsmonitor = false ; off\n", []),
        ('[diff "pdf"]\n\ttextconv = pdftotext\n', ["diff.pdf.textconv"]),
        ("[diff.Pdf]\n\tcommand = x\n", ["diff.pdf.command"]),
        ('[filter "lfs"]\n\tclean = git-lfs clean -- %f\n', ["filter.lfs.clean"]),
        ("[diff]\n\texternal = /bin/x\n", ["diff.external"]),
        ("[include]\n\tpath = ../other\n", ["include.path"]),
        ('[includeIf "gitdir:~/"]\n\tpath = x\n', ["includeif.gitdir:~/.path"]),
        ("[core]\n\tworktree = /home/u\n", ["core.worktree"]),
        ("[blame]\n\tignoreRevsFile = .env\n", ["blame.ignorerevsfile"]),
        ('[gpg "ssh"]\n\tprogram = x\n', ["gpg.ssh.program"]),
        ("[core] fsmonitor = x\n", ["core.fsmonitor"]),
        ("[core]\n\tbare = false\n\tlogallrefupdates = true\n", []),
        ('[remote "origin"]\n\turl = https://x/y\n\tfetch = +refs/*:refs/*\n', []),
        # A continued value is not followed: its next line is read on its own (more
        # asks, never fewer: git continues a value but never a comment).
        ("[core]\n\tpager = less \\\n[diff]\n\texternal = x\n", ["diff.external"]),
        ('[core]\n\tcomment = x ;\\\n\tfsmonitor = "sh -c x"\n', ["core.fsmonitor"]),
        ("[core]\n# a comment \\\n\tfsmonitor = x\n", ["core.fsmonitor"]),
        ("[core]\n\tfoo = y \x0c[alias]\n\tfsmonitor = x\n", ["core.fsmonitor"]),
        ("[core]\r\n\tfsmonitor = x\r\n", ["core.fsmonitor"]),
        ("[core]\n\tfoo = y\u2028\tfsmonitor = x\n", []),
        ('[diff ""]\n\ttextconv = sh\n', ["diff..textconv"]),
        ('[filter ""]\n\tclean = sh\n', ["filter..clean"]),
        ("[core]\n\tbare\n# fsmonitor = x\n; diff.external = y\n", []),
        ("fsmonitor = x\n", ["line 1"]),
        ("[core\n\tfsmonitor = x\n", ["line 1", "line 2"]),
        ("[core]\n\t= x\n", ["line 2"]),
    ],
)
def test_the_keys_that_run_programs_are_named(text: str, expected: list[str]) -> None:
    assert running_keys(text) == expected


def test_what_git_runs_is_what_is_named(tmp_path: Path) -> None:
    """The spellings above that name a program make real git run it."""
    repo = tmp_path / "r"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "a").write_text("x\n")
    marker = tmp_path / "ran"
    with (repo / ".git" / "config").open("a") as config:
        config.write(f"[Core]\n  FSMonitor=touch {marker}; false\n")
    assert running_keys((repo / ".git" / "config").read_text()) == ["core.fsmonitor"]
    subprocess.run(["git", "status"], cwd=repo, capture_output=True, check=False)
    assert marker.exists()


def test_a_linked_worktrees_config_files_are_its_common_and_own(tmp_path: Path) -> None:
    main = tmp_path / "main"
    subprocess.run(["git", "init", "-q", str(main)], check=True)
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "i",
        ],
        cwd=main,
        check=True,
    )
    linked = tmp_path / "linked"
    subprocess.run(["git", "worktree", "add", "-q", str(linked)], cwd=main, check=True)
    files = config_files(str(linked))
    assert files is not None
    assert files[0] == str(main / ".git" / "config")
    assert str(main / ".git" / "worktrees" / "linked" / "config.worktree") in files
    assert config_files(str(main)) == [
        str(main / ".git" / "config"),
        str(main / ".git" / "config.worktree"),
    ]
