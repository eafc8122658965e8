"""The bot's state in a SQLite file: the embedded default, no server.

It lives beside the index (data/state.sqlite3), not in it: a reindex rebuilds the index
folder but must not forget who subscribed to what or which alerts already went out.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bot.state.base import Row, State, pending_migrations
from index.sqlite_schema import disk_errors, immediate_transaction

# Migration N takes the schema from version N-1 to N (PRAGMA user_version). Version 1 is
# the schema files had before versions were counted: IF NOT EXISTS makes it a no-op there.
MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS feeds (
        url TEXT PRIMARY KEY,
        source TEXT,
        lang TEXT,
        added_by INTEGER,
        added_at REAL NOT NULL,
        etag TEXT,
        last_modified TEXT,
        last_polled REAL,
        last_ok REAL,
        last_error TEXT,
        articles INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE IF NOT EXISTS subscriptions (
        id INTEGER PRIMARY KEY,
        chat_id INTEGER NOT NULL,
        chat_type TEXT NOT NULL,
        topic TEXT NOT NULL,
        created_by INTEGER,
        created_at REAL NOT NULL,
        paused INTEGER NOT NULL DEFAULT 0,
        UNIQUE (chat_id, topic)
    );
    CREATE TABLE IF NOT EXISTS alerts_sent (
        chat_id INTEGER NOT NULL,
        story_id TEXT NOT NULL,
        article_id TEXT NOT NULL,
        subscription_id INTEGER,
        score REAL,
        sent_at REAL NOT NULL,
        delivered INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (chat_id, story_id)
    );
    """,
    # 2: each chat's digests (bot/digest.py): its daily time, time zone and language, the
    # last digest posted (the next covers what came after), the day of the last daily one.
    """
    CREATE TABLE IF NOT EXISTS digests (
        chat_id INTEGER PRIMARY KEY,
        chat_type TEXT NOT NULL,
        daily_at TEXT,
        time_zone TEXT NOT NULL DEFAULT 'UTC',
        lang TEXT,
        last_at REAL,
        last_day TEXT
    );
    """,
    # 3: who runs the feed poll and alert round (bot/rounds.py) until when, and which
    # replica's claim an alert is, so a claim left undelivered by a dead replica is taken over.
    """
    CREATE TABLE IF NOT EXISTS job_leases (
        job TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at REAL NOT NULL
    );
    ALTER TABLE alerts_sent ADD COLUMN claimed_by TEXT;
    """,
    # 4: the answers sent, by message: what a reply to one follows up (bot/followup.py).
    """
    CREATE TABLE IF NOT EXISTS answers_sent (
        chat_id INTEGER NOT NULL,
        message_id INTEGER NOT NULL,
        question TEXT NOT NULL,
        article_ids TEXT NOT NULL,
        sent_at REAL NOT NULL,
        PRIMARY KEY (chat_id, message_id)
    );
    CREATE INDEX IF NOT EXISTS answers_sent_at ON answers_sent (sent_at);
    """,
]


class _SqliteTransaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, args: Sequence[object] = ()) -> int:
        return self._db.execute(sql, tuple(args)).rowcount

    def fetch(self, sql: str, args: Sequence[object] = ()) -> list[Row]:
        return [dict(r) for r in self._db.execute(sql, tuple(args)).fetchall()]


class SqliteState(State):
    """One connection, one lock (writes are tiny); WAL, so other processes can read."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._folder = Path(path).parent
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with disk_errors(self._folder):  # a full disk: one sentence, not a traceback
            self._db.execute("PRAGMA busy_timeout=30000")
            if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self._db.execute("PRAGMA journal_mode=WAL")
        self._migrate(str(path))

    def _migrate(self, where: str) -> None:
        with self._transaction():  # BEGIN IMMEDIATE: one process migrates, others wait
            current = self._db.execute("PRAGMA user_version").fetchone()[0]
            for version, script in pending_migrations(current, MIGRATIONS, where):
                for statement in filter(str.strip, script.split(";")):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {version}")

    @contextmanager
    def _transaction(self) -> Iterator[_SqliteTransaction]:
        with self._lock, disk_errors(self._folder), immediate_transaction(self._db):
            yield _SqliteTransaction(self._db)

    def _fetch(self, sql: str, args: Sequence[object] = ()) -> list[Row]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, tuple(args)).fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()
