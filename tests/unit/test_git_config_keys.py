"""`kfd.policy.gitconfig`: the keys of a repository's own configuration that make a
read-only git command run a program or read what the repository names, as git
itself reads them (checked against real git where it matters)."""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import pytest

from kfd.policy.gitconfig import (
    _COMMAND_VALUES,
    _RUNS,
    _entries,
    automatic_hooks,
    config_files,
    repository_keys,
    running_keys,
)


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
        # A last backslash continues the value: `[diff]` is value, and the key after it
        # is still in [core] (git reads it so; `test_keys_are_read_as_git_reads_them`).
        ("[core]\n\tabbrev = 12 \\\n[diff]\n\texternal = x\n", []),
        ("[core]\n\tx = a\\\n[foo]\n\tfsmonitor = sh\n", ["core.fsmonitor"]),
        ('[core]\n\tcomment = x ;\\\n\tfsmonitor = "sh -c x"\n', ["core.fsmonitor"]),
        ("[core]\n# a comment \\\n\tfsmonitor = x\n", ["core.fsmonitor"]),
        ("[core]\n\tfoo = y \x0c[alias]\n\tfsmonitor = x\n", ["core.fsmonitor"]),
        ("[core]\r\n\tfsmonitor = x\r\n", ["core.fsmonitor"]),
        ("[core]\n\tfoo = y\u2028\tfsmonitor = x\n", []),
        ('[diff ""]\n\ttextconv = sh\n', ["diff..textconv"]),
        ('[filter ""]\n\tclean = sh\n', ["filter..clean"]),
        ("[core]\n\tbare\n# fsmonitor = x\n; diff.external = y\n", []),
        ("fsmonitor = x\n", ["line 1"]),
        ("[core\n\tfsmonitor = x\n", ["line 2"]),
        ("[core]\n\t= x\n", ["line 2"]),
        ("[core]\n\talternateRefsCommand = touch x\n", ["core.alternaterefscommand"]),
        ('[alias]\n\tst = status\n\tx = "!touch y"\n', ["alias.x"]),
        ('[submodule "m"]\n\tupdate = !sh x\n\turl = ../m\n', ["submodule.m.update"]),
        ('[remote "o"]\n\tuploadpack = ./x\n\turl = .\n', ["remote.o.uploadpack"]),
        ('[credential "https://h"]\n\thelper = ./x\n', ["credential.https://h.helper"]),
        ("[protocol]\n\tallow = always\n", ["protocol.allow"]),
        ('[tar "tgz"]\n\tcommand = ./x\n', ["tar.tgz.command"]),
        ("[pull]\n\ttwohead = ../x\n", ["pull.twohead"]),
        ('[alias]\n\tst = "" !touch y\n', ["alias.st"]),
        ('[core]\n\tfsmonitor = "sh#x" ; comment\n', ["core.fsmonitor"]),
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


def _git_listed_keys() -> list[str]:
    """Every key git itself documents (`git help --config`), in lower case."""
    listed = subprocess.run(
        ["git", "help", "--config"], capture_output=True, text=True, check=True
    ).stdout.split()
    return [key for key in listed if "." in key and key[0].isalpha()]


_SUSPECT = re.compile(
    r"command|cmd|program|helper|hook|path|file|editor|pager|proxy|tool|driver|exec"
    r"|script|pass|browser|tunnel|filter|textconv|viewer|template|dir|key|cert|pack",
    re.IGNORECASE,
)
"""Words in a key's name that say it may name a program or a file."""


def test_every_key_git_knows_is_reviewed() -> None:
    """A key of git's own list makes a repository's git command ask, or is in the
    reviewed inert list (reviewed against git 2.39): no reviewed key is both, and a
    key a newer git adds whose name speaks of programs or files fails here until
    someone looks (another new key is listed in the failure of none; git's own
    list grows with every release, and CI's git may be newer)."""
    inert = {
        line.strip()
        for line in (Path(__file__).parent / "git_config_inert_keys.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    both: list[str] = []
    unreviewed: list[str] = []
    for key in _git_listed_keys():
        shape = key.lower().replace("<", "").replace(">", "")
        asks = bool(_RUNS.fullmatch(shape) or _COMMAND_VALUES.fullmatch(shape))
        if asks and key in inert:
            both.append(key)
        elif not asks and key not in inert and _SUSPECT.search(key):
            unreviewed.append(key)
    assert both == []
    assert unreviewed == []
    assert len(inert) > 700


def _repository(tmp_path: Path) -> Path:
    repo = tmp_path / "r"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "a").write_text("x\n")
    subprocess.run(["git", "-C", str(repo), "add", "a"], check=True)
    return repo


def test_a_hook_git_runs_on_git_status_is_named(tmp_path: Path) -> None:
    """A repository that came with its .git may hold post-index-change: git status
    runs it when it rewrites a stale index (shown with real git)."""
    repo = _repository(tmp_path)
    top = str(repo.resolve())
    assert repository_keys(top) == []
    marker = tmp_path / "ran"
    hook = repo / ".git" / "hooks" / "post-index-change"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    assert automatic_hooks(str(hook.parent)) == []  # not executable: git ignores it
    hook.chmod(0o755)
    assert repository_keys(top) == [f"hook post-index-change in {top}/.git/hooks"]
    (repo / "a").write_text("changed\n")  # the index is stale now
    subprocess.run(["git", "status"], cwd=repo, capture_output=True, check=False)
    assert marker.exists()


def test_hooks_where_core_hooks_path_points_are_named(tmp_path: Path) -> None:
    repo = _repository(tmp_path)
    top = str(repo.resolve())
    (repo / "tools").mkdir()
    hook = repo / "tools" / "reference-transaction"
    hook.write_text("#!/bin/sh\n")
    hook.chmod(0o755)
    assert repository_keys(top) == []
    subprocess.run(["git", "-C", str(repo), "config", "core.hooksPath", "tools"], check=True)
    assert repository_keys(top) == [f"hook reference-transaction in {top}/tools"]
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[core]\n\thooksPath = tools\n")
    subprocess.run(["git", "-C", str(repo), "config", "--unset", "core.hooksPath"], check=True)
    assert repository_keys(top) == []
    assert repository_keys(top, str(home)) == [f"hook reference-transaction in {top}/tools"]


CONFIG_TEXTS = [
    '[core]\n\thooksPath = "hk#"\n',
    '[core]\n\thooksPath = ".hus"ky\n\tpager = "a;b" c # d\n',
    '[alias]\n\tst2 = "" !touch x\n\tst3 = a\\tb\\n\\"\n',
    "[core]\n\tx = a\\\n[foo]\n\tfsmonitor = y\n",
    '[Section "Sub Name"]\n\tKey = v\n[old.Style]\n\tk = v\n[a.b "c"]\n\tk\n',
    "\ufeff[core]\r\n\tbare = false\r\n\tx =   spaced   out  \r\n",
    "[core] fsmonitor = a [b] ; c\n[diff]external=z",
    '[x "a\\"b\\\\c"]\n\tk = 1\n',
    '[core]\n\tk = "unclosed\n',
    "[core]\n\tk = bad\\q\n",
    "[core]\n\t-k = 1\n",
    "k = 1\n",
    "[core]\n\tk = a\x0cb\x0b\n",
    "[core\n]\n",
    '[core "x\n"]\n',
    "[]\n",
    "[co re]\n",
    "[core]\n\tk = a\\",
    "# only\n; comments\n\n",
]


def _git_reads(path: Path) -> list[tuple[str, str]] | None:
    """The entries real git reads from the file, or None when git refuses it."""
    listed = subprocess.run(
        ["git", "config", "--file", str(path), "--list", "--null"],
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:
        return None
    found: list[tuple[str, str]] = []
    for item in listed.stdout.decode("utf-8", "surrogateescape").split("\0")[:-1]:
        key, _, value = item.partition("\n")
        found.append((key, value))
    return found


@pytest.mark.parametrize("text", CONFIG_TEXTS)
def test_keys_are_read_as_git_reads_them(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config"
    path.write_bytes(text.encode())
    ours = _entries(text)
    theirs = _git_reads(path)
    if ours and ours[-1][0].startswith("line "):
        return  # kfd asks, whatever git makes of it
    assert theirs is not None, "git refuses a file kfd read whole"
    # git lists a section and a key in lower case, a subsection as written.
    assert [(k.lower() if k.count(".") < 2 else k, v) for k, v in ours] == [
        (k, v) for k, v in theirs
    ]


def test_random_files_are_read_as_git_reads_them(tmp_path: Path) -> None:
    """Files made of the lines and characters git's reader turns on, read by kfd and
    by git: where kfd reads a file whole, git reads the same entries."""
    rng = random.Random(11)
    lines = [
        "[core]",
        '[x "s"]',
        "[a.B]",
        "\tk = v",
        "\tfsmonitor = sh",
        "\tk",
        "; c",
        "# c",
        "\tk = a\\",
        '\tk = "a;b" c',
        '\tk = "x"y"',
        "\tk = a # b",
        "",
        "  \t",
    ]
    characters = [" ", "\t", "\\", '"', "#", ";", "=", "\r", "]", "[", "k"]
    compared = 0
    for number in range(300):
        chosen = [rng.choice(lines) for _ in range(rng.randrange(1, 8))]
        for _ in range(rng.randrange(0, 3)):
            at = rng.randrange(len(chosen))
            cut = rng.randrange(len(chosen[at]) + 1)
            chosen[at] = chosen[at][:cut] + rng.choice(characters) + chosen[at][cut:]
        text = "[core]\n" + "\n".join(chosen) + rng.choice(["", "\n"])
        path = tmp_path / f"config{number}"
        path.write_bytes(text.encode())
        ours = _entries(text)
        if ours and ours[-1][0].startswith("line "):
            continue
        theirs = _git_reads(path)
        assert theirs is not None, repr(text)
        assert [(k.lower() if k.count(".") < 2 else k, v) for k, v in ours] == theirs, repr(text)
        compared += 1
    assert compared > 100
