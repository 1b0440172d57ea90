"""Names a command must not leave behind, removed when it ends.

Some paths cannot be made read-only before they exist without leaving a
stand-in that changes what they mean (an empty ``.git/commondir`` breaks
git; an empty ``~/.bash_profile`` hides ``~/.profile``). A sandboxed
command that creates one has it removed as soon as the command ends, when
every process of the sandbox is gone (its PID namespace dies with it), and
the command's result says so.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Sequence


def sweep(paths: Sequence[str]) -> list[str]:
    """Remove whichever of ``paths`` now exist; one note per removal (blocking)."""
    notes = []
    for path in paths:
        try:
            info = os.lstat(path)
        except OSError:
            continue
        try:
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except OSError as exc:
            notes.append(f"kfd could not remove {path}, which this command created: {exc.strerror}")
            continue
        notes.append(
            f"kfd removed {path}, which this command created: it would make git or a "
            "shell run what it names outside the sandbox"
        )
    return notes
