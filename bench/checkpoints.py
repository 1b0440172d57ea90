"""What checkpoints cost: added time per mutating tool call, and the store after 1,000 edits.

The real `kfd.checkpoints.service.Checkpoints` on a real SQLite store and a real
git repository of 2,000 small files and one 90 KB file:

- an ``edit`` of the 90 KB file (a tool that writes only the paths it names):
  the time `before` + `after` add around the write, per call (target < 5 ms);
- a ``bash`` call that changes one file (the whole workspace synced into the
  shadow repository before and after), per call;
- 1,000 edits (100 turns of 10): the shadow repository's size (loose, then
  packed by the pruning's ``git gc``) and the database's.

Usage: ``.venv/bin/python bench/checkpoints.py``
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import summary, workspace

from kfd.api import PathAccess
from kfd.checkpoints.service import Checkpoints
from kfd.store.checkpoints import CheckpointStore
from kfd.store.db import Store

SMALL_FILES = 2000
BIG = "big.txt"
BIG_LINES = 1500  # about 90 KB
EDITS = 1000
PER_TURN = 10


class Edit:
    """Like ``edit``: writes only the path it names."""

    read_only = False
    writes_only_paths = True

    def paths(self, path: str) -> list[PathAccess]:
        return [PathAccess(path, write=True)]


class Bash:
    """Like ``bash``: may write anything in the workspace."""

    read_only = False

    def paths(self, _: object) -> list[PathAccess]:
        return []


def make_files(root: Path) -> None:
    for index in range(SMALL_FILES):
        directory = root / "src" / f"pkg{index % 40}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"module{index}.py").write_text(f"value = {index}\n" * 40)
    (root / BIG).write_text("".join(f"line {n:05d} " + "x" * 48 + "\n" for n in range(BIG_LINES)))


def size(path: Path) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, files in os.walk(path) for f in files)


async def main() -> None:
    root = workspace()
    make_files(root)
    await asyncio.sleep(1.1)  # files older than the index, as a workspace's usually are (racy git)
    state = Path(tempfile.mkdtemp(prefix="kfd-bench-state-"))
    store = await Store.open(state / "kfd.db")

    async def root_of(path: str) -> str:
        return path

    checkpoints = Checkpoints(CheckpointStore(store), state / "checkpoints", root_of)
    big = root / BIG
    small = len("value = 0\n" * 40)
    print(f"workspace: {SMALL_FILES} files of {small} B, {BIG} of {big.stat().st_size // 1024} KB")

    started = time.perf_counter()
    mark = await checkpoints.before("s0", 1, str(root), Bash(), None)
    await checkpoints.after(mark)
    checkpoints.end_turn("s0")
    first = (time.perf_counter() - started) * 1000
    await asyncio.sleep(1.1)
    print(f"first look at the workspace (every file hashed once): {first:.0f} ms")

    edit, bash = Edit(), Bash()
    added: list[float] = []
    lines = big.read_text().splitlines(keepends=True)
    for number in range(EDITS):
        turn = 2 + number // PER_TURN
        started = time.perf_counter()
        mark = await checkpoints.before("s1", turn, str(root), edit, BIG)
        before = time.perf_counter() - started
        lines[number % BIG_LINES] = f"edit {number:05d} " + "y" * 47 + "\n"
        big.write_text("".join(lines))
        started = time.perf_counter()
        await checkpoints.after(mark)
        added.append((before + time.perf_counter() - started) * 1000)
        if (number + 1) % PER_TURN == 0:
            checkpoints.end_turn("s1")
    print(f"edit of a {big.stat().st_size // 1024} KB file, added per call: {summary(added)}")

    synced: list[float] = []
    for number in range(50):
        started = time.perf_counter()
        mark = await checkpoints.before("s2", 1000 + number, str(root), bash, None)
        before = time.perf_counter() - started
        (root / "src" / "pkg0" / "module0.py").write_text(f"value = {number}\n")
        started = time.perf_counter()
        await checkpoints.after(mark)
        synced.append((before + time.perf_counter() - started) * 1000)
        checkpoints.end_turn("s2")
    print(f"bash call changing 1 file of {SMALL_FILES + 1}, added per call: {summary(synced)}")

    shadow = state / "checkpoints"
    loose = size(shadow)
    repo = next(iter(checkpoints._repos.values()))
    await repo.gc()
    packed = size(shadow)
    database = sum(p.stat().st_size for p in state.glob("kfd.db*"))
    print(
        f"after {EDITS} edits of the {big.stat().st_size // 1024} KB file: shadow repository "
        f"{loose / 1e6:.1f} MB loose, {packed / 1e6:.1f} MB packed (git gc); "
        f"database {database / 1e6:.2f} MB"
    )
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
