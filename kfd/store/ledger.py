"""The cost ledger: one row per model request, written ahead of the request.

A row is committed (state ``sent``, with the request's input tokens) before
the request's first byte leaves, and completed when the stream ends:
``completed``, ``failed``, or ``interrupted`` with what is known (output
tokens estimated from what arrived). A row a crash left ``sent`` is closed
as ``interrupted`` when the daemon starts again (`Ledger.close_unfinished`).
So the ledger has a row for every request a provider received (and may
bill), whatever crashes.

The store commits events with ``synchronous=NORMAL`` (fast, and safe against a
process crash); money must survive a power cut too, so every ledger write is a
``durable`` write (``synchronous=FULL``), retried while the disk is in
trouble. Totals are never kept: every figure is a sum of rows, computed when
asked.

The table is created by migration 2 and given its states by migration 6
(`kfd.store.migrations`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Literal

import msgspec

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
    "state",
    "estimated",
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
    "interrupted",
    "in_flight",
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
    coalesce(max(ts), 0),
    coalesce(sum(state = 'interrupted'), 0),
    coalesce(sum(state = 'sent'), 0)
"""


class Ledger:
    """The ledger table, read and written through the daemon's store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.path = store.path

    # -- writes ------------------------------------------------------------

    async def record(self, entry: LedgerEntry) -> None:
        """Write ``entry`` (a new row, or the whole of an existing one), durably.

        Waits out disk trouble (retrying) rather than lose a row; cancelling
        the caller stops the waiting, never a transaction half-way.
        """
        marks = ", ".join("?" for _ in _COLUMNS)
        values = tuple(_column_value(entry, column) for column in _COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "id")

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT INTO ledger ({', '.join(_COLUMNS)}) VALUES ({marks})"
                f" ON CONFLICT (id) DO UPDATE SET {updates}",
                values,
            )

        await self._store.write(
            write, what=f"the cost ledger row {entry.id} ({entry.state})", durable=True, retry=True
        )

    async def set_retries(self, ledger_id: str, retries: int) -> None:
        """Count another attempt of a request, before it is sent."""
        await self._store.write(
            lambda db: db.execute(
                "UPDATE ledger SET retries = ? WHERE id = ?", (retries, ledger_id)
            ),
            what=f"the cost ledger row {ledger_id} (retry {retries})",
            durable=True,
            retry=True,
        )

    async def withdraw(self, ledger_id: str) -> None:
        """Delete a row written ahead of a request that never left (cancelled first)."""
        await self._store.write(
            lambda db: db.execute(
                "DELETE FROM ledger WHERE id = ? AND state = 'sent'", (ledger_id,)
            ),
            what=f"withdrawing the cost ledger row {ledger_id}",
            durable=True,
            retry=True,
        )

    async def set_cost(self, ledger_id: str, cost_usd: float, source: CostSource) -> bool:
        """Replace a row's cost (the estimate stays in ``estimate_usd``). False if no row."""

        def write(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "UPDATE ledger SET cost_usd = ?, cost_source = ? WHERE id = ?",
                (cost_usd, source, ledger_id),
            )
            return cursor.rowcount

        changed = await self._store.write(
            write, what=f"the gateway's cost of {ledger_id}", durable=True, retry=True
        )
        return changed > 0

    async def close_unfinished(self, reason: str) -> list[LedgerEntry]:
        """Close every row left ``sent`` (by a crash) as ``interrupted``; the rows closed.

        Their input tokens stand as counted when sent; what the stream brought
        before the crash is unknown, so output tokens stay 0 and the row is
        marked estimated.
        """

        def write(db: sqlite3.Connection) -> list[tuple[object, ...]]:
            rows = db.execute(
                f"UPDATE ledger SET state = 'interrupted', estimated = 1,"
                f" error = CASE WHEN error = '' THEN ? ELSE error END"
                f" WHERE state = 'sent' RETURNING {', '.join(_COLUMNS)}",
                (reason,),
            ).fetchall()
            return [tuple(row) for row in rows]

        rows = await self._store.write(
            write, what="the unfinished cost ledger rows", durable=True, retry=True
        )
        return [_entry(row) for row in rows]

    # -- reads -------------------------------------------------------------

    async def spent(self, *, since: float | None = None, session: str | None = None) -> float:
        """Dollars spent since ``since`` (Unix time), in one session or all."""
        where, params = _where(session, since, None)
        row = await self._store.read(
            lambda db: db.execute(f"SELECT total(cost_usd) FROM ledger {where}", params).fetchone()
        )
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
        row = await self._store.read(
            lambda db: db.execute(f"SELECT {_SUMS} FROM ledger {where}", params).fetchone()
        )
        total = _cost_row("", row) if row else CostRow()
        groups: list[CostRow] = []
        if by is not None:
            key = _GROUP_KEYS[by]
            order = "key" if by == "day" else "7 DESC, key"
            query = (
                f"SELECT {key} AS key, {_SUMS} FROM ledger {where} GROUP BY key ORDER BY {order}"
            )
            rows = await self._store.read(lambda db: db.execute(query, params).fetchall())
            groups = [_cost_row(str(r[0]), r[1:]) for r in rows]
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
        rows = await self._store.read(lambda db: db.execute(query, (*params, limit)).fetchall())
        return [_entry(row) for row in rows]

    async def awaiting_gateway_cost(self, since: float) -> list[LedgerEntry]:
        """Rows since ``since`` whose gateway-logged cost has not replaced the estimate."""
        query = (
            f"SELECT {', '.join(_COLUMNS)} FROM ledger WHERE ts >= ? AND cost_source = 'estimate'"
            " AND gateway_log_id != '' AND error = '' AND state = 'completed' ORDER BY ts"
        )
        rows = await self._store.read(lambda db: db.execute(query, (since,)).fetchall())
        return [_entry(row) for row in rows]


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


def _column_value(entry: LedgerEntry, column: str) -> object:
    value = getattr(entry, column)
    return int(value) if isinstance(value, bool) else value


def _entry(row: Sequence[object]) -> LedgerEntry:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["estimated"] = bool(values["estimated"])
    return msgspec.convert(values, LedgerEntry)
