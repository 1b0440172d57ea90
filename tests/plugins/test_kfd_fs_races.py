"""Writes cannot be redirected: a symlink swapped in a loop while the tools write,
and files with several hard links, against the real file system."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kfd.agent.toolcall import CallContext
from kfd.api import HARD_LINKS, ApprovalNeeded, ToolError
from kfd_fs import EditTool, ReadTool, WriteTool

ROUNDS = 150
HOLD_S = 0.0003


@pytest.fixture
def outside() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="kfd-outside-"))
    (directory / "target.txt").write_text("untouched\n")
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


class Swapper:
    """Swaps ``path`` between ``states`` as fast as it can, in a thread."""

    def __init__(self, path: Path, outside: Path, *, directory: bool) -> None:
        self.path = path
        self.outside = outside
        self.directory = directory
        self.stop = threading.Event()
        self.swaps = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        link = self.path.with_name(self.path.name + ".link")
        aside = self.path.with_name(self.path.name + ".aside")
        target = self.outside if self.directory else self.outside / "target.txt"
        while not self.stop.is_set():
            try:
                link.unlink(missing_ok=True)
                link.symlink_to(target)
                # Each state lasts a little, so that writes meet both.
                if self.directory:
                    # The real directory steps aside, a link takes its name, then back.
                    os.rename(self.path, aside)
                    os.rename(link, self.path)
                    time.sleep(HOLD_S)
                    os.unlink(self.path)
                    os.rename(aside, self.path)
                else:
                    # Atomic replacement: whatever is there becomes the link, then goes.
                    os.replace(link, self.path)
                    time.sleep(HOLD_S)
                    os.unlink(self.path)
                time.sleep(HOLD_S)
                self.swaps += 1
            except OSError:
                continue

    def __enter__(self) -> Swapper:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


async def test_a_directory_swapped_for_a_link_never_receives_a_write(
    repo: Path, outside: Path
) -> None:
    ctx = CallContext(session_id="s", workspace=repo)
    (repo / "d").mkdir()
    written = refused = 0
    with Swapper(repo / "d", outside, directory=True) as swapper:
        for index in range(ROUNDS):
            try:
                await WriteTool().run(WriteTool.Args(path=f"d/f{index}.txt", content="x\n"), ctx)
                written += 1
            except ToolError:
                refused += 1
    assert swapper.swaps > 0 and written + refused == ROUNDS
    assert sorted(p.name for p in outside.iterdir()) == ["target.txt"]
    assert (outside / "target.txt").read_text() == "untouched\n"


async def test_a_file_swapped_for_a_link_never_sends_a_write_outside(
    repo: Path, outside: Path
) -> None:
    ctx = CallContext(session_id="s", workspace=repo)
    written = 0
    with Swapper(repo / "f.txt", outside, directory=False) as swapper:
        for _ in range(ROUNDS):
            try:
                await WriteTool().run(WriteTool.Args(path="f.txt", content="inside\n"), ctx)
                written += 1
            except ToolError:
                pass
    assert swapper.swaps > 0 and written > 0
    assert (outside / "target.txt").read_text() == "untouched\n"


async def test_files_with_several_hard_links_are_read_or_changed_only_when_allowed(
    repo: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("outside\n")
    os.link(secret, repo / "h.txt")
    ctx = CallContext(session_id="s", workspace=repo)
    for call in (
        ReadTool().run(ReadTool.Args(path="h.txt"), ctx),
        WriteTool().run(WriteTool.Args(path="h.txt", content="x\n"), ctx),
    ):
        with pytest.raises(ApprovalNeeded) as needed:
            await call
        assert needed.value.grant == HARD_LINKS
        assert "2 hard links" in str(needed.value)
    granted = CallContext(session_id="s", workspace=repo, granted=frozenset({HARD_LINKS}))
    result = await ReadTool().run(ReadTool.Args(path="h.txt"), granted)
    assert "outside" in result.output
    edit = EditTool.Args(path="h.txt", old_string="outside", new_string="inside")
    await EditTool().run(edit, granted)
    # Replaced, not written through: the other name keeps its content.
    assert (repo / "h.txt").read_text() == "inside\n"
    assert secret.read_text() == "outside\n"
