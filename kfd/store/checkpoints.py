"""The checkpoint tables: which files each turn changed, from what to what.

Contents are not here: they are blobs in the project's shadow repository
(`kfd.checkpoints.shadow`); a row names them by id. A row is written before
a call changes its file (the state after marked unknown), and completed
once the call ended, so a crash in the middle still leaves what to restore.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from kfd.checkpoints.objects import State
from kfd.checkpoints.plan import Recorded
from kfd.store.db import Store


class TurnRow(NamedTuple):
    """One checkpointed turn."""

    session: str
    turn: int
    root: str
    shadow: str
    started_at: float
    undone_at: float | None


_TURN_COLUMNS = "session, turn, root, shadow, started_at, undone_at"
_FILE_COLUMNS = (
    "turn, path, before_sha, before_mode, before_note, after_sha, after_mode, after_note"
)


def _turn(row: Any) -> TurnRow:
    undone = row[5]
    return TurnRow(
        str(row[0]),
        int(row[1]),
        str(row[2]),
        str(row[3]),
        float(row[4]),
        None if undone is None else float(undone),
    )


def _recorded(row: Any) -> Recorded:
    return Recorded(
        int(row[0]),
        str(row[1]),
        State(str(row[2]), int(row[3]), str(row[4])),
        State(str(row[5]), int(row[6]), str(row[7])),
    )


class CheckpointStore:
    """Reads and writes ``checkpoint_turns`` and ``checkpoint_files``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def record(self, turn: TurnRow, rows: Sequence[Recorded]) -> None:
        """Write ``rows`` of ``turn`` (creating the turn). A path already recorded
        keeps its state before (the turn's first change); its state after is replaced."""
        values = [
            (
                turn.session,
                row.turn,
                row.path,
                row.before.sha,
                row.before.mode,
                row.before.note,
                row.after.sha,
                row.after.mode,
                row.after.note,
            )
            for row in rows
        ]

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT OR IGNORE INTO checkpoint_turns ({_TURN_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?)",
                turn,
            )
            db.executemany(
                f"INSERT INTO checkpoint_files (session, {_FILE_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (session, turn, path) DO UPDATE SET"
                " after_sha = excluded.after_sha, after_mode = excluded.after_mode,"
                " after_note = excluded.after_note",
                values,
            )

        await self._store.write(write, what=f"the checkpoint of turn {turn.turn}")

    async def turns(self, session: str) -> list[TurnRow]:
        """The session's checkpointed turns, oldest first."""
        rows = await self._store.read(
            lambda db: db.execute(
                f"SELECT {_TURN_COLUMNS} FROM checkpoint_turns WHERE session = ? ORDER BY turn",
                (session,),
            ).fetchall(),
            what="checkpointed turns",
        )
        return [_turn(row) for row in rows]

    async def rows(self, session: str, turns: Iterable[int]) -> list[Recorded]:
        """Every path the given turns of ``session`` changed."""
        wanted = sorted(set(turns))
        if not wanted:
            return []
        marks = ", ".join("?" for _ in wanted)
        rows = await self._store.read(
            lambda db: db.execute(
                f"SELECT {_FILE_COLUMNS} FROM checkpoint_files"
                f" WHERE session = ? AND turn IN ({marks}) ORDER BY turn, path",
                (session, *wanted),
            ).fetchall(),
            what="checkpointed files",
        )
        return [_recorded(row) for row in rows]

    async def mark_undone(self, session: str, turns: Iterable[int], at: float) -> None:
        """Note that ``turns`` were undone (later undos skip them)."""
        wanted = sorted(set(turns))
        marks = ", ".join("?" for _ in wanted)
        await self._store.write(
            lambda db: db.execute(
                "UPDATE checkpoint_turns SET undone_at = ?"
                f" WHERE session = ? AND turn IN ({marks})",
                (at, session, *wanted),
            ),
            what="an undo",
        )

    async def prune(self, older_than: float) -> list[TurnRow]:
        """Forget the turns started before ``older_than``; the turns forgotten."""
        rows = await self._store.read(
            lambda db: db.execute(
                f"SELECT {_TURN_COLUMNS} FROM checkpoint_turns WHERE started_at < ?",
                (older_than,),
            ).fetchall(),
            what="old checkpoints",
        )
        gone = [_turn(row) for row in rows]
        await self.forget(gone)
        return gone

    async def oldest(self, limit: int) -> list[TurnRow]:
        """The ``limit`` oldest turns (pruning by size removes these first)."""
        rows = await self._store.read(
            lambda db: db.execute(
                f"SELECT {_TURN_COLUMNS} FROM checkpoint_turns ORDER BY started_at LIMIT ?",
                (limit,),
            ).fetchall(),
            what="the oldest checkpoints",
        )
        return [_turn(row) for row in rows]

    async def forget(self, turns: Sequence[TurnRow]) -> None:
        """Delete these turns and their rows."""
        if not turns:
            return
        keys = [(t.session, t.turn) for t in turns]

        def delete(db: sqlite3.Connection) -> None:
            db.executemany("DELETE FROM checkpoint_files WHERE session = ? AND turn = ?", keys)
            db.executemany("DELETE FROM checkpoint_turns WHERE session = ? AND turn = ?", keys)

        await self._store.write(delete, what="forgotten checkpoints")
