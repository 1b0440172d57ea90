"""Which custom commands a workspace offers: the user's, and the project's once trusted.

User commands live in ``$XDG_CONFIG_HOME/kfd/commands/``; a project's in
``<project>/.kfd/commands/``. A project command comes with the repository,
so it runs a prompt (and ``!`commands```, and widens rights with
``allowed-tools`` and ``mode``) only once the user trusted its exact content:
each file is pinned by its sha256 in the store (`kfd.store.trust`), as the
project config is (``kfd trust`` trusts both). Until then it is not offered,
and `CommandBook.listing` says so. A user command wins over a project
command of the same name.

Directories are read again only when a file in them changed (a scan of
names and stamps, no reads).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from kfd.commands.loader import CommandFile, read_directory

PROJECT_COMMANDS = Path(".kfd") / "commands"

_Stamp = tuple[tuple[str, int, int, int], ...]


def stamp(directory: Path) -> _Stamp:
    """What changes when a file of ``directory`` is added, removed or edited (blocking)."""
    found = []
    for current, subdirs, files in os.walk(directory, followlinks=False):
        subdirs.sort()
        for name in sorted(files):
            path = os.path.join(current, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            found.append((path, info.st_mtime_ns, info.st_size, info.st_ino))
    return tuple(found)


class CommandDirectory:
    """One directory of commands, read again when it changes."""

    def __init__(self, directory: Path, source: str) -> None:
        self.directory = directory
        self.source = source
        self._stamp: _Stamp | None = None
        self._files: list[CommandFile] = []

    def read(self) -> list[CommandFile]:
        """The commands as they are now (blocking)."""
        now = stamp(self.directory)
        if now != self._stamp:
            self._files = read_directory(self.directory, self.source)
            self._stamp = now
        return self._files


class CommandBook:
    """Every workspace's commands, and whether the project's may run."""

    def __init__(self, user_directory: Path, trusted: Callable[[str, str], bool]) -> None:
        self._user = CommandDirectory(user_directory, "user")
        self._trusted = trusted
        self._projects: dict[str, CommandDirectory] = {}

    def project_files(self, project: str) -> list[CommandFile]:
        """A project's command files, trusted or not (blocking)."""
        directory = self._projects.get(project)
        if directory is None:
            if len(self._projects) > 256:
                self._projects.clear()
            directory = self._projects[project] = CommandDirectory(
                Path(project) / PROJECT_COMMANDS, "project"
            )
        return directory.read()

    async def find(self, project: str, name: str) -> tuple[CommandFile | None, str]:
        """Command ``name`` of ``project`` if it may run; else None and why not."""
        offered, ignored = await self.listing(project)
        for command in offered:
            if command.info.name == name:
                if command.info.problem:
                    return None, command.info.problem
                return command, ""
        for why in ignored:
            if why.startswith(f"/{name} "):
                return None, why
        return None, f"no command /{name} here"

    async def listing(self, project: str) -> tuple[list[CommandFile], list[str]]:
        """The commands offered in ``project`` (by name), and what is not offered, with why."""

        def read() -> tuple[list[CommandFile], list[CommandFile]]:
            return self._user.read(), self.project_files(project)

        user, project_files = await asyncio.to_thread(read)
        offered = {c.info.name: c for c in user}
        ignored = []
        for command in project_files:
            name = command.info.name
            if not self._trusted(command.info.path, command.sha256):
                ignored.append(f"/{name} ({command.info.path}): not until you trust it (kfd trust)")
            elif name in offered:
                ignored.append(f"/{name} ({command.info.path}): your own /{name} is used instead")
            else:
                offered[name] = command
        return sorted(offered.values(), key=lambda c: c.info.name), ignored
