"""Numbered schema migrations, run in order at start.

``PRAGMA user_version`` holds the number of the last migration applied. A
migration is appended, never edited once released: a database written by any
earlier kfd opens in every later one.
"""

from __future__ import annotations

LEDGER_STATES = """
    ALTER TABLE ledger ADD COLUMN state TEXT NOT NULL DEFAULT 'completed';
        -- sent (written before the first byte) | completed | failed | interrupted
    ALTER TABLE ledger ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0;
        -- 1: the token counts are kfd's estimates (the request did not finish)
    CREATE INDEX ledger_unfinished ON ledger (state) WHERE state = 'sent';
"""
"""Migration 6. Slot 6 was reserved (empty) for a while, so a database can be
past it without these columns; the store adds them then (`Store.open`)."""

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
    # 2: the cost ledger (model gateway): one row per model request.
    """
    CREATE TABLE ledger (
        id                  TEXT PRIMARY KEY,
        session             TEXT NOT NULL,
        turn                INTEGER NOT NULL,
        ts                  REAL NOT NULL,     -- when the request ended (Unix time)
        provider            TEXT NOT NULL,
        model               TEXT NOT NULL,
        input_tokens        INTEGER NOT NULL DEFAULT 0,
        cached_input_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens  INTEGER NOT NULL DEFAULT 0,
        output_tokens       INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens    INTEGER NOT NULL DEFAULT 0,
        cost_usd            REAL NOT NULL DEFAULT 0,
        estimate_usd        REAL NOT NULL DEFAULT 0,   -- kept when the gateway's cost replaces it
        cost_source         TEXT NOT NULL DEFAULT 'estimate',  -- estimate | gateway | unpriced
        latency_ms          REAL,
        ttft_ms             REAL,
        retries             INTEGER NOT NULL DEFAULT 0,
        request_id          TEXT NOT NULL DEFAULT '',
        gateway_log_id      TEXT NOT NULL DEFAULT '',
        cache_status        TEXT NOT NULL DEFAULT '',
        error               TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX ledger_by_time ON ledger (ts);
    CREATE INDEX ledger_by_session ON ledger (session, ts);
    """,
    # 3: persisted permission rules ("allow always" answers, per project).
    """
    CREATE TABLE rules (
        -- AUTOINCREMENT: a removed id is never reused, so removing by an old
        -- id can never remove a newer rule.
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        project     TEXT NOT NULL,         -- the repository root it applies to
        rule        TEXT NOT NULL,         -- tool(specifier), exactly as shown
        decision    TEXT NOT NULL DEFAULT 'allow',
        created_at  REAL NOT NULL,
        session     TEXT,                  -- the session whose approval made it
        UNIQUE (project, rule, decision)
    );
    """,
    # 4: memory: remembered facts, ranked by full-text search (FTS5).
    # (Tasks need no table: they live in the event log, tasks.updated.)
    """
    CREATE TABLE memories (
        -- AUTOINCREMENT: a forgotten id is never reused, so forgetting by an
        -- old id can never delete a newer fact.
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        scope       TEXT NOT NULL,         -- 'project' or 'global'
        project     TEXT NOT NULL DEFAULT '',  -- the repository root, for 'project'
        text        TEXT NOT NULL,         -- secrets already redacted
        created_at  REAL NOT NULL,
        source      TEXT NOT NULL,         -- 'model' (remember tool) or 'user'
        session     TEXT                   -- the session that remembered it
    );
    CREATE INDEX memories_by_project ON memories (project, created_at DESC);
    CREATE VIRTUAL TABLE memories_fts USING fts5(
        text, content='memories', content_rowid='id', tokenize='porter unicode61'
    );
    CREATE TRIGGER memories_added AFTER INSERT ON memories BEGIN
        INSERT INTO memories_fts (rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER memories_deleted AFTER DELETE ON memories BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TRIGGER memories_changed AFTER UPDATE OF text ON memories BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO memories_fts (rowid, text) VALUES (new.id, new.text);
    END;
    """,
    # 5: file-watch triggers: the last firing of each, and what its turns cost.
    """
    CREATE TABLE trigger_firings (
        name        TEXT PRIMARY KEY,      -- the [[triggers]] name
        fired       INTEGER NOT NULL,      -- how many times it fired
        fired_at    REAL NOT NULL,         -- the last firing
        files       BLOB NOT NULL,         -- the files of the last firing, JSON list
        session     TEXT NOT NULL,         -- the session the last firing ran in
        spent_usd   REAL NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    """,
    # 6: the write-ahead ledger: a row exists before a request's first byte.
    # (A database that took this slot while it was still empty gets it from
    # `kfd.store.db` at start: see LEDGER_STATES.)
    LEDGER_STATES,
    # 7: trusted repository files: the content (sha256) of each file the user
    # trusted (`kfd trust`); a file whose content differs is untrusted again.
    """
    CREATE TABLE trusted_files (
        path        TEXT PRIMARY KEY,      -- absolute: <project>/.kfd/config.toml
        sha256      TEXT NOT NULL,         -- the content the user trusted
        trusted_at  REAL NOT NULL,
        by          TEXT NOT NULL DEFAULT ''  -- the frontend that trusted it
    ) WITHOUT ROWID;
    """,
    # 8: checkpoints: per turn, what each file held before the turn changed it
    # and after (blobs in the project's shadow repository; `kfd.checkpoints`).
    """
    CREATE TABLE checkpoint_turns (
        session     TEXT NOT NULL,
        turn        INTEGER NOT NULL,
        root        TEXT NOT NULL,         -- the project root paths are relative to
        shadow      TEXT NOT NULL,         -- the shadow git directory holding the blobs
        started_at  REAL NOT NULL,
        undone_at   REAL,                  -- set when the turn's changes were undone
        PRIMARY KEY (session, turn)
    ) WITHOUT ROWID;
    CREATE INDEX checkpoint_turns_by_time ON checkpoint_turns (started_at);
    CREATE TABLE checkpoint_files (
        session     TEXT NOT NULL,
        turn        INTEGER NOT NULL,
        path        TEXT NOT NULL,         -- relative to the root, with /
        before_sha  TEXT NOT NULL,         -- '' with mode 0: absent; mode 1: not kept
        before_mode INTEGER NOT NULL,
        before_note TEXT NOT NULL DEFAULT '',
        after_sha   TEXT NOT NULL,
        after_mode  INTEGER NOT NULL,
        after_note  TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (session, turn, path)
    ) WITHOUT ROWID;
    """,
]
