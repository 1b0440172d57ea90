"""read, write and edit through an editor that serves the session's files.

When an editor serves them (`kfd.api.ToolContext.files`: ``kfd acp`` with an
editor that offers ``fs/read_text_file`` and ``fs/write_text_file``), a read
sees the editor's buffer, unsaved changes included, and a write or an edit
goes into its buffer and is saved by it, so its undo history and open
buffers stay right. The call was allowed before it runs: nothing here is
asked before the permission decision.

The editor opens files by name, so the file is first checked on disk the
way the disk path checks it (reached without a link at any component, a
regular file, no second hard link without the user's consent, within the
size limit); only its text comes from the editor. Whenever the editor does
not take part (none serves the file, it left, it did not answer in time,
the file is not UTF-8 text), the caller goes the disk way, with the same
checks as always. Stamps are of the text the model saw, so a file whose
editor buffer and disk differ is never changed on the strength of the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kfd.api import NotBeneath, ToolError, open_beneath

from .changes import Change
from .files import (
    BINARY_SNIFF_BYTES,
    FileStamp,
    check_readable,
    digest,
    load_existing,
    open_target,
    stamps,
)

if TYPE_CHECKING:
    from kfd.api import ToolContext

Existing = tuple[bytes, int] | None
"""A file's content and mode as a plan sees it (None: there is no such file)."""


async def text_from_editor(ctx: ToolContext, path: Path, label: str) -> str | None:
    """``path``'s text as the serving editor has it, after the disk's checks;
    None when no editor serves it (read the disk)."""
    if not ctx.files.serves("read", path):
        return None
    await asyncio.to_thread(check_readable, path, label, ctx.workspace, ctx.granted)
    return await ctx.files.read_text(path)


@dataclass(frozen=True, slots=True)
class InEditor:
    """A file as the serving editor has it, checked on disk first."""

    existing: Existing


async def in_editor(
    ctx: ToolContext, path: Path, label: str, *, create_parents: bool = False
) -> InEditor | None:
    """The file a write or an edit would change, as the editor serving its writes
    has it; None when no editor takes part (plan over the disk)."""
    files = ctx.files
    if not files.serves("write", path):
        return None
    workspace, granted = ctx.workspace, ctx.granted

    def on_disk() -> Existing:
        try:
            target = open_beneath(workspace, path, create_parents=create_parents)
        except NotBeneath as exc:
            raise ToolError(str(exc)) from None
        except FileNotFoundError:
            return None  # its directory is missing: a new file
        except OSError as exc:
            raise ToolError(f"Cannot reach {path}: {exc.strerror}.") from exc
        with target:
            return load_existing(target, label, granted)

    disk = await asyncio.to_thread(on_disk)
    if disk is None:
        return InEditor(None)
    data, mode = disk
    if not _is_text(data):
        return None  # no text to hand an editor: the disk way keeps the bytes exact
    text = await files.read_text(path) if files.serves("read", path) else data.decode()
    if text is None:
        return None
    return InEditor((text.encode("utf-8"), mode))


async def change_through_editor(
    ctx: ToolContext,
    path: Path,
    label: str,
    plan: Callable[[Existing], Change],
    *,
    create_parents: bool = False,
) -> Change | None:
    """Plan the change over the editor's text and have the editor write it; the
    change made, or None when the editor takes no part (write the disk)."""
    view = await in_editor(ctx, path, label, create_parents=create_parents)
    if view is None:
        return None
    change = await asyncio.to_thread(plan, view.existing)
    if change.old != change.new and not await ctx.files.write_text(path, change.new):
        return None
    # The model knows the new content (it wrote it): later edits need no re-read.
    mtime = await asyncio.to_thread(_mtime, ctx.workspace, path)
    stamps(ctx)[change.key] = FileStamp(digest(change.new.encode("utf-8")), mtime)
    return change


def _is_text(data: bytes) -> bool:
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _mtime(workspace: Path, path: Path) -> int:
    """The file's modification time now (0 when it cannot be seen)."""
    try:
        with open_target(workspace, path) as target:
            info = target.lstat()
    except (ToolError, OSError):
        return 0
    return info.st_mtime_ns if info is not None else 0
