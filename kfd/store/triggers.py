"""The file-watch triggers' table: each trigger's last firing and spending.

Kept so that ``kfd watch`` shows the last firing after a restart and a
trigger's budget holds across restarts.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from kfd.store.db import Store

_files_encoder = msgspec.json.Encoder()
_files_decoder = msgspec.json.Decoder(list[str])


class Firing(NamedTuple):
    """What a trigger last did."""

    name: str
    fired: int
    fired_at: float
    files: list[str]
    session: str
    spent_usd: float


class TriggerLog:
    """Reads and writes ``trigger_firings`` through the daemon's store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def all(self) -> dict[str, Firing]:
        rows = await self._store.read(
            lambda db: db.execute(
                "SELECT name, fired, fired_at, files, session, spent_usd FROM trigger_firings"
            ).fetchall()
        )
        return {
            str(row[0]): Firing(
                str(row[0]),
                int(row[1]),
                float(row[2]),
                _files_decoder.decode(row[3]),
                str(row[4]),
                float(row[5]),
            )
            for row in rows
        }

    async def record(self, name: str, fired_at: float, files: list[str], session: str) -> None:
        """Count one firing of ``name``."""
        files_json = _files_encoder.encode(files)
        await self._store.write(
            lambda db: db.execute(
                "INSERT INTO trigger_firings (name, fired, fired_at, files, session)"
                " VALUES (?, 1, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET fired = fired + 1,"
                " fired_at = excluded.fired_at, files = excluded.files, session = excluded.session",
                (name, fired_at, files_json, session),
            ),
            what=f"the firing of trigger {name}",
            retry=True,
        )

    async def spend(self, name: str, cost_usd: float) -> None:
        """Add what a turn of ``name`` cost."""
        await self._store.write(
            lambda db: db.execute(
                "UPDATE trigger_firings SET spent_usd = spent_usd + ? WHERE name = ?",
                (cost_usd, name),
            ),
            what=f"the spending of trigger {name}",
            retry=True,
        )
