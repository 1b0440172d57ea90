"""What a permission decision and the sandbox cost.

Decision: a bash line analyzed (tree-sitter), its paths resolved in a real
workspace, the pure engine run with the built-in and a few user rules, as the
gate does it (no daemon). Sandbox: one trivial command run by the bash tool,
confined by bubblewrap and not.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

from common import summary

from kfd.agent.toolcall import CallContext
from kfd.api import PolicyRequest, Sandbox
from kfd.config import PermissionsConfig
from kfd.policy.defaults import builtin_rules
from kfd.policy.engine import decide_facts
from kfd.policy.facts import CallFacts
from kfd.policy.line_facts import line_facts
from kfd.policy.rulebook import configured
from kfd_shell import BashTool
from kfd_shell.sandbox import probe

LINES = [
    "git status",
    "ls -la src && cat README.md | wc -l",
    "npm run test -- --watch=false 2>&1 | tail -n 50",
    "for f in *.md; do echo $f; done",
    'bash -c "timeout 5 git push --force origin main"',
]
RUNS = 300


def decisions(workspace: Path) -> None:
    rules = [
        *configured(
            PermissionsConfig(allow=["bash(npm run test *)"], deny=["bash(curl *)"]), "user"
        ),
        *builtin_rules(),
    ]
    for line in LINES:
        timings = []
        for _ in range(RUNS):
            started = time.perf_counter()
            request = PolicyRequest(
                session_id="s",
                tool="bash",
                arguments={"command": line},
                read_only=False,
                edits_files=False,
                workspace=str(workspace),
                mode="default",
            )
            facts = CallFacts(request=request, rules=rules, line=line_facts(line, str(workspace)))
            decide_facts(facts)
            timings.append((time.perf_counter() - started) * 1000)
        print(f"decide {line[:40]!r}: {summary(timings)}")


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


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        workspace = Path(root)
        subprocess.run(["git", "init", "-q", root], check=True)
        (workspace / "README.md").write_text("# demo\n")
        (workspace / "src").mkdir()
        decisions(workspace)
        asyncio.run(sandbox(workspace))


if __name__ == "__main__":
    main()
