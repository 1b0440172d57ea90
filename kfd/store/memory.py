"""Remembered facts: the ``memories`` table and its full-text index (FTS5).

A fact belongs to one project (its repository root) or to every project
(``global``). Search ranks by BM25 over a Porter-stemmed index, so "tests"
finds "test". Text arrives here already redacted (`kfd.redact`); this module
only stores and finds it.

Everything runs on the store's thread (`Store.read`, `Store.write`): a write
is one transaction, never interleaved with the journal's group commits.
"""

from __future__ import annotations

import re
import sqlite3
import time
from typing import Any, Literal

from kfd.protocol import Memory, MemoryScope
from kfd.store.db import Store

MAX_QUERY_TERMS = 24
MAX_QUERY_CHARS = 10_000
"""Of a long message, the start is query enough (and the rest would cost CPU)."""

_COLUMNS = "m.id, m.scope, m.project, m.text, m.created_at, m.source, m.session"

_WORD = re.compile(r"\w{2,}")

# Words that would match nearly every fact and rank nothing.
_STOP_WORDS_TEXT = """
    a an and any are as at be been but by can could did do does for from had has have how i if
    in into is it its just me my no not of on or our please should so some than that the their
    them then there these they this to up us was we were what when where which who why will
    with would you your yes also about after all am because before being both each few more
    most other over same such too very let lets make use using want need get got
"""
_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


def fts_query(text: str) -> str | None:
    """An FTS5 query matching any significant word of ``text``; None if none.

    Each word is quoted, so nothing in ``text`` is read as FTS syntax
    (``AND``, ``NEAR``, ``*``, column filters): any input is a safe query.
    """
    terms: list[str] = []
    for word in _WORD.findall(text[:MAX_QUERY_CHARS].lower()):
        if word in _STOP_WORDS or word in terms:
            continue
        terms.append(word)
        if len(terms) == MAX_QUERY_TERMS:
            break
    if not terms:
        return None
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def _memory(row: Any) -> Memory:
    return Memory(
        id=int(row[0]),
        scope="global" if row[1] == "global" else "project",
        project=str(row[2]),
        text=str(row[3]),
        created_at=float(row[4]),
        source="model" if row[5] == "model" else "user",
        session=None if row[6] is None else str(row[6]),
    )


class MemoryStore:
    """Reads and writes remembered facts through the daemon's store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(
        self,
        text: str,
        *,
        scope: MemoryScope,
        project: str,
        source: Literal["model", "user"],
        session: str | None = None,
    ) -> tuple[Memory, bool]:
        """Store a fact; (the memory, True) or (the identical one kept before, False)."""
        owner = "" if scope == "global" else project

        def write(db: sqlite3.Connection) -> tuple[Any, bool]:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM memories m WHERE scope = ? AND project = ? AND text = ?",
                (scope, owner, text),
            ).fetchone()
            if row is not None:
                return row, False
            row = db.execute(
                "INSERT INTO memories (scope, project, text, created_at, source, session)"
                f" VALUES (?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS.replace('m.', '')}",
                (scope, owner, text, time.time(), source, session),
            ).fetchone()
            return row, True

        row, added = await self._store.write(write, what="a remembered fact", durable=True)
        assert row is not None
        return _memory(row), added

    async def get(self, memory_id: int) -> Memory | None:
        row = await self._store.read(
            lambda db: db.execute(
                f"SELECT {_COLUMNS} FROM memories m WHERE id = ?", (memory_id,)
            ).fetchone()
        )
        return _memory(row) if row is not None else None

    async def forget(self, memory_id: int) -> Memory | None:
        """Delete a fact; the fact deleted, or None if there was none."""
        row = await self._store.write(
            lambda db: db.execute(
                f"DELETE FROM memories WHERE id = ? RETURNING {_COLUMNS.replace('m.', '')}",
                (memory_id,),
            ).fetchone(),
            what=f"forgetting fact {memory_id}",
            durable=True,
        )
        return _memory(row) if row is not None else None

    async def recent(
        self,
        *,
        project: str | None,
        scope: Literal["project", "global", "all"] = "all",
        limit: int = 100,
    ) -> list[Memory]:
        """Facts, newest first. ``project=None``: of every project."""
        clauses: list[str] = []
        params: list[Any] = []
        if scope != "all":
            clauses.append("scope = ?")
            params.append(scope)
        if project is not None:
            clauses.append("(scope = 'global' OR project = ?)")
            params.append(project)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._store.read(
            lambda db: db.execute(
                f"SELECT {_COLUMNS} FROM memories m {where}"
                " ORDER BY created_at DESC, id DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        )
        return [_memory(row) for row in rows]

    async def search(self, text: str, *, project: str | None, limit: int = 10) -> list[Memory]:
        """Facts relevant to ``text``, best first: of ``project`` and global ones
        (every project's with ``project=None``)."""
        query = fts_query(text)
        if query is None:
            return []
        scope_clause = "" if project is None else "AND (m.scope = 'global' OR m.project = ?)"
        params: tuple[Any, ...] = (query,) if project is None else (query, project)
        rows = await self._store.read(
            lambda db: db.execute(
                f"SELECT {_COLUMNS} FROM memories_fts JOIN memories m ON m.id = memories_fts.rowid"
                f" WHERE memories_fts MATCH ? {scope_clause}"
                " ORDER BY bm25(memories_fts), m.created_at DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        )
        return [_memory(row) for row in rows]
