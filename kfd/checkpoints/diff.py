"""Unified diffs of file states, as git prints them (pure).

``a/`` is the state before, ``b/`` the state after; a created file comes
from ``/dev/null``, a deleted one goes to it; binary content is named, not
printed; a content that was not kept says so.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from kfd.checkpoints.objects import SYMLINK, State

BINARY_PROBE = 8000
"""Bytes looked at for a NUL, as git does, to call content binary."""


def is_binary(data: bytes) -> bool:
    """Whether git would call ``data`` binary."""
    return b"\0" in data[:BINARY_PROBE]


def file_diff(path: str, before: State, after: State, blobs: Mapping[str, bytes]) -> str:
    """The diff of one path between two states ("" when they are the same)."""
    if before.same(after) or (not before.exists and not after.exists):
        return ""
    header = [f"diff --git a/{path} b/{path}"]
    if not before.kept or not after.kept:
        why = before.note if not before.kept else after.note
        return "\n".join([*header, f"# {path}: content {why or 'not kept'}"]) + "\n"
    old_name, new_name = f"a/{path}", f"b/{path}"
    if not before.exists:
        header.append(f"new file mode {after.mode:06o}")
        old_name = "/dev/null"
    elif not after.exists:
        header.append(f"deleted file mode {before.mode:06o}")
        new_name = "/dev/null"
    elif before.mode != after.mode:
        header += [f"old mode {before.mode:06o}", f"new mode {after.mode:06o}"]
    old = _content(before, blobs)
    new = _content(after, blobs)
    if old is None or new is None:
        return "\n".join([*header, f"# {path}: content no longer in the checkpoint store"]) + "\n"
    if old == new:
        return "\n".join(header) + "\n"
    if is_binary(old) or is_binary(new):
        return "\n".join([*header, f"Binary files {old_name} and {new_name} differ"]) + "\n"
    lines = difflib.unified_diff(
        _lines(old, before), _lines(new, after), old_name, new_name, lineterm=""
    )
    body = [line.rstrip("\n") if line.startswith(("---", "+++")) else line for line in lines]
    return "\n".join(header) + "\n" + "".join(_terminated(body))


def _content(state: State, blobs: Mapping[str, bytes]) -> bytes | None:
    if not state.exists:
        return b""
    return blobs.get(state.sha)


def _lines(data: bytes, state: State) -> list[str]:
    text = data.decode("utf-8", "replace")
    if state.mode == SYMLINK:
        text = f"(symbolic link to {text})\n"
    return text.splitlines(keepends=True)


def _terminated(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        if line.startswith(("---", "+++", "@@")):
            out.append(line.rstrip("\n") + "\n")
        elif line.endswith("\n"):
            out.append(line)
        else:
            out.append(line + "\n\\ No newline at end of file\n")
    return out
