"""The bot's own state in SQLite: feeds, subscriptions, alerts sent, watermarks.

It lives beside the index (data/state.sqlite3), not in it: a reindex rebuilds the index
folder but must not forget who subscribed to what or which alerts already went out.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from index.store import disk_errors

_SCHEMA = """
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
"""


@dataclass(frozen=True)
class Subscription:
    id: int
    chat_id: int
    chat_type: str
    topic: str
    paused: bool
    created_at: float = 0.0


@dataclass(frozen=True)
class FeedRecord:
    url: str
    source: str | None
    lang: str | None
    etag: str | None
    last_modified: str | None
    last_polled: float | None
    last_ok: float | None
    last_error: str | None
    articles: int


class State:
    """Thread-safe access to the state database (one connection, one lock: writes are tiny)."""

    def __init__(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._folder = Path(path).parent
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with disk_errors(self._folder):  # a full disk: one sentence, not a traceback
            self._db.execute("PRAGMA busy_timeout=30000")
            if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, disk_errors(self._folder):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.OperationalError:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # --- watermarks --------------------------------------------------------------------

    def get(self, key: str, default: str | None = None) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else default

    def put(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # --- subscriptions -----------------------------------------------------------------

    def subscribe(self, chat_id: int, chat_type: str, topic: str, user_id: int | None) -> bool:
        """Add a topic to a chat; False when the chat already follows it. Resumes the chat."""
        with self._tx() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO subscriptions (chat_id, chat_type, topic, created_by, "
                "created_at) VALUES (?, ?, ?, ?, ?)",
                (chat_id, chat_type, topic, user_id, time.time()),
            )
            db.execute("UPDATE subscriptions SET paused = 0 WHERE chat_id = ?", (chat_id,))
            return cursor.rowcount == 1

    def unsubscribe(self, chat_id: int, topic: str | None) -> int:
        """Remove one topic (by text or list number) or, with None, all; returns how many."""
        with self._tx() as db:
            if topic is None:
                return db.execute(
                    "DELETE FROM subscriptions WHERE chat_id = ?", (chat_id,)
                ).rowcount
            if topic.isdigit():
                subs = self.subscriptions(chat_id, _locked=True)
                index = int(topic) - 1
                if not 0 <= index < len(subs):
                    return 0
                return db.execute(
                    "DELETE FROM subscriptions WHERE id = ?", (subs[index].id,)
                ).rowcount
            return db.execute(
                "DELETE FROM subscriptions WHERE chat_id = ? AND lower(topic) = lower(?)",
                (chat_id, topic),
            ).rowcount

    def subscriptions(
        self, chat_id: int | None = None, _locked: bool = False
    ) -> list[Subscription]:
        sql = "SELECT id, chat_id, chat_type, topic, paused, created_at FROM subscriptions"
        args: tuple[object, ...] = ()
        if chat_id is not None:
            sql += " WHERE chat_id = ?"
            args = (chat_id,)
        sql += " ORDER BY id"
        rows = self._db.execute(sql, args).fetchall() if _locked else self._query(sql, args)
        return [
            Subscription(
                r["id"],
                r["chat_id"],
                r["chat_type"],
                r["topic"],
                bool(r["paused"]),
                r["created_at"],
            )
            for r in rows
        ]

    def pause_chat(self, chat_id: int) -> None:
        """The chat blocked or removed the bot: keep its subscriptions but stop sending."""
        with self._tx() as db:
            db.execute("UPDATE subscriptions SET paused = 1 WHERE chat_id = ?", (chat_id,))

    def resume_chat(self, chat_id: int) -> None:
        """The bot is back in the chat (re-added, unblocked): send its alerts again."""
        with self._tx() as db:
            db.execute("UPDATE subscriptions SET paused = 0 WHERE chat_id = ?", (chat_id,))

    def migrate_chat(self, old_id: int, new_id: int) -> int:
        """A group became a supergroup with a new id: its subscriptions and the alerts it
        had move along (the ones the new chat has already win). Returns the subscriptions
        moved; calling it again is harmless."""
        with self._tx() as db:
            moved = db.execute(
                "UPDATE OR IGNORE subscriptions SET chat_id = ?, chat_type = 'supergroup' "
                "WHERE chat_id = ?",
                (new_id, old_id),
            ).rowcount
            db.execute("DELETE FROM subscriptions WHERE chat_id = ?", (old_id,))
            db.execute(
                "UPDATE OR IGNORE alerts_sent SET chat_id = ? WHERE chat_id = ?", (new_id, old_id)
            )
            db.execute("DELETE FROM alerts_sent WHERE chat_id = ?", (old_id,))
            return int(moved)

    # --- alerts ------------------------------------------------------------------------

    def claim_alert(
        self, chat_id: int, story_id: str, article_id: str, subscription_id: int, score: float
    ) -> bool:
        """Record an alert before sending it; False when the chat already had this story.
        Claiming first makes alerts at-most-once, also across crashes and restarts."""
        with self._tx() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO alerts_sent (chat_id, story_id, article_id, "
                "subscription_id, score, sent_at) VALUES (?, ?, ?, ?, ?, ?)",
                (chat_id, story_id, article_id, subscription_id, score, time.time()),
            )
            return cursor.rowcount == 1

    def mark_delivered(self, chat_id: int, story_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE alerts_sent SET delivered = 1 WHERE chat_id = ? AND story_id = ?",
                (chat_id, story_id),
            )

    def alerts(self, chat_id: int | None = None) -> list[sqlite3.Row]:
        if chat_id is None:
            return self._query("SELECT * FROM alerts_sent ORDER BY sent_at")
        return self._query(
            "SELECT * FROM alerts_sent WHERE chat_id = ? ORDER BY sent_at", (chat_id,)
        )

    # --- feeds -------------------------------------------------------------------------

    def add_feed(self, url: str, source: str | None, lang: str | None, user_id: int | None) -> bool:
        with self._tx() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO feeds (url, source, lang, added_by, added_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (url, source, lang, user_id, time.time()),
            )
            return cursor.rowcount == 1

    def feeds(self) -> list[FeedRecord]:
        return [
            FeedRecord(
                r["url"],
                r["source"],
                r["lang"],
                r["etag"],
                r["last_modified"],
                r["last_polled"],
                r["last_ok"],
                r["last_error"],
                r["articles"],
            )
            for r in self._query("SELECT * FROM feeds ORDER BY added_at, url")
        ]

    def record_poll(
        self,
        url: str,
        *,
        etag: str | None,
        last_modified: str | None,
        error: str | None,
        new_articles: int,
    ) -> None:
        now = time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE feeds SET etag = ?, last_modified = ?, last_polled = ?, "
                "last_error = ?, last_ok = CASE WHEN ? IS NULL THEN ? ELSE last_ok END, "
                "articles = articles + ? WHERE url = ?",
                (etag, last_modified, now, error, error, now, new_articles, url),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
