"""The cost ledger: one row per model request.

The store commits events with ``synchronous=NORMAL`` (fast, and safe against a
process crash); money must survive a power cut too, so every ledger write is a
``durable`` transaction of the store (``synchronous=FULL``). Each row is
committed on its own, before the ``usage`` event that shows it is published.
Totals are never kept: every figure is a sum of rows, computed when asked.

The table is created by migration 2 (`kfd.store.migrations`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Literal

import msgspec

from kfd.errors import StoreError
from kfd.protocol import CostRow, CostSource, LedgerEntry
from kfd.store.db import Store

Grouping = Literal["session", "model", "day"]

_COLUMNS = (
    "id",
    "session",
    "turn",
    "ts",
    "provider",
    "model",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "estimate_usd",
    "cost_source",
    "latency_ms",
    "ttft_ms",
    "retries",
    "request_id",
    "gateway_log_id",
    "cache_status",
    "error",
)

_GROUP_KEYS: dict[Grouping, str] = {
    "session": "session",
    "model": "model",
    "day": "strftime('%Y-%m-%d', ts, 'unixepoch', 'localtime')",
}

_SUM_FIELDS = (
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "confirmed_usd",
    "estimated_usd",
    "unpriced",
    "errors",
    "retries",
    "first_at",
    "last_at",
)
"""The `CostRow` fields ``_SUMS`` computes, in its order."""

_SUMS = """
    count(*),
    coalesce(sum(input_tokens), 0),
    coalesce(sum(cached_input_tokens), 0),
    coalesce(sum(cache_write_tokens), 0),
    coalesce(sum(output_tokens), 0),
    coalesce(sum(reasoning_tokens), 0),
    total(cost_usd),
    total(CASE WHEN cost_source = 'gateway' THEN cost_usd END),
    total(CASE WHEN cost_source = 'estimate' THEN cost_usd END),
    coalesce(sum(cost_source = 'unpriced'), 0),
    coalesce(sum(error != ''), 0),
    coalesce(sum(retries), 0),
    coalesce(min(ts), 0),
    coalesce(max(ts), 0)
"""


class Ledger:
    """The ledger table, read and written through the daemon's store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._db = store.connection  # reads only; writes take a durable transaction
        self.path = store.path

    # -- writes ------------------------------------------------------------

    async def record(self, entry: LedgerEntry) -> None:
        """Commit one row (durably: synchronous=FULL)."""
        marks = ", ".join("?" for _ in _COLUMNS)
        values = tuple(getattr(entry, column) for column in _COLUMNS)
        try:
            async with self._store.transaction(durable=True) as db:
                await db.execute(
                    f"INSERT INTO ledger ({', '.join(_COLUMNS)}) VALUES ({marks})", values
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the cost ledger in {self.path}: {exc}") from exc

    async def set_cost(self, ledger_id: str, cost_usd: float, source: CostSource) -> bool:
        """Replace a row's cost (the estimate stays in ``estimate_usd``). False if no row."""
        try:
            async with self._store.transaction(durable=True) as db:
                cursor = await db.execute(
                    "UPDATE ledger SET cost_usd = ?, cost_source = ? WHERE id = ?",
                    (cost_usd, source, ledger_id),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot update the cost ledger in {self.path}: {exc}") from exc
        return cursor.rowcount > 0

    # -- reads -------------------------------------------------------------

    async def spent(self, *, since: float | None = None, session: str | None = None) -> float:
        """Dollars spent since ``since`` (Unix time), in one session or all."""
        where, params = _where(session, since, None)
        async with self._db.execute(f"SELECT total(cost_usd) FROM ledger {where}", params) as cur:
            row = await cur.fetchone()
        return float(row[0]) if row else 0.0

    async def summary(
        self,
        *,
        session: str | None = None,
        since: float | None = None,
        until: float | None = None,
        by: Grouping | None = None,
    ) -> tuple[CostRow, list[CostRow]]:
        """The total of the matching rows, and their sums per group (largest cost first)."""
        where, params = _where(session, since, until)
        async with self._db.execute(f"SELECT {_SUMS} FROM ledger {where}", params) as cursor:
            row = await cursor.fetchone()
        total = _cost_row("", row) if row else CostRow()
        groups: list[CostRow] = []
        if by is not None:
            key = _GROUP_KEYS[by]
            order = "key" if by == "day" else "7 DESC, key"
            query = (
                f"SELECT {key} AS key, {_SUMS} FROM ledger {where} GROUP BY key ORDER BY {order}"
            )
            async with self._db.execute(query, params) as cursor:
                groups = [_cost_row(str(r[0]), r[1:]) async for r in cursor]
        return total, groups

    async def entries(
        self,
        *,
        session: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[LedgerEntry]:
        """Individual rows, newest first."""
        where, params = _where(session, since, until)
        query = (
            f"SELECT {', '.join(_COLUMNS)} FROM ledger {where} ORDER BY ts DESC, rowid DESC LIMIT ?"
        )
        async with self._db.execute(query, (*params, limit)) as cursor:
            return [
                msgspec.convert(dict(zip(_COLUMNS, row, strict=True)), LedgerEntry)
                async for row in cursor
            ]

    async def awaiting_gateway_cost(self, since: float) -> list[LedgerEntry]:
        """Rows since ``since`` whose gateway-logged cost has not replaced the estimate."""
        query = (
            f"SELECT {', '.join(_COLUMNS)} FROM ledger WHERE ts >= ? AND cost_source = 'estimate'"
            " AND gateway_log_id != '' AND error = '' ORDER BY ts"
        )
        async with self._db.execute(query, (since,)) as cursor:
            return [
                msgspec.convert(dict(zip(_COLUMNS, row, strict=True)), LedgerEntry)
                async for row in cursor
            ]


def _where(
    session: str | None, since: float | None, until: float | None
) -> tuple[str, tuple[object, ...]]:
    clauses: list[str] = []
    params: list[object] = []
    if session is not None:
        clauses.append("session = ?")
        params.append(session)
    if since is not None:
        clauses.append("ts >= ?")
        params.append(since)
    if until is not None:
        clauses.append("ts < ?")
        params.append(until)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), tuple(params)


def _cost_row(key: str, row: Sequence[object]) -> CostRow:
    return msgspec.convert({"key": key, **dict(zip(_SUM_FIELDS, row, strict=True))}, CostRow)
