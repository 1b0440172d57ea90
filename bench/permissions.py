"""What a permission decision and the sandbox cost.

Decision: a bash line analyzed (tree-sitter, or the fast path for a provably
simple line: `kfd.policy.shell.fastpath`), its words resolved and its
trees walked in a real workspace, the pure engine run with the built-in and a
few user rules, exactly as the gate does it (no daemon). Lines go from a
plain ``git status`` to 4 KB (a long commit message, a long chain, a long
loop, many paths): the target is under 1 ms at p50 and 5 ms at p99 for each.
Each line says which parser read it (tree-sitter costs about a microsecond a
token; a long run of plain words is one token to it: `kfd.policy.shell.runs`).
The last lines repeat nothing (distinct paths, distinct statements): a line of
hundreds of commands costs what its commands cost, some 15 us each (a command
met again with other redirections is read and judged once: a statement of one
shape with another target, ``… > out7.txt``, costs about 1 us of analysis and as
much for its file), and every distinct file a few lookups (what each
name in a directory is, is kept while the directory is unchanged:
`kfd.policy.entries`; its hard links too, since no sandboxed program can make
one). The workspaces are left unchanged for `FRESH_S` first, as a user's are
between most commands.
Sandbox: one trivial command run by the bash tool, confined by bubblewrap and
not.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from common import percentile, summary

from kfd.agent.toolcall import CallContext
from kfd.api import PolicyRequest, Sandbox
from kfd.config import PermissionsConfig
from kfd.policy.defaults import builtin_rules
from kfd.policy.engine import decide_facts, forget_words
from kfd.policy.facts import CallFacts
from kfd.policy.gate import restricted_matcher
from kfd.policy.line_facts import line_facts
from kfd.policy.rulebook import configured
from kfd.policy.shell.fastpath import simple_line
from kfd.policy.tree_walk import FRESH_S
from kfd.sandbox import probe
from kfd_shell import BashTool

FOUR_KB = 4096


def _fill(template: str, unit: str, joiner: str = "") -> str:
    """``template`` with ``{}`` filled by ``unit`` repeated until the line is ~4 KB
    (``{n}`` in ``unit`` numbers each: a line of distinct words or statements)."""
    parts: list[str] = []
    while True:
        part = unit.replace("{n}", str(len(parts)))
        if len(template.format(joiner.join(parts))) + len(part) + len(joiner) >= FOUR_KB:
            return template.format(joiner.join(parts))
        parts.append(part)


LINES = [
    "git status",
    "ls -la src && cat README.md | wc -l",
    "npm run test -- --watch=false 2>&1 | tail -n 50",
    "grep -rn TODO src",
    "for f in *.md; do echo $f; done",
    'bash -c "timeout 5 git push --force origin main"',
    "rm --rec --for build; git log -p -- src/main.py",
    _fill("git commit -m '{}'", "Fix the parser edge case in the tokenizer. "),
    _fill("git add {}", "src/m1.py ", ""),
    _fill(
        "python3 - <<'EOF'\nimport json, os\n{}\nEOF",
        "print(json.dumps({'path': os.path.join('src', 'a.py'), 'n': 1}))\n",
    ),
    _fill("{}", "grep -rn 'TODO' src | sort | uniq -c | head -20", "; "),
    _fill("{}", "ls src/a.py", " && "),
    _fill("cat {}", "src/a.py README.md ", ""),
    _fill("for x in {}; do echo $x; done", "a b c d ", ""),
    _fill("echo start{}", "; echo $(date) > out.txt", ""),
    # Distinct words and statements: nothing in the line is read twice.
    _fill("git add {}", "src/m{n}.py ", ""),
    _fill('for f in {}; do git add "$f"; done', "src/m{n}.py ", ""),
    _fill("echo start{}", "; echo $(date) > out{n}.txt", ""),
]
RUNS = 300
TREE_LINES = ["grep -rn TODO .", "rg -l 'fn main' src"]
"""Lines that read a whole tree, decided in a repository of 10,000 files: every
file under the tree is checked against the read rules (`kfd.policy.tree_walk`)."""
HOSTILE_RULES = ["read(" + "*a" * 9 + "*b)", "read(**/" + "a/**/" * 8 + "b)"]
"""Deny rules an untrusted project may add, over a tree holding a file of 254 ``a`` s
and a ``c``: with pathspec's expressions, the first held a decision for minutes
(`kfd.policy.globs`)."""


def decisions(
    workspace: Path,
    lines: list[str],
    worst: dict[str, list[float]],
    pooled: dict[str, list[float]],
    project_deny: Sequence[str] = (),
) -> None:
    """Each line decided RUNS times, "fresh" (a distinct comment ends it each time, so
    nothing kept from an earlier decision of the same line helps: a new command from
    the model) and "repeated" (the same line again: a re-decision, ``kfd explain``).
    Wall time and CPU time (`time.process_time`, less affected by a loaded machine)."""
    rules = [
        *configured(
            PermissionsConfig(
                allow=["bash(npm run test *)", "bash(git commit *)"],
                deny=["bash(curl *)", "bash(rm -rf *)", "bash(git push --force *)"],
            ),
            "user",
        ),
        *configured(PermissionsConfig(deny=list(project_deny)), "project"),
        *builtin_rules(),
    ]
    home = os.path.expanduser("~")
    for line in lines:
        label = line if len(line) <= 40 else f"{line[:32]}... ({len(line)} bytes)"
        parser = "fast path" if simple_line(f"{line}\n# 0") is not None else "tree-sitter"
        for kind in ("fresh", "repeated"):
            wall: list[float] = []
            cpu: list[float] = []
            for run in range(RUNS):
                text = f"{line}\n# {run}" if kind == "fresh" else line
                if kind == "fresh":
                    forget_words()  # its commands too are new (the comment left them alike)
                started, started_cpu = time.perf_counter(), time.process_time()
                request = PolicyRequest(
                    session_id="s",
                    tool="bash",
                    arguments={"command": text},
                    read_only=False,
                    edits_files=False,
                    workspace=str(workspace),
                    mode="default",
                )
                matcher = restricted_matcher(rules, str(workspace), home)
                line_fact = line_facts(text, str(workspace), restricted=matcher)
                facts = CallFacts(request=request, rules=rules, line=line_fact, home=home)
                decide_facts(facts)
                cpu.append((time.process_time() - started_cpu) * 1000)
                wall.append((time.perf_counter() - started) * 1000)
            for name, values in (("wall", wall), ("cpu", cpu)):
                pooled.setdefault(f"{kind} {name}", []).extend(values)
                figures = worst.setdefault(f"{kind} {name}", [0.0, 0.0])
                figures[0] = max(figures[0], percentile(values, 50))
                figures[1] = max(figures[1], percentile(values, 99))
            print(
                f"decide {label!r} {kind} ({parser}): wall {summary(wall)}; "
                f"cpu p50 {percentile(cpu, 50):.2f} ms, p99 {percentile(cpu, 99):.2f} ms"
            )


def verdicts(worst: dict[str, list[float]], pooled: dict[str, list[float]]) -> None:
    """The worst line's figures against the target, and every decision's together
    (the bench's lines weighed alike: a mix with more long lines than a session's)."""
    for name, (p50, p99) in worst.items():
        verdict = "within" if p50 < 1.0 and p99 < 5.0 else "OVER"
        print(
            f"decisions {name}: worst p50 {p50:.2f} ms, worst p99 {p99:.2f} ms ({verdict} "
            "the 1 ms p50 / 5 ms p99 target)"
        )
    for name, values in pooled.items():
        p50, p99 = percentile(values, 50), percentile(values, 99)
        verdict = "within" if p50 < 1.0 and p99 < 5.0 else "OVER"
        print(
            f"decisions {name}, every line's together: p50 {p50:.2f} ms, p99 {p99:.2f} ms "
            f"({verdict} the target)"
        )


async def sandbox(workspace: Path) -> None:
    tool = BashTool()
    for enabled in (False, True):
        if enabled and (problem := await probe("bwrap", network=False)) is not None:
            print(f"sandbox: skipped ({problem})")
            return
        ctx = CallContext(session_id="s", workspace=workspace, sandbox=Sandbox(enabled=enabled))
        timings = []
        for _ in range(50):
            started = time.perf_counter()
            await tool.run(BashTool.Args(command="true"), ctx)
            timings.append((time.perf_counter() - started) * 1000)
        print(f"bash `true` {'sandboxed' if enabled else 'unconfined'}: {summary(timings)}")


def _settle(*directories: Path) -> None:
    """Wait until ``directories`` were last changed `FRESH_S` ago."""
    newest = max(directory.stat().st_ctime for directory in directories)
    time.sleep(max(0.0, FRESH_S - (time.time() - newest)))


def main() -> None:
    with tempfile.TemporaryDirectory() as root, tempfile.TemporaryDirectory() as other:
        workspace = Path(root)
        subprocess.run(["git", "init", "-q", root], check=True)
        (workspace / "README.md").write_text("# demo\n")
        (workspace / "src").mkdir()
        for index in range(400):
            (workspace / "src" / f"m{index}.py").write_text("x = 1\n")
        (workspace / "src" / "a.py").write_text("print(1)\n")
        (workspace / ".env").write_text("TOKEN=x\n")
        (workspace / ("a" * 254 + "c")).write_text("TODO\n")
        big = Path(other)
        for package in range(200):
            (big / "src" / f"pkg{package}").mkdir(parents=True)
            for index in range(50):
                (big / "src" / f"pkg{package}" / f"m{index}.rs").write_text("fn main() {}\n")
        worst: dict[str, list[float]] = {}
        pooled: dict[str, list[float]] = {}
        gc.collect()
        gc.freeze()  # as the daemon does once it serves (kfd.daemon.server)
        # A directory changed within FRESH_S is listed at every decision (its tree
        # walked, its entries looked at); one the user is not changing this instant
        # is remembered between decisions (`kfd.policy.tree_walk`, `kfd.policy.entries`).
        _settle(workspace, workspace / "src")
        decisions(workspace, LINES, worst, pooled)
        _settle(big / "src")
        print("in a repository of 10,000 files in 200 directories:")
        decisions(big, TREE_LINES, worst, pooled)
        verdicts(worst, pooled)
        print(f"with the project's deny rules {HOSTILE_RULES}:")
        decisions(workspace, ["grep -rn TODO ."], {}, {}, project_deny=HOSTILE_RULES)
        asyncio.run(sandbox(workspace))


if __name__ == "__main__":
    main()
