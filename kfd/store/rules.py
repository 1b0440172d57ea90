"""Persisted permission rules: the ``rules`` table ("allow always", per project).

A rule arrives here already checked (`kfd.policy.rules.parse_rule`); this
module only stores, lists and removes it. Every write is durable (synced)
before it returns: a client told "kept" finds the rule after any crash.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from kfd.protocol import RuleInfo
from kfd.store.db import Store

_COLUMNS = "id, project, rule, decision, created_at, session"


def _info(row: Any) -> RuleInfo:
    decision = str(row[3])
    return RuleInfo(
        id=int(row[0]),
        project=str(row[1]),
        rule=str(row[2]),
        decision="deny" if decision == "deny" else "ask" if decision == "ask" else "allow",
        source="always",
        created_at=float(row[4]),
        session=None if row[5] is None else str(row[5]),
    )


class RuleStore:
    """Reads and writes "always" rules through the daemon's store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, project: str, rule: str, session: str | None = None) -> RuleInfo:
        """Keep an allow rule for ``project``; the one kept before if it is already there."""

        def write(db: sqlite3.Connection) -> Any:
            return db.execute(
                f"INSERT INTO rules (project, rule, decision, created_at, session)"
                f" VALUES (?, ?, 'allow', ?, ?)"
                f" ON CONFLICT (project, rule, decision) DO UPDATE SET project = excluded.project"
                f" RETURNING {_COLUMNS}",
                (project, rule, time.time(), session),
            ).fetchone()

        row = await self._store.write(write, what=f"the rule {rule}", durable=True)
        assert row is not None
        return _info(row)

    async def list(self, project: str | None = None) -> list[RuleInfo]:
        """The rules of ``project`` (of every project with None), oldest first."""
        where, params = ("WHERE project = ?", (project,)) if project is not None else ("", ())
        rows = await self._store.read(
            lambda db: db.execute(
                f"SELECT {_COLUMNS} FROM rules {where} ORDER BY project, id", params
            ).fetchall()
        )
        return [_info(row) for row in rows]

    async def remove(self, rule_id: int) -> RuleInfo | None:
        """Delete a rule by id; the rule deleted, or None if there was none."""
        row = await self._store.write(
            lambda db: db.execute(
                f"DELETE FROM rules WHERE id = ? RETURNING {_COLUMNS}", (rule_id,)
            ).fetchone(),
            what=f"removing rule {rule_id}",
            durable=True,
        )
        return _info(row) if row is not None else None

    async def find(self, project: str, rule: str) -> RuleInfo | None:
        """The rule with this text in ``project``, if kept."""
        row = await self._store.read(
            lambda db: db.execute(
                f"SELECT {_COLUMNS} FROM rules WHERE project = ? AND rule = ?", (project, rule)
            ).fetchone()
        )
        return _info(row) if row is not None else None
