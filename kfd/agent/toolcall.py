"""What a tool sees while it runs: the `kfd.api.ToolContext` implementation."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfd.agent.editor_files import SessionFiles
from kfd.api import EditorFiles, Sandbox, ToolError

if TYPE_CHECKING:
    from kfd.config import SandboxConfig


def sandbox_of(config: SandboxConfig) -> Sandbox:
    """``[sandbox]`` as the plugins see it (`kfd.api.Sandbox`)."""
    return Sandbox(
        enabled=config.enabled,
        network=config.network,
        env_allow=tuple(config.env_allow),
        env=tuple(config.env),
        hide=tuple(config.hide),
        sockets=tuple(config.sockets),
    )


class CallContext:
    """The context of one tool call (implements `kfd.api.ToolContext`)."""

    __slots__ = (
        "_config",
        "_files",
        "_granted",
        "_on_output",
        "_read_denied",
        "_sandbox",
        "_session_id",
        "_state",
        "_turn",
        "_workspace",
    )

    def __init__(
        self,
        *,
        session_id: str,
        workspace: Path,
        state: dict[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        on_output: Callable[[str], None] | None = None,
        turn: int = 0,
        sandbox: Sandbox | None = None,
        granted: frozenset[str] = frozenset(),
        read_denied: Callable[[str], str | None] | None = None,
        files: EditorFiles | None = None,
    ) -> None:
        self._session_id = session_id
        self._workspace = workspace
        self._state = {} if state is None else state
        self._config = {} if config is None else config
        self._on_output = on_output
        self._turn = turn
        self._sandbox = Sandbox() if sandbox is None else sandbox
        self._granted = granted
        self._read_denied = read_denied
        self._files = files if files is not None else SessionFiles(None, session_id, workspace)

    @property
    def session_id(self) -> str:
        return self._session_id

    @property
    def workspace(self) -> Path:
        return self._workspace

    @property
    def turn(self) -> int:
        return self._turn

    @property
    def state(self) -> dict[str, Any]:
        return self._state

    @property
    def config(self) -> Mapping[str, Any]:
        return self._config

    @property
    def sandbox(self) -> Sandbox:
        return self._sandbox

    @property
    def granted(self) -> frozenset[str]:
        return self._granted

    @property
    def files(self) -> EditorFiles:
        return self._files

    def read_denied(self, path: str) -> str | None:
        return self._read_denied(path) if self._read_denied is not None else None

    def resolve(self, path: str) -> Path:
        expanded = os.path.expanduser(path)
        return Path(tidied_path(os.path.join(self._workspace, expanded)))

    def output(self, text: str) -> None:
        if self._on_output is not None and text:
            self._on_output(text)


def tidied_path(path: str) -> str:
    """``path`` (absolute) tidied, when tidying it as text is what the kernel does.

    A ``..`` after a symbolic link leaves the link's target, not the link:
    ``x/../../f`` with ``x -> a/b`` is ``a/f`` to the kernel and to the gate's
    ``realpath`` (`kfd.policy.paths.resolve`), but ``f`` as text. Resolving it
    here again would race the gate (a directory swapped for a link after the
    decision); so a path with a link before a ``..`` is refused, and any other
    is tidied as text, which then is the path the gate judged, and the tool's
    walk refuses a link swapped in later.
    """
    parts = path.split(os.sep)
    if ".." in parts:
        last = len(parts) - 1 - parts[::-1].index("..")
        for end in range(2, last + 1):
            prefix = os.sep.join(parts[:end])
            if parts[end - 1] not in ("", ".", "..") and os.path.islink(prefix):
                raise ToolError(
                    f"{path} goes through the symbolic link {prefix} and then `..`: "
                    "name the file without `..`"
                )
    return os.path.normpath(path)
