"""The SQLite index's schema, its migrations, and how its database is opened.

index/store.py reads and writes the tables; this module creates them, brings an older
database up to SCHEMA_VERSION (each step named by the version that brought it), opens a
connection (WAL, or read-only when a full disk leaves no room for it), and turns a full
disk into one DiskFullError. The bot's SQLite state (bot/state/sqlite.py) uses the same
transaction and disk-full helpers.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from index.lexical import FILL_FTS, FTS_SCHEMA
from index.store_base import (
    SENTENCE_SPLIT,
    DiskFullError,
    StoreError,
    sentence_digests,
    vector_blob,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 7
# meta: the highest id a passage was ever given (v7). New passages are numbered past it, so
# an id is never reused: what a reader remembers of a passage by its id (its length in
# tokens, index/lexical.py) cannot go stale when an article's passages are replaced.
PASSAGE_ID_HIGH = "passage_id_high"
# SQLite's page cache a connection keeps, in KiB (its default is 2,000). A question reads a
# few hundred rows by id (its candidates' sentence vectors, languages, texts), each a walk
# down a B-tree: with the default cache the inner pages of a big store's tables and indexes
# do not stay, so each walk reads them again. bench/scale.py, 100k passages, 39 questions:
# read calls a question (median) 1,662 at the default, 1,005 at 16 MiB, 758 at 64 MiB.
CACHE_KIB = 32_768

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    date TEXT,
    source TEXT NOT NULL DEFAULT '',
    url TEXT,
    lang TEXT,
    summary_only INTEGER NOT NULL DEFAULT 0,
    content_hash TEXT NOT NULL,
    added_at REAL NOT NULL,
    story_id TEXT,
    body_hash TEXT
);
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY,
    article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    heading TEXT NOT NULL,
    text TEXT NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    text_hash TEXT NOT NULL,
    sentences BLOB,
    UNIQUE (article_id, ordinal)
);
CREATE INDEX IF NOT EXISTS passages_text_hash ON passages(text_hash);
CREATE INDEX IF NOT EXISTS passages_article ON passages(article_id);
CREATE TABLE IF NOT EXISTS embeddings (text_hash TEXT PRIMARY KEY, vector BLOB NOT NULL);
-- Each passage's quotable sentence vectors in one row (float16, in the order of its
-- `sentences` list): a question reads one row per candidate passage, not one keyed row of
-- `embeddings` per sentence. Derived from `embeddings`, written with the passage.
CREATE TABLE IF NOT EXISTS sentence_vectors (passage_id INTEGER PRIMARY KEY, vectors BLOB NOT NULL);
CREATE TRIGGER IF NOT EXISTS sentence_vectors_delete AFTER DELETE ON passages BEGIN
    DELETE FROM sentence_vectors WHERE passage_id = old.id;
END;
CREATE TABLE IF NOT EXISTS secondary_embeddings (
    model_id TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model_id, text_hash)
);
"""


_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def disk_full(exc: BaseException) -> bool:
    """Whether an error from SQLite or the OS means the disk is full (a database opened
    read-only because the disk was full refuses writes as "readonly")."""
    if isinstance(exc, OSError):
        return exc.errno in _DISK_FULL_ERRNOS
    if isinstance(exc, sqlite3.OperationalError):
        message = str(exc).lower()
        return any(m in message for m in ("disk is full", "disk i/o error", "readonly database"))
    return False


@contextmanager
def disk_errors(directory: Path) -> Iterator[None]:
    """Turn a full disk into one clear DiskFullError (the write was rolled back)."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as exc:
        if not disk_full(exc):
            raise
        raise DiskFullError(
            f"the disk holding {directory} is full or not writable ({exc}); nothing of this "
            "write was kept and the index still serves what it held: free some space and run "
            "it again"
        ) from None


@contextmanager
def immediate_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT on an autocommit connection, rolled back on any error.
    SQLite rolls some errors back itself (a full database mid-statement may end the whole
    transaction): only what is still open is rolled back."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    try:
        db.execute("COMMIT")
    except sqlite3.OperationalError:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def connect(path: Path) -> sqlite3.Connection:
    """An autocommit connection to the database at `path` (WAL, foreign keys on); a
    read-only one when a full disk cannot hold WAL's files."""
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=30000")
    try:
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as exc:
        if not disk_full(exc) or not path.exists() or path.stat().st_size == 0:
            raise
        # WAL needs its -shm file to read, which a full disk cannot hold: read the
        # database as it was last checkpointed, and refuse writes in one sentence.
        log.warning("%s: %s; serving it read-only until there is space", path, exc)
        conn.close()
        conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True, check_same_thread=False)
        conn.isolation_level = None
        conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    return conn


def meta(db: sqlite3.Connection, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def is_empty(db: sqlite3.Connection, table: str) -> bool:
    """Whether the table has no row (without counting them all: opening a big store must
    not read its whole full-text index)."""
    return db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is None


def rows_in(db: sqlite3.Connection, select: str, keys: Sequence[object]) -> Iterator[Any]:
    """The rows of `select` + " IN (keys)", asked 500 keys at a time (SQLite's bound on a
    statement's parameters)."""
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        yield from db.execute(f"{select} IN ({','.join('?' * len(chunk))})", chunk)


def migrate(db: sqlite3.Connection, directory: Path, dim: int) -> None:
    """Create the tables, or bring those of an older newsbot up to SCHEMA_VERSION (`dim`:
    the configured model's width; the caller turns a full disk into DiskFullError)."""
    db.executescript(SCHEMA)
    version = meta(db, "schema_version")
    if version is not None and int(version) > SCHEMA_VERSION:
        raise StoreError(f"{directory} was written by a newer newsbot (schema {version}); upgrade")
    if version == "1":  # v2: stories (near-duplicate grouping)
        with immediate_transaction(db):
            db.execute("ALTER TABLE articles ADD COLUMN story_id TEXT")
            db.execute("ALTER TABLE articles ADD COLUMN body_hash TEXT")
            db.execute("UPDATE articles SET story_id = id")
    db.execute("CREATE INDEX IF NOT EXISTS articles_body ON articles(body_hash)")
    # v6: what a question or a filter reads of an article besides its text, in an index of
    # its own: an article row is mostly text (overflow pages to walk).
    db.execute("CREATE INDEX IF NOT EXISTS articles_meta ON articles(id, lang, date, source)")
    # Each passage's article, by passage id, in an index of its own: a question asks it of
    # ~400 passages (their languages), and a passage row is mostly text, each on a page of
    # its own. 400 random passages of 300k: 14-17 ms of CPU through the rows (pages read
    # from the OS cache), 1.1 ms through this index. Built once (300k passages: 9 s).
    db.execute("CREATE INDEX IF NOT EXISTS passages_article_of ON passages(id, article_id)")
    # v3: full-text index of passages (kept in step by triggers); filled for older stores.
    db.executescript(FTS_SCHEMA)
    if is_empty(db, "passages_fts") and not is_empty(db, "passages"):
        with immediate_transaction(db):
            db.execute(FILL_FTS)
    columns = {r[1] for r in db.execute("PRAGMA table_info(passages)")}
    if "sentences" not in columns:  # v5: each passage's quotable sentences recorded
        db.execute("ALTER TABLE passages ADD COLUMN sentences BLOB")
    if version != str(SCHEMA_VERSION):  # opening writes nothing once migrated
        _halve_embeddings(db, dim)  # v4: e5 vectors kept as float16
        _fill_sentence_vectors(db)  # v6: one row of sentence vectors a passage
        if meta(db, PASSAGE_ID_HIGH) is None:  # v7: passage ids are never reused
            set_meta(db, PASSAGE_ID_HIGH, str(highest_passage_id(db)))
        set_meta(db, "schema_version", str(SCHEMA_VERSION))


def highest_passage_id(db: sqlite3.Connection) -> int:
    """The highest id a passage has or had: the larger of the table's and PASSAGE_ID_HIGH."""
    row = db.execute("SELECT max(id) FROM passages").fetchone()
    return max(int(row[0] or 0), int(meta(db, PASSAGE_ID_HIGH) or 0))


def _halve_embeddings(db: sqlite3.Connection, dim: int) -> None:
    """Rewrite the float32 rows of `embeddings` (schema < 4) as float16, in one
    transaction. The freed pages are reused by later writes (VACUUM returns them). The
    generation moves on, so the FAISS files (float32) are rebuilt from the new rows."""
    dim = int(meta(db, "dim") or dim)  # the stored model's width, not the new one
    last = 0
    with immediate_transaction(db):
        while True:
            rows = db.execute(
                "SELECT rowid, vector FROM embeddings WHERE rowid > ? AND length(vector) = ? "
                "ORDER BY rowid LIMIT 5000",
                (last, 4 * dim),
            ).fetchall()
            if not rows:
                break
            db.executemany(
                "UPDATE embeddings SET vector = ? WHERE rowid = ?",
                [(vector_blob(np.frombuffer(v, dtype=np.float32)), r) for r, v in rows],
            )
            last = rows[-1][0]
        if last:
            set_meta(db, "generation", str(int(meta(db, "generation") or 0) + 1))


def _fill_sentence_vectors(db: sqlite3.Connection) -> None:
    """Write the `sentence_vectors` row of every passage whose sentence list was recorded
    by today's chunker and whose sentences are all embedded (schema < 6), a few thousand
    passages a transaction: the rows are derived, so a migration cut short leaves a valid
    store (the passages left read their sentences from `embeddings`, as before)."""
    if meta(db, "sentence_split") != SENTENCE_SPLIT:
        return
    last = filled = 0
    while True:
        rows = db.execute(
            "SELECT p.id, p.sentences FROM passages p WHERE p.id > ? "
            "AND p.sentences IS NOT NULL AND length(p.sentences) > 0 AND NOT EXISTS "
            "(SELECT 1 FROM sentence_vectors s WHERE s.passage_id = p.id) "
            "ORDER BY p.id LIMIT 2000",
            (last,),
        ).fetchall()
        if not rows:
            break
        last = int(rows[-1][0])
        listed = [(pid, sentence_digests(blob)) for pid, blob in rows]
        found = dict(
            rows_in(
                db,
                "SELECT text_hash, vector FROM embeddings WHERE text_hash",
                list({h for _, hs in listed for h in hs}),
            )
        )
        complete = [  # float16 blobs, joined as they are
            (pid, b"".join(found[h] for h in hs))
            for pid, hs in listed
            if all(h in found for h in hs)
        ]
        with immediate_transaction(db):
            db.executemany(
                "INSERT OR IGNORE INTO sentence_vectors (passage_id, vectors) VALUES (?, ?)",
                complete,
            )
        filled += len(complete)
        if filled and filled % 100_000 < len(complete):
            log.info("sentence vectors gathered for %d passages so far", filled)
    if filled:
        log.info("sentence vectors gathered for %d passages (schema 6)", filled)
