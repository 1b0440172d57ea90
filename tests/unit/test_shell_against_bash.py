"""The analyser against bash itself: what a line it finds no risk in runs, bash runs.

Generated lines of the pieces tree-sitter and bash read differently (quotes,
escapes, `#`, `$`, operators, reserved words, assignments, redirections) run
under real bash in a scratch directory where every program is missing: bash's
``command_not_found_handle`` logs each argv it would run. A line `analyze`
finds no risk in must run only the commands it lists (with their wrappers) and
create only the files its redirections name. Round 23's fuzzer found six ways
tree-sitter's reading hid commands from the analyser this way; the seeds here
are fixed, so a failure names its line.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from kfd.policy.shell import analyze

ATOMS = [
    *["zqa", "zqb", "zqc", "x", "-rf", "a=b", "A=1", "'zqa'", '"zqb"', "z'q'c", "\\zqa"],
    *["zq\\a", "$'zqa'", "$'\\x7aqa'", '$"zqa"', "if", "then", "fi", "do", "done", "for"],
    *["in", "while", "case", "esac", "{", "}", "(", ")", "!", "#", "# c", ";", ";;", "&"],
    *["&&", "||", "|", "|&", "\n", "\\\n", " ", "\t", ">", ">>", "<", "2>", "&>", ">|"],
    *["<>", "2>&1", ">&2", "<<<", "f1", "f2", "'f 3'", "=", "==", "[[", "]]", "[", "]"],
    *["time", "-p", "coproc", "function", "zqf()", "{ zqa; }", "$(zqa)", "`zqb`", "'"],
    *['"$(zqc)"', '"', "\\", "\\;", "\\&", "\\|", "\\ ", "\\'", '\\"', "\\#", "x#y", "%"],
    *["%1", "@", "-", "--", "~", "~/", ":", ",", "=x", "+=", "x+=1", "\r", "select"],
    *["until", "elif", "else", "declare", "local", "export", "readonly", "typeset"],
    *["unset", "command", "builtin", "exec", "env", "nice", "nohup", "timeout 1", "true"],
    *["false", "zqa;", "zqb&&", "(zqa)", "((1))", "$((1))", "{zqa,zqb}", "zq{a,b}", "*"],
    *["?", "zq?", "zq[a]", "'['", '$"x"', "$''", "$", "$$", '""', "$'\\x20'", "$'\\t'"],
    *["\\\t", "a\\", "'\n'", "{zqa;}", "(zqa;)", "zqa()", "!zqa", "&>>", "1>", "0<"],
    *["3<>", "<&0", ">&-", ">(zqa)", "<(zqb)", "-x=", "- x=1", "a=(b)", "a+=(b)", "$[1]"],
    *["${x}", "$x", "$1", "$@", "$*", "$-", "$?", "$#", "x#;zqa", "a=(b)#", "x=>f1"],
    *["[]", "<<< $", "\\ 2>&1", "[ x |", "==;", "=~", "in ]"],
]
JOINERS = [" ", " ", " ", "", "\t", ";", "\n", " && ", " | "]
LOGGER = (
    "command_not_found_handle() { "
    "{ printf '%s\\x1f' \"$@\"; printf '\\x1e'; } >> \"$KFD_RAN.$BASHPID\"; return 0; }\n"
)


def line_from(generator: random.Random) -> str:
    parts: list[str] = []
    for _ in range(generator.randint(1, 9)):
        parts += [generator.choice(ATOMS), generator.choice(JOINERS)]
    return "".join(parts).strip()


def ran_by_bash(line: str, directory: Path, rc: Path) -> tuple[set[tuple[str, ...]], set[str]]:
    """The argvs bash ran (none exists: each reaches the handler) and the files made."""
    log = directory.parent / f"{directory.name}.ran"
    environment = {"PATH": "/usr/bin:/bin", "BASH_ENV": str(rc), "KFD_RAN": str(log)}
    with contextlib.suppress(subprocess.TimeoutExpired):  # a loop: what ran is logged
        subprocess.run(
            ["bash", "-c", line],
            cwd=directory,
            env={**environment, "HOME": str(directory)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
    ran: set[tuple[str, ...]] = set()
    for part in directory.parent.glob(f"{directory.name}.ran.*"):
        records = part.read_bytes().decode("utf-8", "surrogateescape").split("\x1e")
        ran |= {tuple(record.split("\x1f")[:-1]) for record in records if record}
        part.unlink()
    return ran, set(os.listdir(directory))


@pytest.mark.parametrize("seed", range(4))
def test_a_line_without_risks_runs_only_what_the_analyser_lists(seed: int, tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.fail("bash is needed")
    rc = tmp_path / "rc.sh"
    rc.write_text(LOGGER)
    generator = random.Random(seed)
    checked = 0
    for index in range(2500):
        line = line_from(generator)
        analysis = analyze(line)
        if analysis.risks:
            continue
        listed = {tuple(c.argv) for c in analysis.commands}
        listed |= {
            (*(w for wrapper in c.wrappers for w in wrapper), *c.argv) for c in analysis.commands
        }
        written = {r.target.removeprefix("./") for r in analysis.redirects}
        directory = tmp_path / f"run{index}"
        directory.mkdir()
        ran, made = ran_by_bash(line, directory, rc)
        assert ran <= listed, (line, ran - listed)
        assert made <= written, (line, made - written)
        shutil.rmtree(directory)
        checked += 1
    assert checked > 100  # the generator still makes lines the analyser allows
