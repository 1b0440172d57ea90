"""Where rules come from: the I/O around the pure engine.

Sources, lowest to highest: the built-in defaults (`kfd.policy.defaults`),
the user config's ``[permissions]`` (swapped in by `RuleBook.set_user` when
the file changes), the project's ``.kfd/config.toml`` (at the repository
root; read again whenever it changes), the session's "allow for this
session" rules, and the project's "always" rules from the store.

A project config comes with the repository, so it only narrows rights until
the user trusts its exact content (`kfd.config.narrow`, pinned by hash in
`kfd.store.trust`): its ``ask`` and ``deny`` rules apply at once, its
``allow`` rules once trusted, its ``defaults = false`` never. What does not
apply is listed (`Applicable.ignored`), never dropped silently.

A project config that stops loading (a TOML mistake, a rule that does not
parse) keeps the rules of its last content that loaded, by path, as they
applied then: narrowing only unless that exact content is trusted (its pin
is checked as before, so revoking it narrows them at once). The broken
content itself never applies and cannot be trusted. Without a last good
content (the daemon never read one since it started) the problem is one the
gate turns into "ask" for every call, never into silence. Either way
`RuleBook.problem` says so, for every frontend (`kfd.daemon.config_notices`).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol

from kfd.agent.instructions import project_root
from kfd.config import (
    PROJECT_CONFIG,
    HookConfig,
    Narrowed,
    PermissionsConfig,
    ProjectFile,
    narrow,
    read_project,
)
from kfd.policy.defaults import builtin_rules
from kfd.policy.read_guard import ReadGuard
from kfd.policy.rules import (
    Decision,
    RuleError,
    RuleSource,
    SourcedRule,
    parse_rule,
)
from kfd.protocol import RuleInfo, TrustInfo
from kfd.store.rules import RuleStore
from kfd.store.trust import TrustStore

__all__ = ["Applicable", "Freshness", "Listing", "RuleBook", "TrustConflict", "configured"]

_DECISIONS: tuple[Decision, ...] = ("deny", "ask", "allow")

_Stamp = tuple[int, int, int, int]


_SHA256 = re.compile(r"[0-9a-f]{64}")


class Applicable(NamedTuple):
    """The rules that apply in a workspace, highest source first."""

    rules: list[SourcedRule]
    project: str
    problems: list[str]
    """Rule sources that do not load and have no last good content: each asks."""
    ignored: Sequence[str] = ()
    """What the project config holds that does not apply, each with why."""


class Listing(NamedTuple):
    """What ``kfd rules list`` shows for a workspace (or every project's "always" rules)."""

    rules: list[RuleInfo]
    project: str
    problems: list[str]
    ignored: list[str]


class Freshness(Protocol):
    """The user config as the rule book sees it: checked before every decision."""

    def stale(self) -> bool:
        """Whether the file changed since it was last read (blocking: a stat)."""
        ...

    async def refresh(self) -> None:
        """Read it again and apply it (`RuleBook.set_user` among the rest)."""
        ...


class TrustConflict(ValueError):
    """A trust request that cannot be granted; the message says why and what to do."""


def configured(permissions: PermissionsConfig, source: RuleSource) -> list[SourcedRule]:
    """The rules of one ``[permissions]`` table (already checked when it loaded)."""
    rules: list[SourcedRule] = []
    for decision in _DECISIONS:
        for text in getattr(permissions, decision):
            rules.append(SourcedRule(parse_rule(text), decision, source))
    return rules


class CommandPin(NamedTuple):
    """A project command file as trust sees it: its name, path and content hash."""

    name: str
    path: str
    sha256: str
    grants: str = ""
    """What running it does beyond a prompt (its mode, tools, model, `!` commands),
    shown where trust is asked: the user trusts what they saw."""


ProjectCommands = Callable[[str], Sequence[CommandPin]]
"""A project's command files (blocking: the rule book calls it from a thread)."""


def combined_digest(file: ProjectFile, commands: Sequence[CommandPin]) -> str:
    """What ``kfd trust`` shows and takes back: the config's hash alone, or, when the
    project has commands, one hash over the config's and every command file's."""
    if not commands:
        return file.sha256
    digest = hashlib.sha256(f"{file.path}\0{file.sha256}\n".encode())
    for pin in sorted(commands, key=lambda c: c.path):
        digest.update(f"{pin.path}\0{pin.sha256}\n".encode())
    return digest.hexdigest()


@dataclass(slots=True)
class _ProjectEntry:
    stamp: _Stamp
    file: ProjectFile
    commands: tuple[CommandPin, ...] = ()
    kept: ProjectFile | None = None
    """While ``file`` does not load: the last content of it that did, whose rules apply."""
    narrowed: dict[bool, tuple[list[SourcedRule], Narrowed]] = field(default_factory=dict)
    """By whether the file is trusted: its rules that apply, and the narrowing."""

    @property
    def ruling(self) -> ProjectFile:
        """The content whose rules apply: the file's, or the last good one's while it is broken."""
        return self.kept if self.kept is not None else self.file

    @property
    def asks(self) -> bool:
        """Whether every call asks: the file does not load and nothing of it is kept."""
        return bool(self.file.problem) and self.kept is None

    def applying(self, trusted: bool) -> tuple[list[SourcedRule], Narrowed]:
        cached = self.narrowed.get(trusted)
        if cached is None:
            narrowed = narrow(self.ruling.config, trusted=trusted)
            cached = (configured(narrowed.permissions, "project"), narrowed)
            self.narrowed[trusted] = cached
        return cached


ProjectLoaded = Callable[[str, TrustInfo], None]
"""Told when a project's config was read anew (changed, or read for the first time)."""


class RuleBook:
    """The rules of every source, cached per project."""

    def __init__(
        self,
        permissions: PermissionsConfig,
        store: RuleStore,
        trust: TrustStore,
        *,
        freshness: Freshness | None = None,
        on_project_loaded: ProjectLoaded | None = None,
        commands: ProjectCommands | None = None,
    ) -> None:
        self.set_user(permissions)
        self._builtin = builtin_rules()
        self._store = store
        self._trust = trust
        self._freshness = freshness
        self.on_project_loaded = on_project_loaded
        self._commands = commands
        self._projects: dict[str, _ProjectEntry] = {}
        self._last_good: dict[str, ProjectFile] = {}
        """Each project config's last content that loaded, by path (kept while it is broken)."""
        self._always: dict[str, list[RuleInfo]] = {}
        self._roots: dict[str, str] = {}
        self._guards: dict[tuple[str, str], tuple[tuple[object, ...], ReadGuard]] = {}
        """Read guards by (workspace, tool), with what they were built from."""

    def set_user(self, permissions: PermissionsConfig) -> None:
        """Use the user config's ``[permissions]`` from the next decision on."""
        # One assignment of a tuple: a decision sees the old rules or the new, never a mix.
        self._user_source = (configured(permissions, "user"), permissions.defaults)

    @property
    def trust(self) -> TrustStore:
        """The pins of trusted files."""
        return self._trust

    async def project_of(self, workspace: str) -> str:
        """The project (repository root) of ``workspace``, as memory and rules key it."""
        root = self._roots.get(workspace)
        if root is None:
            root = str(await asyncio.to_thread(project_root, Path(workspace)))
            if len(self._roots) > 1024:
                self._roots.clear()
            self._roots[workspace] = root
        return root

    async def applicable(self, workspace: str, session_rules: Sequence[str] = ()) -> Applicable:
        """Every rule that applies in ``workspace``, highest source first."""
        project = await self.project_of(workspace)
        entry = await self._fresh_entry(project)
        always = await self._always_rules(project)
        rules = [SourcedRule(parse_rule(r.rule), r.decision, "always") for r in always]
        for text in session_rules:
            try:
                rules.append(SourcedRule(parse_rule(text), "allow", "session"))
            except RuleError:
                continue  # a grant (`grant(bash:unsandboxed)`) or an old rule: no rule
        project_rules, narrowed = entry.applying(self._trusted(entry))
        user, user_defaults = self._user_source
        rules += project_rules
        rules += user
        if user_defaults:
            rules += self._builtin
        problems = [_problem(entry)] if entry.asks else []
        return Applicable(rules, project, problems, narrowed.ignored)

    async def project_hooks(self, workspace: str) -> list[HookConfig]:
        """The ``[[hooks]]`` of the project config of ``workspace`` that run: none until
        the user trusts the file's exact content (`kfd.config.narrow`)."""
        entry = await self._fresh_entry(await self.project_of(workspace))
        _, narrowed = entry.applying(self._trusted(entry))
        return narrowed.hooks

    def read_guard(self, workspace: str, tool: str = "read") -> ReadGuard:
        """The read rules that apply in ``workspace`` as a predicate over paths.

        For tools that read many files the model did not name one by one
        (grep, glob): what it names is left out. Built from what the last
        decision in this workspace read (a decision always comes first); on a
        cold cache it reads the project config itself, blocking briefly.
        """
        project = self._roots.get(workspace)
        if project is None:
            project = str(project_root(Path(workspace)))
        entry = self._projects.get(project)
        if entry is None:
            entry, _ = self._entry(project)
        trusted = self._trusted(entry)
        key = (workspace, tool)
        made = self._guards.get(key)
        if made is not None:
            (made_entry, made_user, made_trusted), guard = made
            if made_entry is entry and made_user is self._user_source and made_trusted == trusted:
                return guard
        project_rules, _ = entry.applying(trusted)
        user, user_defaults = self._user_source
        rules = [*project_rules, *user, *(self._builtin if user_defaults else ())]
        guard = ReadGuard(rules, workspace, os.path.expanduser("~"), tool)
        if len(self._guards) > 256:
            self._guards.clear()
        self._guards[key] = ((entry, self._user_source, trusted), guard)
        return guard

    async def _fresh_entry(self, project: str) -> _ProjectEntry:
        freshness = self._freshness

        def look() -> tuple[_ProjectEntry, bool, bool]:
            entry, anew = self._entry(project)
            return entry, anew, freshness is not None and freshness.stale()

        entry, anew, user_stale = await asyncio.to_thread(look)
        if anew and self.on_project_loaded is not None:
            self.on_project_loaded(project, self._view(project, entry))
        if user_stale and freshness is not None:
            await freshness.refresh()
        return entry

    def _entry(self, project: str) -> tuple[_ProjectEntry, bool]:
        """The project's config, read again when the file changed (blocking: in a thread).

        With whether its content is new (read for the first time, or changed).
        """
        file_path = os.path.join(project, PROJECT_CONFIG)
        try:
            info = os.stat(file_path)
            stamp = (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)
        except OSError:
            stamp = (0, 0, 0, 0)
        commands = tuple(self._commands(project)) if self._commands is not None else ()
        cached = self._projects.get(project)
        if cached is not None and cached.stamp == stamp and cached.commands == commands:
            return cached, False
        same_file = cached is not None and cached.stamp == stamp
        file = cached.file if cached is not None and same_file else read_project(project)
        entry = _ProjectEntry(stamp, file, commands, self._keep_good(file))
        if len(self._projects) > 1024:
            self._projects.clear()
        self._projects[project] = entry
        return entry, cached is None or cached.file != entry.file or cached.commands != commands

    def _keep_good(self, file: ProjectFile) -> ProjectFile | None:
        """Remember ``file`` if it loads; if it does not, its last content that did.

        A file that is gone forgets its last content: had it come back broken,
        asking is safer than rules the user had removed.
        """
        if file.problem:
            return self._last_good.get(file.path)
        if not file.exists:
            self._last_good.pop(file.path, None)
            return None
        if len(self._last_good) > 1024:
            self._last_good.clear()  # forgotten: a broken file then asks (fail closed)
        self._last_good[file.path] = file
        return None

    def _trusted(self, entry: _ProjectEntry) -> bool:
        """Whether the content whose rules apply is trusted: pinned at its exact hash.

        For a broken file that is its last good content: trust granted to that
        content goes on with it (and ends when revoked), never to the broken one.
        """
        file = entry.ruling
        return file.exists and not file.problem and self._trust.trusted(file.path, file.sha256)

    def problem(self, project: str) -> str:
        """Why the project config of ``project`` does not load and what kfd does
        meanwhile ("" when it loads, or was not read yet); from what was last read."""
        entry = self._projects.get(project)
        return _problem(entry) if entry is not None and entry.file.problem else ""

    async def project_problem(self, workspace: str) -> tuple[str, str]:
        """The project config of ``workspace`` (read again if it changed): its path,
        and `problem` ("" when it loads)."""
        project = await self.project_of(workspace)
        entry = await self._fresh_entry(project)
        return entry.file.path, _problem(entry) if entry.file.problem else ""

    def _view(self, project: str, entry: _ProjectEntry) -> TrustInfo:
        file = entry.file
        trusted = self._trusted(entry)
        _, narrowed = entry.applying(trusted)
        grants = [] if file.problem else list(narrowed.grants)
        ignored = list(narrowed.ignored)
        commands_trusted = True
        for pin in entry.commands:
            shown = os.path.relpath(pin.path, project)
            does = f": {pin.grants}" if pin.grants else ""
            grants.append(f"command /{pin.name} ({shown}){does}")
            if not self._trust.trusted(pin.path, pin.sha256):
                commands_trusted = False
                ignored.append(f"command /{pin.name} ({shown}): not until you trust it")
        return TrustInfo(
            project=project,
            path=file.path,
            exists=file.exists or bool(entry.commands),
            sha256=combined_digest(file, entry.commands),
            # A broken file is never trusted, whatever its last good content is.
            trusted=((trusted and not file.problem) or not file.exists)
            and commands_trusted
            and (file.exists or bool(entry.commands)),
            pinned=self._trust.pinned(file.path),
            grants=grants,
            ignored=ignored,
            problem=file.problem,
        )

    async def trust_info(self, workspace: str) -> TrustInfo:
        """Whether the project config of ``workspace`` is trusted, and what that changes."""
        project = await self.project_of(workspace)
        return self._view(project, await self._fresh_entry(project))

    async def set_trust(self, workspace: str, sha256: str, *, by: str = "") -> TrustInfo:
        """Trust the project config of ``workspace`` at the content the user saw (``sha256``)."""
        project = await self.project_of(workspace)
        entry = await self._fresh_entry(project)
        file = entry.file
        if not file.exists and not entry.commands:
            raise TrustConflict(f"{file.path} does not exist: there is nothing to trust")
        if file.problem:
            raise TrustConflict(f"{_problem(entry)}; a file that does not load is not trusted")
        now = combined_digest(file, entry.commands)
        if now != sha256:
            what = file.path if not entry.commands else f"{project}/.kfd"
            raise TrustConflict(
                f"{what} changed since it was shown (its sha256 is now "
                f"{now[:12]}…, not {sha256[:12]}…); review it again before trusting it"
            )
        # All or nothing: a file that cannot be pinned (a command file that is a link,
        # or unreadable) stops the trust before any other file is pinned.
        unpinned = [pin.path for pin in entry.commands if not _SHA256.fullmatch(pin.sha256)]
        if unpinned:
            raise TrustConflict(
                f"{unpinned[0]} cannot be trusted (a link, or unreadable): remove it or "
                "make it a plain file; nothing was trusted"
            )
        if file.exists:
            await self._trust.trust(file.path, file.sha256, by)
        for pin in entry.commands:
            await self._trust.trust(pin.path, pin.sha256, by)
        return self._view(project, entry)

    async def revoke_trust(self, workspace: str) -> TrustInfo:
        """Untrust the project config of ``workspace`` (whatever its content)."""
        project = await self.project_of(workspace)
        entry = await self._fresh_entry(project)
        await self._trust.revoke(entry.file.path)
        for pin in entry.commands:
            await self._trust.revoke(pin.path)
        return self._view(project, entry)

    async def _always_rules(self, project: str) -> list[RuleInfo]:
        kept = self._always.get(project)
        if kept is None:
            kept = self._always[project] = await self._store.list(project)
        return kept

    async def keep(self, workspace: str, rule: str, session: str | None) -> RuleInfo:
        """Store an "always" allow rule for the project of ``workspace``."""
        parse_rule(rule)  # raises RuleError: never store what cannot match
        project = await self.project_of(workspace)
        info = await self._store.add(project, rule, session)
        self._always.pop(project, None)
        return info

    async def listing(self, workspace: str | None) -> Listing:
        """Rules for ``kfd rules list``: every source of ``workspace``, or every project's
        "always" rules without one."""
        if workspace is None:
            return Listing(await self._store.list(), "", [], [])
        project = await self.project_of(workspace)
        entry = await self._fresh_entry(project)
        project_rules, narrowed = entry.applying(self._trusted(entry))
        user, user_defaults = self._user_source
        listed = list(await self._always_rules(project))
        for sourced in [*project_rules, *user]:
            listed.append(_info(sourced, project))
        if user_defaults:
            listed += [_info(sourced, "") for sourced in self._builtin]
        problems = [_problem(entry)] if entry.file.problem else []
        return Listing(listed, project, problems, list(narrowed.ignored))

    async def remove(self, rule_id: int) -> RuleInfo | None:
        """Remove an "always" rule by id."""
        removed = await self._store.remove(rule_id)
        if removed is not None:
            self._always.pop(removed.project, None)
        return removed

    async def find(self, workspace: str, rule: str) -> RuleInfo | None:
        """The "always" rule with this exact text in the project of ``workspace``."""
        return await self._store.find(await self.project_of(workspace), rule.strip())


def _problem(entry: _ProjectEntry) -> str:
    if entry.kept is not None:
        return (
            f"{entry.file.problem}; kfd keeps applying the rules of its last content that "
            "loaded until it is fixed"
        )
    return f"{entry.file.problem}; every call asks until it is fixed"


def _info(sourced: SourcedRule, project: str) -> RuleInfo:
    source = sourced.source
    assert source in ("built-in", "user", "project")
    return RuleInfo(
        rule=sourced.rule.text,
        decision=sourced.decision,
        source=source,
        project=project if source == "project" else "",
    )
