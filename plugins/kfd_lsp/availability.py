"""Whether the lsp tools can work in a workspace: an installed server for a language present.

The answer is worked out once per workspace (a bounded walk of its files, in a
thread) and cached. It is worked out again when what it depends on changes:
``[tools.lsp]``, ``PATH`` (which servers are installed), or the workspace's
languages as far as kfd sees them -- when an ``edit`` or ``write`` creates
the first file of a language that a server handles (`Availability.wrote`).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import msgspec

from .servers import DEFAULTS, LspSettings, ServerSpec, servers

MAX_ENTRIES = 20_000
"""Directory entries looked at before giving up on finding a language (a huge
tree without a single source file of a known language is not worth more)."""

SKIPPED = frozenset({"node_modules", "__pycache__", "site-packages", "dist", "build", "target"})
"""Directories never looked into (besides hidden ones: ``.git``, ``.venv``, ...)."""

LANGUAGES = {"python": "Python", "typescript": "TypeScript or JavaScript"}
INSTALL_HINTS = {
    "python": "basedpyright, pyright or python-lsp-server (pip install basedpyright)",
    "typescript": "typescript-language-server (npm install -g typescript-language-server)",
}


def extensions_present(root: Path, wanted: set[str], limit: int = MAX_ENTRIES) -> set[str]:
    """Which of the ``wanted`` extensions (lower case, with the dot) files under
    ``root`` have; stops when all are found or after ``limit`` entries."""
    found: set[str] = set()
    seen = 0
    for _directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(
            name for name in subdirectories if not name.startswith(".") and name not in SKIPPED
        )
        seen += len(subdirectories) + len(files)
        for name in files:
            suffix = os.path.splitext(name)[1].lower()
            if suffix in wanted:
                found.add(suffix)
        if found == wanted or seen >= limit:
            break
    return found


def _can_start(spec: ServerSpec) -> bool:
    program = spec.command[0]
    return os.path.isfile(program) and os.access(program, os.X_OK)


def decide(installed: Mapping[str, ServerSpec], present: set[str]) -> str | None:
    """Why no server can work here (None: one can). Pure: ``installed`` are the
    servers in use (`servers`), ``present`` the extensions the workspace has."""
    startable = {name: spec for name, spec in installed.items() if _can_start(spec)}
    for spec in startable.values():
        if present & {extension.lower() for extension in spec.extensions}:
            return None
    missing = [
        name
        for name, (_, extensions) in DEFAULTS.items()
        if present & set(extensions) and name not in startable
    ]
    if missing:
        needs = "; ".join(f"for {LANGUAGES[name]}: {INSTALL_HINTS[name]}" for name in missing)
        return (
            f"no language server is installed for the files here ({needs}; "
            "or set [tools.lsp.servers.<name>] command)"
        )
    broken = sorted(set(installed) - set(startable))
    if broken:
        commands = ", ".join(installed[name].command[0] for name in broken)
        return f"the configured language server cannot start: {commands} is not an executable"
    if not startable:
        hints = "; ".join(f"{LANGUAGES[name]}: {INSTALL_HINTS[name]}" for name in DEFAULTS)
        return f"no language server is installed ({hints})"
    kinds = ", ".join(sorted({e for spec in startable.values() for e in spec.extensions}))
    return f"no file here is of a language an installed server takes ({kinds})"


def _known_extensions(installed: Iterable[ServerSpec]) -> set[str]:
    known = {extension for _, extensions in DEFAULTS.values() for extension in extensions}
    known |= {e.lower() for spec in installed for e in spec.extensions}
    return known


class Availability:
    """The cached answers, per workspace and per what they depend on."""

    def __init__(self) -> None:
        self._answers: dict[tuple[Path, bytes], asyncio.Future[str | None]] = {}

    @staticmethod
    def _fingerprint(settings: LspSettings) -> bytes:
        where = (os.environ.get("PATH", ""), os.path.dirname(sys.executable))
        return msgspec.json.encode((settings, where))

    async def unavailable(self, workspace: Path, settings: LspSettings) -> str | None:
        """Why the lsp tools cannot work in ``workspace`` (None: they can)."""
        key = (workspace, self._fingerprint(settings))
        answer = self._answers.get(key)
        if answer is None:
            # One walk per workspace, however many tools ask at once.
            answer = self._answers[key] = asyncio.ensure_future(self._work_out(workspace, settings))
        try:
            return await asyncio.shield(answer)
        except Exception:
            self._answers.pop(key, None)
            raise

    @staticmethod
    async def _work_out(workspace: Path, settings: LspSettings) -> str | None:
        installed = servers(settings)
        wanted = _known_extensions(installed.values())
        present = await asyncio.to_thread(extensions_present, workspace, wanted)
        return decide(installed, present)

    def wrote(self, workspace: Path, path: Path, settings: LspSettings) -> None:
        """kfd wrote ``path``: if the workspace had no file of its language, ask again."""
        suffix = path.suffix.lower()
        handled = any(
            suffix in {e.lower() for e in spec.extensions} for spec in servers(settings).values()
        )
        if not handled:
            return
        for key, answer in list(self._answers.items()):
            if key[0] == workspace and not _available(answer):
                del self._answers[key]


def _available(answer: asyncio.Future[str | None]) -> bool:
    """A settled "the tools can work" (nothing to ask again)."""
    return (
        answer.done()
        and not answer.cancelled()
        and answer.exception() is None
        and (answer.result() is None)
    )
