"""Numbered schema migrations, run in order at start.

``PRAGMA user_version`` holds the number of the last migration applied. A
migration is appended, never edited once released: a database written by any
earlier kfd opens in every later one.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: sessions, the event log, the transcript, full tool outputs.
    """
    CREATE TABLE sessions (
        id          TEXT PRIMARY KEY,
        cwd         TEXT NOT NULL,
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL,
        archived    INTEGER NOT NULL DEFAULT 0,
        info        BLOB NOT NULL          -- protocol.SessionInfo as JSON
    );
    CREATE INDEX sessions_by_activity ON sessions (updated_at DESC);
    CREATE INDEX sessions_by_cwd ON sessions (cwd, updated_at DESC);

    -- The source of truth: every durable event, in seq order per session.
    CREATE TABLE events (
        session     TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        type        TEXT NOT NULL,
        ts          REAL NOT NULL,
        body        BLOB NOT NULL,         -- the event exactly as published
        PRIMARY KEY (session, seq)
    ) WITHOUT ROWID;

    -- The transcript the model reads, kept beside the log for fast resume.
    CREATE TABLE messages (
        session     TEXT NOT NULL,
        idx         INTEGER NOT NULL,
        seq         INTEGER NOT NULL,      -- the event that added it
        body        BLOB NOT NULL,         -- transcript.Message as JSON
        PRIMARY KEY (session, idx)
    ) WITHOUT ROWID;

    -- Full tool outputs; the transcript holds the capped version.
    CREATE TABLE tool_outputs (
        session     TEXT NOT NULL,
        call_id     TEXT NOT NULL,
        output      TEXT NOT NULL,
        PRIMARY KEY (session, call_id)
    ) WITHOUT ROWID;
    """,
    # Numbers reserved so features built side by side land in a fixed order;
    # a reserved slot that is still empty is a no-op.
    # 2: the cost ledger (model gateway).
    "SELECT 1;",
    # 3: persisted permission rules.
    "SELECT 1;",
    # 4: memory and tasks.
    "SELECT 1;",
    # 5: file-watch triggers.
    "SELECT 1;",
]
