"""Where rules come from: the I/O around the pure engine.

Sources, lowest to highest: the built-in defaults (`kfd.policy.defaults`),
the user config's ``[permissions]`` (read at daemon start), the project's
``.kfd/config.toml`` (at the repository root; read again whenever it
changes), the session's "allow for this session" rules, and the project's
"always" rules from the store. A project config that does not load is a
problem the gate turns into "ask" for every call, never into silence.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from kfd.agent.instructions import project_root
from kfd.config import PROJECT_CONFIG, PermissionsConfig, load_project
from kfd.errors import ConfigError
from kfd.policy.defaults import builtin_rules
from kfd.policy.rules import (
    Decision,
    RuleError,
    RuleSource,
    SourcedRule,
    parse_rule,
)
from kfd.protocol import RuleInfo
from kfd.store.rules import RuleStore

__all__ = ["Applicable", "RuleBook", "configured"]

_DECISIONS: tuple[Decision, ...] = ("deny", "ask", "allow")


class Applicable(NamedTuple):
    """The rules that apply in a workspace, highest source first."""

    rules: list[SourcedRule]
    project: str
    problems: list[str]


def configured(permissions: PermissionsConfig, source: RuleSource) -> list[SourcedRule]:
    """The rules of one ``[permissions]`` table (already checked when it loaded)."""
    rules: list[SourcedRule] = []
    for decision in _DECISIONS:
        for text in getattr(permissions, decision):
            rules.append(SourcedRule(parse_rule(text), decision, source))
    return rules


@dataclass(slots=True)
class _ProjectEntry:
    stamp: tuple[int, int, int]
    rules: list[SourcedRule] = field(default_factory=list)
    defaults: bool = True
    problem: str = ""


class RuleBook:
    """The rules of every source, cached per project."""

    def __init__(self, permissions: PermissionsConfig, store: RuleStore) -> None:
        self._user = configured(permissions, "user")
        self._user_defaults = permissions.defaults
        self._builtin = builtin_rules()
        self._store = store
        self._projects: dict[str, _ProjectEntry] = {}
        self._always: dict[str, list[RuleInfo]] = {}
        self._roots: dict[str, str] = {}

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
        entry = await asyncio.to_thread(self._project_config, project)
        always = await self._always_rules(project)
        rules = [SourcedRule(parse_rule(r.rule), r.decision, "always") for r in always]
        for text in session_rules:
            try:
                rules.append(SourcedRule(parse_rule(text), "allow", "session"))
            except RuleError:
                continue  # a grant (`grant(bash:unsandboxed)`) or an old rule: no rule
        rules += entry.rules
        rules += self._user
        if self._user_defaults and entry.defaults:
            rules += self._builtin
        problems = [entry.problem] if entry.problem else []
        return Applicable(rules, project, problems)

    def _project_config(self, project: str) -> _ProjectEntry:
        """The project's rules, read again when the file changed (blocking: in a thread)."""
        path = os.path.join(project, PROJECT_CONFIG)
        try:
            info = os.stat(path)
            stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        except OSError:
            stamp = (0, 0, 0)
        cached = self._projects.get(project)
        if cached is not None and cached.stamp == stamp:
            return cached
        try:
            loaded = load_project(Path(project))
        except ConfigError as exc:
            entry = _ProjectEntry(stamp, problem=f"{exc}; fix it to end the asking")
        else:
            permissions = loaded.permissions
            entry = _ProjectEntry(stamp, configured(permissions, "project"), permissions.defaults)
        self._projects[project] = entry
        return entry

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

    async def listing(self, workspace: str | None) -> tuple[list[RuleInfo], str, list[str]]:
        """Rules for ``kfd rules list``: every source of ``workspace``, or every project's
        "always" rules without one."""
        if workspace is None:
            return await self._store.list(), "", []
        project = await self.project_of(workspace)
        entry = await asyncio.to_thread(self._project_config, project)
        listed = list(await self._always_rules(project))
        for sourced in [*entry.rules, *self._user]:
            listed.append(_info(sourced, project))
        if self._user_defaults and entry.defaults:
            listed += [_info(sourced, "") for sourced in self._builtin]
        return listed, project, [entry.problem] if entry.problem else []

    async def remove(self, rule_id: int) -> RuleInfo | None:
        """Remove an "always" rule by id."""
        removed = await self._store.remove(rule_id)
        if removed is not None:
            self._always.pop(removed.project, None)
        return removed

    async def find(self, workspace: str, rule: str) -> RuleInfo | None:
        """The "always" rule with this exact text in the project of ``workspace``."""
        return await self._store.find(await self.project_of(workspace), rule.strip())


def _info(sourced: SourcedRule, project: str) -> RuleInfo:
    source = sourced.source
    assert source in ("built-in", "user", "project")
    return RuleInfo(
        rule=sourced.rule.text,
        decision=sourced.decision,
        source=source,
        project=project if source == "project" else "",
    )
