"""Which language server handles which file: defaults, and ``[tools.lsp.servers.<name>]``.

Defaults, each used only when its program is installed (on ``PATH`` or next to
the daemon's Python): Python through basedpyright, pyright or
python-lsp-server (the first found); TypeScript and JavaScript through
typescript-language-server. A configured server of the same name replaces a
default one::

    [tools.lsp.servers.python]
    command = ["pylsp"]
    extensions = [".py", ".pyi"]
    language_id = "python"
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from kfd.api import ToolError


class ServerSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One language server: how to start it and which files it takes."""

    command: list[str]
    extensions: list[str]
    language_id: str = ""
    """The LSP language id; default: the extension without its dot."""
    settings: dict[str, Any] = msgspec.field(default_factory=dict)
    """Sent as ``workspace/didChangeConfiguration`` after start."""
    enabled: bool = True


class LspSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[tools.lsp]``: shared by every lsp_* tool and the after-edit diagnostics."""

    servers: dict[str, ServerSpec] = msgspec.field(default_factory=dict)
    diagnostics_wait_s: float = 5.0
    """Longest wait for a server's diagnostics after a change."""
    request_timeout_s: float = 30.0
    startup_timeout_s: float = 30.0
    after_edit: bool = True
    """Append new errors of an edited file to the edit's result."""


PYTHON = [
    ["basedpyright-langserver", "--stdio"],
    ["pyright-langserver", "--stdio"],
    ["pylsp"],
]
TYPESCRIPT = [["typescript-language-server", "--stdio"]]
DEFAULTS: Mapping[str, tuple[list[list[str]], list[str]]] = {
    "python": (PYTHON, [".py", ".pyi"]),
    "typescript": (TYPESCRIPT, [".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs"]),
}
LANGUAGE_IDS = {
    ".py": "python",
    ".pyi": "python",
    ".ts": "typescript",
    ".tsx": "typescriptreact",
    ".js": "javascript",
    ".jsx": "javascriptreact",
    ".mjs": "javascript",
    ".cjs": "javascript",
}


def read_settings(tools: Mapping[str, Any]) -> LspSettings:
    """``[tools.lsp]`` typed; a mistake is a ToolError naming the key."""
    try:
        return msgspec.convert(dict(tools.get("lsp") or {}), LspSettings)
    except msgspec.ValidationError as exc:
        raise ToolError(f"[tools.lsp] in the kfd config: {exc}; fix the config") from None


def find_program(name: str) -> str | None:
    """``name`` on PATH, or beside the daemon's Python (a virtualenv's bin)."""
    return shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))


def servers(settings: LspSettings) -> dict[str, ServerSpec]:
    """The servers in use: the configured ones, then the installed defaults."""
    chosen: dict[str, ServerSpec] = {}
    for name, (candidates, extensions) in DEFAULTS.items():
        for command in candidates:
            program = find_program(command[0])
            if program is not None:
                chosen[name] = ServerSpec(command=[program, *command[1:]], extensions=extensions)
                break
    for name, spec in settings.servers.items():
        if spec.command:
            program = find_program(spec.command[0]) or spec.command[0]
            spec = msgspec.structs.replace(spec, command=[program, *spec.command[1:]])
        chosen[name] = spec
    return {name: spec for name, spec in chosen.items() if spec.enabled and spec.command}


def server_for(path: Path, available: Mapping[str, ServerSpec]) -> tuple[str, ServerSpec] | None:
    suffix = path.suffix.lower()
    for name, spec in available.items():
        if suffix in (extension.lower() for extension in spec.extensions):
            return name, spec
    return None


def language_id(path: Path, spec: ServerSpec) -> str:
    return spec.language_id or LANGUAGE_IDS.get(path.suffix.lower(), path.suffix.lstrip("."))
