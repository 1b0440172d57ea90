"""What leaving out read-denied files costs grep and glob, and what the live config
and trust checks add to a decision's rule lookup.

Guard: the read guard (built-in rules plus a few user rules) over workspace
paths, per path. Tools: glob ``**`` and grep over a synthetic tree of many
files (some of them secrets), with the guard and without. Rule lookup:
`RuleBook.applicable` per decision, with the user config's freshness check
(one stat in the same worker-thread hop as the project config's).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from common import summary

from kfd.agent.toolcall import CallContext
from kfd.config import PermissionsConfig
from kfd.daemon.reload import ConfigReloader
from kfd.policy.defaults import builtin_rules
from kfd.policy.read_guard import ReadGuard
from kfd.policy.rulebook import RuleBook, configured
from kfd.store.db import Store
from kfd.store.rules import RuleStore
from kfd.store.trust import TrustStore
from kfd_fs import GlobTool, GrepTool

FILES = 20_000
USER = PermissionsConfig(deny=["read(**/secrets/**)", "read(config/*.key)"], ask=["read(docs/**)"])


def tree(root: Path) -> None:
    for index in range(FILES):
        directory = root / f"pkg{index % 200}" / ("secrets" if index % 97 == 0 else "src")
        directory.mkdir(parents=True, exist_ok=True)
        name = ".env" if index % 101 == 0 else f"mod{index}.py"
        (directory / name).write_text(f"value = {index}  # needle\n")


def guard_cost(root: Path) -> None:
    rules = [*configured(USER, "user"), *builtin_rules()]
    paths = [str(p) for p in root.rglob("*") if p.is_file()]
    guard = ReadGuard(rules, str(root), str(Path.home()), "grep")
    started = time.perf_counter()
    denied = sum(1 for path in paths if guard(path))
    per_path = (time.perf_counter() - started) / len(paths) * 1e6
    print(f"read guard: {per_path:.1f} µs per path, {denied} of {len(paths)} left out")


async def tool_cost(root: Path) -> None:
    guard = ReadGuard([*configured(USER, "user"), *builtin_rules()], str(root), "/nonexistent")
    calls = (
        ("glob **", GlobTool(), GlobTool.Args(pattern="**")),
        ("grep content", GrepTool(), GrepTool.Args(pattern="needle", output_mode="content")),
    )
    for label, read_denied in (("without rules", None), ("with rules", guard)):
        ctx = CallContext(session_id="b", workspace=root, read_denied=read_denied)
        for name, tool, args in calls:
            times = []
            for _ in range(5):
                started = time.perf_counter()
                await tool.run(args, ctx)  # type: ignore[attr-defined]
                times.append((time.perf_counter() - started) * 1000)
            print(f"{name} over {FILES:,} files, {label}: {summary(times)}")


async def lookup_cost(root: Path) -> None:
    state = Path(tempfile.mkdtemp(prefix="kfd-bench-"))
    config = state / "config.toml"
    config.write_text("[permissions]\nallow = ['bash(make)']\n")
    store = await Store.open(state / "kfd.db")
    try:
        trust = TrustStore(store)
        await trust.load()

        async def apply(old: object, new: object) -> None:
            return None

        from kfd import config as config_module

        reloader = ConfigReloader(config, config_module.load(config), apply, lambda e: None)
        for label, freshness in (("no config check", None), ("with config check", reloader)):
            book = RuleBook(PermissionsConfig(), RuleStore(store), trust, freshness=freshness)
            await book.applicable(str(root))
            times = []
            for _ in range(500):
                started = time.perf_counter()
                await book.applicable(str(root))
                times.append((time.perf_counter() - started) * 1000)
            print(f"rule lookup per decision, {label}: {summary(times)}")
    finally:
        await store.close()


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="kfd-bench-")) / "repo"
    root.mkdir()
    (root / ".git").mkdir()
    tree(root)
    guard_cost(root)
    asyncio.run(tool_cost(root))
    asyncio.run(lookup_cost(root))


if __name__ == "__main__":
    main()
