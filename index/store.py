"""SQLite (the source of truth) plus a FAISS index that is only a cache of it.

SQLite holds articles, passages, embeddings (by hash of the embedded text, so unchanged
text is never embedded twice) and the model that built them. The FAISS file is saved
atomically with the SQLite generation it reflects; on open a stale or broken file is
rebuilt from SQLite without re-embedding.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import hashlib
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import faiss
import numpy as np
from tqdm import tqdm

from index import chunking
from index.articles import Article, article_problem
from index.articles import article_id as stable_article_id
from index.chunking import Passage, passage_embedding_text, quote_spans, split_into_passages
from index.faiss_cache import (
    SNAPSHOT_NAME,
    CacheError,
    FaissCache,
    Loaded,
    absent_from,
    index_for,
    new_index,
    remove_ids,
    remove_stale_temp_files,
    resized,
    search_params,
    stored_ids,
)
from index.lexical import FILL_FTS, FTS_SCHEMA, TermCounts, lexical_search

log = logging.getLogger(__name__)

DB_NAME = "newsbot.sqlite3"
FAISS_NAME = SNAPSHOT_NAME
LOCK_NAME = "write.lock"
SCHEMA_VERSION = 6
BATCH_ARTICLES = 32
# Passages whose sentence vectors `sentence_vectors` keeps in memory (~9 KB each: ~45 MB).
SENTENCE_CACHE = 5_000
# What cut the quotable sentences recorded with each passage (`passages.sentences`): the
# chunker's own code. After a change to it the recorded lists are ignored (and cleared at
# the next write) until a reindex: sentences are then found from the text, as before.
SENTENCE_SPLIT = hashlib.sha256(Path(chunking.__file__).read_bytes()).hexdigest()[:16]
# Lead passages this similar (cosine) belong to one story: the same dispatch from another
# source or republished. Set high on purpose: merging two stories would hide an alert.
STORY_SIMILARITY = 0.95
STORY_DAYS = 3

_SCHEMA = """
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


class StoreError(RuntimeError):
    """A problem with the index on disk that the operator must act on."""


class ModelMismatchError(StoreError):
    """The index was built by another embedding model; vectors of two models can't mix."""


class StoreRetired(StoreError):
    """A reindex swapped a new store in: writes must go to it, not to this one."""


class DatabaseUnavailable(StoreError):
    """The database in NEWSBOT_DATABASE_URL cannot be reached (down, wrong URL, refused)."""


class DiskFullError(StoreError):
    """The disk (or the quota) holding the index is full: nothing of the write was kept."""


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


class SecondaryEncoder(Protocol):
    """A second embedding model (no prompts) whose passage vectors live beside e5's."""

    model_id: str
    dim: int

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


class PassageEncoder(Protocol):
    """What the store needs from an embedder."""

    model_id: str
    dim: int
    max_tokens: int

    def count_tokens(self, text: str) -> int: ...

    def embed_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray: ...


@dataclass(frozen=True)
class StoredPassage:
    """A passage as retrieved, with the article it belongs to."""

    id: int
    article: Article
    ordinal: int
    heading: str
    text: str
    start: int
    end: int
    story_id: str = ""


@dataclass
class IngestReport:
    """What one ingest changed."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    passages: int = 0
    embedded: int = 0
    article_ids: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # one line per article not indexed


@dataclass(frozen=True)
class StoreStats:
    articles: int
    passages: int
    sources: int
    model: str | None
    last_update: str | None
    index_bytes: int
    first_date: str | None
    last_date: str | None


@dataclass
class _SecondaryState:
    """A second model's index as this process holds it, and whether its files are in step."""

    loaded: Loaded
    persisted: bool


def _secondary_name(encoder: SecondaryEncoder) -> str:
    return "secondary-" + hashlib.sha256(encoder.model_id.encode()).hexdigest()[:12]


def text_key(digest: str) -> int:
    """A passage text's id in the second model's index: the first 60 bits of its hash."""
    return int(digest[:15], 16)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def vector_blob(vectors: np.ndarray) -> bytes:
    """e5 vectors as the `embeddings` table keeps them: float16, half the bytes of float32
    (a cosine moves by under 1e-3; bench/vectors.py measures the effect)."""
    return np.ascontiguousarray(vectors, dtype=np.float16).tobytes()


def blob_vectors(blob: bytes, dim: int) -> np.ndarray:
    """float32 rows (dim wide) of `embeddings` blobs (one or several joined)."""
    return np.frombuffer(blob, dtype=np.float16).astype(np.float32).reshape(-1, dim)


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


def sentence_digests(listed: bytes) -> list[str]:
    """The text hashes (hex) of a `passages.sentences` list: 32-byte sha256 digests."""
    return [listed[i : i + 32].hex() for i in range(0, len(listed), 32)]


def _joined_vectors(listed: bytes, vectors: Mapping[str, np.ndarray]) -> bytes:
    """The `sentence_vectors` row of a passage: its sentences' vectors (by the hashes of its
    `sentences` list), float16, one after another."""
    return b"".join(vector_blob(vectors[h]) for h in sentence_digests(listed))


def stored_precision(vectors: np.ndarray) -> np.ndarray:
    """Vectors as they read back from the table, so that what a write puts in FAISS is what a
    rebuild from SQLite gives."""
    return np.asarray(vectors, dtype=np.float16).astype(np.float32)


Chunked = list[tuple[Article, list[Passage], list[str]]]


def chunk_articles(
    articles: Sequence[Article], encoder: PassageEncoder, embed_quotes: bool
) -> tuple[Chunked, list[str], dict[tuple[str, int], bytes]]:
    """Each article's passages and their embedding texts; the quotable sentences to embed;
    each passage's sentence list (by (article id, ordinal)): the concatenated sha256 digests
    of its sentences, so a question reads them without re-cutting the article. The same
    for both backends."""
    chunked: Chunked = []
    quotes: list[str] = []
    sentence_lists: dict[tuple[str, int], bytes] = {}
    for article in articles:
        passages = split_into_passages(article, encoder.count_tokens, encoder.max_tokens)
        texts = [passage_embedding_text(p.heading, p.text) for p in passages]
        chunked.append((article, passages, texts))
        if embed_quotes:
            for p in passages:
                said = [article.text[a:b] for a, b in quote_spans(article.text, p.start, p.end)]
                quotes += said
                sentence_lists[(article.id, p.ordinal)] = b"".join(
                    hashlib.sha256(q.encode("utf-8")).digest() for q in said
                )
    return chunked, quotes, sentence_lists


def body_hash(text: str) -> str:
    """The same body whatever its case, spacing or punctuation marks."""
    return text_hash(" ".join(re.findall(r"\w+", text.lower())))


def close_in_time(a: str | None, b: str | None, days: int = STORY_DAYS) -> bool:
    """Published within `days` of each other, as two reports of one story are; a missing or
    month-only date can't be told apart, so it passes."""
    if not a or not b or len(a) < 10 or len(b) < 10:
        return True
    try:
        delta = datetime.date.fromisoformat(a[:10]) - datetime.date.fromisoformat(b[:10])
    except ValueError:
        return True
    return abs(delta.days) <= days


class StoreBase:
    """What both index backends do alike: which articles an ingest stores, the embedding
    cache and the sentence vectors, over the backend's reads below."""

    dim: int
    model_id: str

    def _init_sentence_cache(self) -> None:
        self._sentence_cache: dict[int, np.ndarray | None] = {}
        self._sentence_generation = -1
        self._sentence_lock = threading.Lock()

    # --- what the backend reads ----------------------------------------------------------

    @property
    def generation(self) -> int:
        """Bumped by every write: in-memory caches are keyed by it."""
        raise NotImplementedError

    def passages(self, ids: Sequence[int]) -> dict[int, StoredPassage]:
        raise NotImplementedError

    def _stored_embeddings(self, hashes: Sequence[str]) -> dict[str, bytes]:
        """The cached vectors (float16 blobs) of these text hashes."""
        raise NotImplementedError

    def _stored_sentence_vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Each passage's sentence vectors from its one stored row, for the passages that
        have one cut by today's chunker."""
        raise NotImplementedError

    def _recorded_sentences(self, ids: Sequence[int]) -> dict[int, list[str]]:
        """The text hashes of each passage's quotable sentences recorded at ingest by
        today's chunker; passages without such a list are left out."""
        raise NotImplementedError

    # --- shared ----------------------------------------------------------------------------

    def _accepted(
        self, articles: Sequence[Article], encoder: PassageEncoder
    ) -> tuple[IngestReport, list[Article]]:
        """What an ingest will store: each article once, those article_problem rejects left
        out (named in the report); an encoder of another model is refused outright."""
        if encoder.model_id != self.model_id:
            raise ModelMismatchError(
                f"this index uses {self.model_id!r}, not {encoder.model_id!r}: run reindex"
            )
        report = IngestReport()
        unique = []
        for article in {a.id: a for a in articles}.values():
            problem = article_problem(article)
            if problem is None:
                unique.append(article)
            else:
                report.rejected.append(f"{article.url or article.title[:80]!r}: {problem}")
        return report, unique

    def _embed_missing(
        self, texts: list[str], encoder: PassageEncoder, embed: bool = True
    ) -> tuple[dict[str, np.ndarray], int]:
        """Vectors of these texts by hash (and how many were embedded now): from the cache,
        the others embedded (unless not `embed`: then they are left out)."""
        wanted = {text_hash(t): t for t in texts}
        found = {
            h: blob_vectors(blob, self.dim)[0]
            for h, blob in self._stored_embeddings(list(wanted)).items()
        }
        missing = [h for h in wanted if h not in found]
        if not missing or not embed:
            return found, 0
        matrix = encoder.embed_passages([wanted[h] for h in missing])
        if matrix.shape != (len(missing), self.dim):
            raise StoreError(f"embedder returned {matrix.shape}, expected {self.dim}-d")
        found.update(zip(missing, stored_precision(matrix), strict=True))
        return found, len(missing)

    def _forget_incomplete_sentences(self) -> None:
        """New vectors were cached: they may be the sentences a passage was remembered as
        lacking (an index cut by an older sentence splitter, whose quotes are embedded
        when first shown), so those passages are read again."""
        with self._sentence_lock:
            self._sentence_cache = {
                pid: v for pid, v in self._sentence_cache.items() if v is not None
            }

    def sentence_vectors(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """The stored vectors of each passage's quotable sentences (embedded at ingest), one
        row per sentence, by passage id; a passage with a sentence never embedded is left
        out. Nothing is embedded here. Read from the passage's one row, else from its
        recorded sentences' cached vectors, else from sentences cut from its text; kept in
        memory (up to SENTENCE_CACHE passages) until the next write, or, for a passage left
        out, until new vectors are cached."""
        ids = list(ids)
        generation = self.generation
        with self._sentence_lock:
            if self._sentence_generation != generation:
                self._sentence_cache.clear()
                self._sentence_generation = generation
            cache = self._sentence_cache
            known = {pid: cache[pid] for pid in ids if pid in cache}
        asked = [pid for pid in ids if pid not in known]
        stored = self._stored_sentence_vectors(asked) if asked else {}
        wanted = self._recorded_sentences([p for p in asked if p not in stored]) if asked else {}
        rest = [p for p in asked if p not in stored and p not in wanted]
        for pid, passage in self.passages(rest).items():  # lists not recorded: cut them here
            text = passage.article.text
            spans = quote_spans(text, passage.start, passage.end)
            wanted[pid] = [text_hash(text[a:b]) for a, b in spans]
        fresh: dict[int, np.ndarray | None] = dict(stored)
        if wanted:
            found = self._stored_embeddings(list({h for hs in wanted.values() for h in hs}))
            for pid, hs in wanted.items():
                complete = hs and all(h in found for h in hs)
                fresh[pid] = (
                    blob_vectors(b"".join(found[h] for h in hs), self.dim) if complete else None
                )
        if fresh:
            known.update(fresh)
            with self._sentence_lock:
                if len(self._sentence_cache) + len(fresh) > SENTENCE_CACHE:
                    self._sentence_cache.clear()
                self._sentence_cache.update(fresh)
        return {pid: vectors for pid, vectors in known.items() if vectors is not None}


class Store(StoreBase):
    """One index directory: the SQLite database and the FAISS cache beside it."""

    def __init__(
        self,
        directory: Path,
        model_id: str,
        dim: int,
        embed_quotes: bool = True,
        lock_path: Path | None = None,
    ) -> None:
        self.directory = Path(directory)
        # Embed every quotable sentence at ingest, so answering a question embeds only the
        # question (the answer step scores sentences from this cache).
        self.embed_quotes = embed_quotes
        self.directory.mkdir(parents=True, exist_ok=True)
        self.model_id = model_id
        self.dim = dim
        # The writers' flock. A data directory's store uses one beside the folder (not in
        # it), so a writer waiting while a reindex swaps folders waits on the same lock.
        self.lock_path = lock_path or self.directory / LOCK_NAME
        self._lock = threading.RLock()  # guards the in-memory FAISS index only
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._secondary: dict[str, _SecondaryState] = {}  # second models' indexes, by id
        self._secondary_lock = threading.RLock()
        self._init_sentence_cache()
        self._term_counts = TermCounts()  # words' passage counts, for the BM25 row budget
        self.read_only = False  # set when a full disk leaves only a read-only view
        self._migrate()
        self._check_model()
        # Read what a question needs of articles through that index (not the rows) where it
        # exists: a store on a full disk may be served read-only before it could be made.
        self._articles_meta = (
            "INDEXED BY articles_meta"
            if self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'articles_meta'"
            ).fetchone()
            else ""
        )
        self._inode = (self.directory / DB_NAME).stat().st_ino
        remove_stale_temp_files(self.directory)
        self._cache = FaissCache(self.directory, dim)
        self._on_disk: Loaded | None = None  # where this process's view of the files stops
        self.index = new_index(dim)
        self._loaded_generation = -1
        self._load_faiss(locked=False)

    # --- opening -------------------------------------------------------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        """One connection per thread: WAL lets readers go on while a writer commits."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            path = self.directory / DB_NAME
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
                conn = sqlite3.connect(
                    f"file:{path}?immutable=1", uri=True, check_same_thread=False
                )
                conn.isolation_level = None
                conn.row_factory = sqlite3.Row
                self.read_only = True
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _migrate(self) -> None:
        with disk_errors(self.directory):
            self._db.executescript(_SCHEMA)
            version = self._meta("schema_version")
            if version is not None and int(version) > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.directory} was written by a newer newsbot (schema {version}); upgrade"
                )
            if version == "1":  # v2: stories (near-duplicate grouping)
                with self._transaction():
                    self._db.execute("ALTER TABLE articles ADD COLUMN story_id TEXT")
                    self._db.execute("ALTER TABLE articles ADD COLUMN body_hash TEXT")
                    self._db.execute("UPDATE articles SET story_id = id")
            self._db.execute("CREATE INDEX IF NOT EXISTS articles_body ON articles(body_hash)")
            # v6: what a question or a filter reads of an article besides its text, in an
            # index of its own: an article row is mostly text (overflow pages to walk).
            self._db.execute(
                "CREATE INDEX IF NOT EXISTS articles_meta ON articles(id, lang, date, source)"
            )
            # v3: full-text index of passages (kept in step by triggers); filled for older
            # stores.
            self._db.executescript(FTS_SCHEMA)
            if self._empty("passages_fts") and not self._empty("passages"):
                with self._transaction():
                    self._db.execute(FILL_FTS)
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(passages)")}
            if "sentences" not in columns:  # v5: each passage's quotable sentences recorded
                self._db.execute("ALTER TABLE passages ADD COLUMN sentences BLOB")
            if version != str(SCHEMA_VERSION):  # opening writes nothing once migrated
                self._halve_embeddings()  # v4: e5 vectors kept as float16
                self._fill_sentence_vectors()  # v6: one row of sentence vectors a passage
                self._set_meta("schema_version", str(SCHEMA_VERSION))

    def _halve_embeddings(self) -> None:
        """Rewrite the float32 rows of `embeddings` (schema < 4) as float16, in one
        transaction. The freed pages are reused by later writes (VACUUM returns them). The
        generation moves on, so the FAISS files (float32) are rebuilt from the new rows."""
        dim = int(self._meta("dim") or self.dim)  # the stored model's width, not the new one
        last = 0
        with self._transaction():
            while True:
                rows = self._db.execute(
                    "SELECT rowid, vector FROM embeddings WHERE rowid > ? AND length(vector) = ? "
                    "ORDER BY rowid LIMIT 5000",
                    (last, 4 * dim),
                ).fetchall()
                if not rows:
                    break
                self._db.executemany(
                    "UPDATE embeddings SET vector = ? WHERE rowid = ?",
                    [(vector_blob(np.frombuffer(v, dtype=np.float32)), r) for r, v in rows],
                )
                last = rows[-1][0]
            if last:
                self._set_meta("generation", str(self.generation + 1))

    def _fill_sentence_vectors(self) -> None:
        """Write the `sentence_vectors` row of every passage whose sentence list was recorded
        by today's chunker and whose sentences are all embedded (schema < 6), a few thousand
        passages a transaction: the rows are derived, so a migration cut short leaves a valid
        store (the passages left read their sentences from `embeddings`, as before)."""
        if self._meta("sentence_split") != SENTENCE_SPLIT:
            return
        last = filled = 0
        while True:
            rows = self._db.execute(
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
            found = self._stored_embeddings(list({h for _, hs in listed for h in hs}))
            complete = [  # float16 blobs, joined as they are
                (pid, b"".join(found[h] for h in hs))
                for pid, hs in listed
                if all(h in found for h in hs)
            ]
            with self._transaction():
                self._db.executemany(
                    "INSERT OR IGNORE INTO sentence_vectors (passage_id, vectors) VALUES (?, ?)",
                    complete,
                )
            filled += len(complete)
            if filled and filled % 100_000 < len(complete):
                log.info("sentence vectors gathered for %d passages so far", filled)
        if filled:
            log.info("sentence vectors gathered for %d passages (schema 6)", filled)

    def _check_model(self) -> None:
        stored = self._meta("model_id")
        if stored is None:
            with disk_errors(self.directory):
                self._set_meta("model_id", self.model_id)
                self._set_meta("dim", str(self.dim))
        elif stored != self.model_id or int(self._meta("dim") or 0) != self.dim:
            self.close()
            raise ModelMismatchError(
                f"The index in {self.directory} was built with the embedding model {stored!r}, "
                f"but the configured model is {self.model_id!r}. Vectors of different models "
                "cannot be mixed: run `newsbot reindex` to rebuild the index with the new model "
                "(or set NEWSBOT_MODEL and NEWSBOT_EMBEDDER back: since 2026-12-03 the default "
                "embedder is onnx-int8, and an index built before with torch says so here)."
            )

    def _load_faiss(self, locked: bool) -> None:
        """Bring the in-memory FAISS index to SQLite's generation: read only the log records
        written since it was last read, else the whole cache, else rebuild it from SQLite.

        A writer commits SQLite first and appends to the FAISS log after; a reader that
        looks in between finds the files one write behind. It then keeps serving what it
        has and looks again at its next question, rather than rebuilding the whole index
        itself: it rebuilds only when no writer holds the lock (a writer was killed between
        the two, or the disk was full) or when it is the writer (`locked`)."""
        generation, count = self._generation_and_count()
        if self._on_disk is not None and self._catch_up(generation, count):
            return
        loaded: Loaded | None = None
        try:
            loaded = self._cache.load()
        except FileNotFoundError:
            if count:
                log.warning("FAISS cache missing in %s; rebuilding from SQLite", self.directory)
        except (CacheError, OSError) as exc:
            log.warning("FAISS cache in %s unreadable (%s); rebuilding", self.directory, exc)
        if loaded is not None:
            fresh = loaded.generation == generation and loaded.index.ntotal == count
            if fresh and loaded.index.d == self.dim:
                with self._lock:
                    self.index, self._loaded_generation = loaded.index, generation
                    self._on_disk = loaded
                return
        with self._lock_file() as handle:
            if not locked and not _try_flock(handle, fcntl.LOCK_SH):
                # A writer is between its SQLite commit and its FAISS write.
                if loaded is not None and loaded.generation > self._loaded_generation:
                    with self._lock:
                        self.index, self._loaded_generation = loaded.index, loaded.generation
                        self._on_disk = loaded
                elif self._loaded_generation < 0:  # nothing to serve yet: build it anyway
                    self._rebuild_faiss()
                return
            if loaded is not None:
                log.warning(
                    "FAISS cache in %s is stale (%d vectors, generation %s; SQLite has %d, %s); "
                    "rebuilding from SQLite",
                    self.directory,
                    loaded.index.ntotal,
                    loaded.generation,
                    count,
                    generation,
                )
            self._rebuild_faiss()

    def _catch_up(self, generation: int, count: int) -> bool:
        """Apply the log records other processes appended since this one last read; True
        when that brought the index to SQLite's generation."""
        on_disk = self._on_disk
        assert on_disk is not None
        with self._lock:
            if on_disk.index is not self.index or not self._cache.catch_up(on_disk):
                self._on_disk = None
                return False
            self._loaded_generation = on_disk.generation
            return on_disk.generation == generation and self.index.ntotal == count

    def _rebuild_faiss(self) -> None:
        index, generation = self._build_faiss()
        with self._lock:
            self.index, self._loaded_generation = index, generation
            self._on_disk = None
        try:
            self._cache.save(index, generation)
            self._on_disk = self._cache_position(index, generation)
        except OSError as exc:  # a full disk: the index still serves from memory
            log.warning("could not save the FAISS cache in %s: %s", self.directory, exc)

    def _cache_position(self, index: faiss.Index, generation: int) -> Loaded | None:
        """Where the files stand right after this process wrote them (under the lock)."""
        try:
            return self._cache.position(index, generation)
        except OSError:
            return None

    def _generation_and_count(self) -> tuple[int, int]:
        return self.generation, self._count("passages")

    def _build_faiss(self) -> tuple[faiss.Index, int]:
        """The FAISS index of SQLite's passages, and the generation it reflects (read in
        one snapshot, so a write committed meanwhile is in neither or both). Approximate
        (IVF) from faiss_cache.ANN_MIN_VECTORS passages on."""
        self._db.execute("BEGIN")
        try:
            generation = self.generation
            rows = self._db.execute(
                "SELECT p.id, e.vector FROM passages p JOIN embeddings e USING (text_hash) "
                "ORDER BY p.id"
            ).fetchall()
        finally:
            self._db.execute("COMMIT")
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        vectors = blob_vectors(b"".join(r[1] for r in rows), self.dim)
        return index_for(ids, vectors, self.dim), generation

    # --- metadata ------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @property
    def generation(self) -> int:
        """Bumped by every write; the FAISS file records the generation it reflects."""
        return int(self._meta("generation") or 0)

    def _empty(self, table: str) -> bool:
        """Whether the table has no row (without counting them all: opening a big store
        must not read its whole full-text index)."""
        return self._db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is None

    def _count(self, table: str) -> int:
        return int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with immediate_transaction(self._db):
            yield

    @contextmanager
    def _lock_file(self, path: Path | None = None) -> Iterator[int]:
        fd = os.open(path or self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            yield fd
        finally:
            os.close(fd)  # closing the descriptor releases its flock

    @contextmanager
    def writer(self) -> Iterator[None]:
        """One writer at a time, across threads and processes (an flock on `lock_path`).
        Raises StoreRetired when a reindex has swapped a new store in meanwhile."""
        with self._write_lock, self._lock_file() as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            if self.retired:
                raise StoreRetired(f"{self.directory} was replaced by a reindex; reopen it")
            self.refresh(locked=True)
            yield

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the writers' lock without writing (a reindex swapping stores)."""
        with self._write_lock, self._lock_file() as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    @property
    def retired(self) -> bool:
        """Whether a reindex replaced this store: the folder now holds another database
        (or this one was marked retired before the swap)."""
        try:
            inode = (self.directory / DB_NAME).stat().st_ino
        except FileNotFoundError:  # the two renames of a swap: not swapped yet
            return self._meta("retired") == "1"
        return inode != self._inode or self._meta("retired") == "1"

    def retire(self) -> None:
        """Mark this store replaced (under `exclusive`, right before a swap), so every
        process that still has it open sends its next write to the new one."""
        with disk_errors(self.directory):
            self._set_meta("retired", "1")

    def refresh(self, locked: bool = False) -> bool:
        """Reload the FAISS cache when another process wrote since we loaded it."""
        with self._lock:
            if self._loaded_generation == self.generation:
                return False
            before = self._loaded_generation
            self._load_faiss(locked)
            return self._loaded_generation != before

    # --- writing -------------------------------------------------------------------------

    def add_articles(
        self,
        articles: Sequence[Article],
        encoder: PassageEncoder,
        progress: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> IngestReport:
        """Chunk, embed (only text never embedded before) and store articles, committing in
        batches; a failure leaves every earlier batch committed and the index consistent."""
        report, unique = self._accepted(articles, encoder)
        bar = tqdm(total=len(unique), unit="article", disable=not progress, leave=False)
        with self.writer(), bar, disk_errors(self.directory):
            for start in range(0, len(unique), BATCH_ARTICLES):
                batch = unique[start : start + BATCH_ARTICLES]
                self._add_batch(batch, encoder, report)
                bar.update(len(batch))
                if on_progress:
                    on_progress(min(start + BATCH_ARTICLES, len(unique)), len(unique))
        return report

    def _add_batch(
        self,
        batch: Sequence[Article],
        encoder: PassageEncoder,
        report: IngestReport,
    ) -> None:
        known = {
            row[0]: row[1]
            for row in self._db.execute(
                f"SELECT id, content_hash FROM articles WHERE id IN ({','.join('?' * len(batch))})",
                [a.id for a in batch],
            )
        }
        changed = [a for a in batch if known.get(a.id) != a.content_hash]
        report.unchanged += len(batch) - len(changed)
        if not changed:
            return
        chunked, quotes, sentence_lists = chunk_articles(changed, encoder, self.embed_quotes)
        vectors, embedded = self._embed_missing(
            [t for _, _, texts in chunked for t in texts] + quotes, encoder
        )
        now = time.time()
        removed: list[int] = []
        added_ids: list[int] = []
        added_vectors: list[np.ndarray] = []
        stories = self._assign_stories(
            [(a, vectors[text_hash(t[0])] if t else None) for a, _, t in chunked], known
        )
        first_seen = {
            r[0]: float(r[1])
            for r in self._db.execute(
                f"SELECT id, added_at FROM articles WHERE id IN ({','.join('?' * len(known))})",
                list(known),
            )
        }
        with self._transaction():
            if sentence_lists and self._meta("sentence_split") != SENTENCE_SPLIT:
                # Lists cut by another chunker: forgotten, so none is read with today's.
                self._db.execute("UPDATE passages SET sentences = NULL")
                self._db.execute("DELETE FROM sentence_vectors")
                self._set_meta("sentence_split", SENTENCE_SPLIT)
            for article, passages, texts in chunked:
                removed += [
                    r[0]
                    for r in self._db.execute(
                        "SELECT id FROM passages WHERE article_id = ?", (article.id,)
                    )
                ]
                self._db.execute("DELETE FROM passages WHERE article_id = ?", (article.id,))
                self._db.execute(
                    "INSERT OR REPLACE INTO articles (id, title, text, date, source, url, lang, "
                    "summary_only, content_hash, added_at, story_id, body_hash) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        article.id,
                        article.title,
                        article.text,
                        article.date,
                        article.source,
                        article.url,
                        article.lang,
                        int(article.summary_only),
                        article.content_hash,
                        first_seen.get(article.id, now),
                        stories[article.id],
                        body_hash(article.text),
                    ),
                )
                for passage, embed_text in zip(passages, texts, strict=True):
                    digest = text_hash(embed_text)
                    cursor = self._db.execute(
                        'INSERT INTO passages (article_id, ordinal, heading, text, start, "end", '
                        "text_hash, sentences) VALUES (?,?,?,?,?,?,?,?)",
                        (
                            article.id,
                            passage.ordinal,
                            passage.heading,
                            passage.text,
                            passage.start,
                            passage.end,
                            digest,
                            sentence_lists.get((article.id, passage.ordinal)),
                        ),
                    )
                    pid = int(cursor.lastrowid or 0)
                    listed = sentence_lists.get((article.id, passage.ordinal))
                    if listed:
                        self._db.execute(
                            "INSERT INTO sentence_vectors (passage_id, vectors) VALUES (?, ?)",
                            (pid, _joined_vectors(listed, vectors)),
                        )
                    added_ids.append(pid)
                    added_vectors.append(vectors[digest])
                if article.id in known:
                    report.updated += 1
                else:
                    report.added += 1
                report.passages += len(passages)
                report.article_ids.append(article.id)
            self._db.executemany(
                "INSERT OR IGNORE INTO embeddings (text_hash, vector) VALUES (?, ?)",
                [(h, vector_blob(v)) for h, v in vectors.items()],
            )
            generation = self._next_generation(now)
        report.embedded += embedded
        self._apply_to_faiss(removed, added_ids, added_vectors, generation)

    def find_article(self, ref: str) -> Article | None:
        """The article an admin means by `ref`: its id, or its link (compared canonically)."""
        ref = ref.strip()
        if not ref:
            return None
        found = self.article(ref)
        if found is None and ref.startswith(("http://", "https://")):
            found = self.article(stable_article_id(ref, "", "", None))
            if found is None:
                row = self._db.execute("SELECT id FROM articles WHERE url = ?", (ref,)).fetchone()
                found = self.article(row[0]) if row else None
        return found

    def remove_articles(self, ids: Sequence[str]) -> int:
        """Delete articles and their passages from the index (their vectors stay cached, so
        adding them back costs nothing). Returns how many were removed."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        with self.writer(), disk_errors(self.directory):
            present = [
                r[0]
                for r in self._db.execute(f"SELECT id FROM articles WHERE id IN ({marks})", ids)
            ]
            if not present:
                return 0
            marks = ",".join("?" * len(present))
            removed = [
                int(r[0])
                for r in self._db.execute(
                    f"SELECT id FROM passages WHERE article_id IN ({marks})", present
                )
            ]
            with self._transaction():
                self._db.execute(f"DELETE FROM passages WHERE article_id IN ({marks})", present)
                self._db.execute(f"DELETE FROM articles WHERE id IN ({marks})", present)
                generation = self._next_generation(time.time())
            self._apply_to_faiss(removed, [], [], generation)
        return len(present)

    def articles_older_than(self, date: str, added_before: float) -> list[str]:
        """Ids of articles published before `date` (ISO; a month-precision date counts as
        its month's start), or undated and first indexed before `added_before`."""
        return [
            r[0]
            for r in self._db.execute(
                "SELECT id FROM articles WHERE (date IS NOT NULL AND date != '' AND date < ?) "
                "OR ((date IS NULL OR date = '') AND added_at < ?)",
                (date, added_before),
            )
        ]

    def _assign_stories(
        self, leads: Sequence[tuple[Article, np.ndarray | None]], known: dict[str, str]
    ) -> dict[str, str]:
        """The story each article belongs to: an updated article keeps its story; a new one
        joins the story of an article with the same body, or whose lead passage is a near
        duplicate of its own (same story from another source, or republished with a new
        URL); otherwise it starts its own."""
        assigned: dict[str, str] = {}
        batch_leads: list[tuple[np.ndarray, str, str | None]] = []
        for article, lead in leads:
            story = None
            if article.id in known:
                row = self._db.execute(
                    "SELECT story_id FROM articles WHERE id = ?", (article.id,)
                ).fetchone()
                story = row[0] if row else None
            if story is None:
                row = self._db.execute(
                    "SELECT story_id FROM articles WHERE body_hash = ? AND id != ? LIMIT 1",
                    (body_hash(article.text), article.id),
                ).fetchone()
                story = row[0] if row else None
            if story is None and lead is not None:
                story = self._near_duplicate_story(article, lead, batch_leads)
            assigned[article.id] = story or article.id
            if lead is not None:
                batch_leads.append((lead, assigned[article.id], article.date))
        return assigned

    def _near_duplicate_story(
        self,
        article: Article,
        lead: np.ndarray,
        batch_leads: list[tuple[np.ndarray, str, str | None]],
    ) -> str | None:
        for vector, story, date in batch_leads:
            if float(vector @ lead) >= STORY_SIMILARITY and close_in_time(date, article.date):
                return story
        with self._lock:
            if self.index.ntotal == 0:
                return None
            scores, ids = self.index.search(lead.reshape(1, -1).astype(np.float32), 3)
        for score, pid in zip(scores[0], ids[0], strict=True):
            if pid < 0 or score < STORY_SIMILARITY:
                continue
            row = self._db.execute(
                "SELECT a.id, a.story_id, a.date FROM passages p JOIN articles a "
                "ON a.id = p.article_id WHERE p.id = ? AND p.ordinal = 0",
                (int(pid),),
            ).fetchone()
            if row and row[0] != article.id and close_in_time(row[2], article.date):
                return str(row[1] or row[0])
        return None

    def _stored_embeddings(self, hashes: Sequence[str]) -> dict[str, bytes]:
        """The e5 vectors (float16 blobs, see `blob_vectors`) SQLite holds for these hashes."""
        return dict(
            self._rows_in("SELECT text_hash, vector FROM embeddings WHERE text_hash", hashes)
        )

    def _rows_in(self, select: str, keys: Sequence[object]) -> Iterator[Any]:
        """The rows of `select` + " IN (keys)", asked 500 keys at a time (SQLite's bound on
        a statement's parameters)."""
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            yield from self._db.execute(f"{select} IN ({','.join('?' * len(chunk))})", chunk)

    def _next_generation(self, now: float) -> int:
        """Record a write (inside its transaction): the new generation, and when."""
        generation = self.generation + 1
        self._set_meta("generation", str(generation))
        self._set_meta("last_update", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)))
        return generation

    def _apply_to_faiss(
        self, removed: list[int], ids: list[int], vectors: list[np.ndarray], generation: int
    ) -> None:
        """Apply a committed write to the in-memory index and append it to the FAISS log
        (the cost of the write, not of the index; see index/faiss_cache.py)."""
        matrix = np.vstack(vectors).astype(np.float32) if ids else None
        with self._lock:
            if removed:
                remove_ids(self.index, np.array(removed, dtype=np.int64))
            if matrix is not None:
                self.index.add_with_ids(matrix, np.array(ids, dtype=np.int64))
            self._loaded_generation = generation
            try:
                replacement = resized(self.index, self.dim)
                if replacement is not None:  # grown past exact search: IVF, a new snapshot
                    self.index = replacement
                    self._cache.save(self.index, generation)
                else:
                    self._cache.append(self.index, generation, removed, ids, matrix)
                self._on_disk = self._cache_position(self.index, generation)
            except OSError as exc:
                # SQLite holds the write; the file is rebuilt from it by the next reader.
                self._on_disk = None
                log.warning("could not save the FAISS cache in %s: %s", self.directory, exc)

    def embed_texts(self, texts: Sequence[str], encoder: PassageEncoder) -> np.ndarray:
        """Passage-side vectors for arbitrary texts (quote candidates), through the same
        embedding cache, so asking about the same passages twice embeds nothing."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors, embedded = self._embed_missing(list(texts), encoder)
        if embedded and self._cache_embeddings(
            "INSERT OR IGNORE INTO embeddings (text_hash, vector) VALUES (?, ?)",
            [(h, vector_blob(v)) for h, v in vectors.items()],
        ):
            self._forget_incomplete_sentences()
        return np.vstack([vectors[text_hash(t)] for t in texts])

    def _cache_embeddings(self, sql: str, rows: list[tuple[object, ...]]) -> bool:
        """Keep vectors computed while answering; on a full disk answer anyway, uncached."""
        try:
            with self._transaction():
                self._db.executemany(sql, rows)
        except sqlite3.OperationalError as exc:
            if not disk_full(exc):
                raise
            log.warning("not caching %d vectors in %s: %s", len(rows), self.directory, exc)
            return False
        return True

    def embedding_rows(self) -> Iterator[tuple[str, bytes]]:
        """Every cached e5 vector (text hash, float16 blob): what another backend is seeded
        with so that moving an index embeds nothing."""
        yield from self._db.execute("SELECT text_hash, vector FROM embeddings")

    def secondary_embedding_rows(self, model_id: str) -> Iterator[tuple[str, bytes]]:
        """Every cached vector of the second model `model_id` (text hash, blob)."""
        yield from self._db.execute(
            "SELECT text_hash, vector FROM secondary_embeddings WHERE model_id = ?", (model_id,)
        )

    @property
    def location(self) -> str:
        return str(self.directory)

    def copy_embeddings_from(self, other: Store) -> int:
        """Seed this store's embedding cache from another built by the same model."""
        if other.model_id != self.model_id:
            return 0
        rows = other._db.execute("SELECT text_hash, vector FROM embeddings").fetchall()
        with disk_errors(self.directory), self._transaction():
            self._db.executemany(
                "INSERT OR IGNORE INTO embeddings (text_hash, vector) VALUES (?, ?)",
                [(r[0], r[1]) for r in rows],
            )
        return len(rows)

    # --- reading -------------------------------------------------------------------------

    def search_vectors(
        self, query: np.ndarray, k: int, among: Sequence[int] | None = None, exact: bool = False
    ) -> list[list[tuple[int, float]]]:
        """Top-k (passage id, cosine) for each query vector, only among these passage ids
        when given (an exact search restricted by a FAISS id selector). `exact`: every
        vector compared even when the index is approximate (to measure its recall)."""
        # `selector` must outlive the search: SWIG's params.sel does not hold it.
        selector = None
        if among is not None:
            selector = faiss.IDSelectorBatch(np.asarray(among, dtype=np.int64))
        with self._lock:
            if self.index.ntotal == 0 or k <= 0:
                return [[] for _ in range(len(query))]
            params = search_params(self.index, selector, exact)
            query = np.ascontiguousarray(query, dtype=np.float32)
            scores, ids = self.index.search(query, k, params=params)
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]

    def lexical_search(
        self, question: str, k: int, among: Sequence[int] = ()
    ) -> list[tuple[int, float]]:
        """Top-k (passage id, BM25 score) from the full-text index, within its row budget
        (`among`: the passages scored when every word of the question is over it)."""
        return lexical_search(
            self._db, question, k, self._term_counts, self.generation, among=among
        )

    def passage_languages(self, ids: Sequence[int]) -> dict[int, str | None]:
        """The language of each passage's article, by passage id."""
        if not ids:
            return {}
        return {
            int(r[0]): r[1]
            for r in self._db.execute(
                f"SELECT p.id, a.lang FROM passages p JOIN articles a {self._articles_meta} "
                f"ON a.id = p.article_id WHERE p.id IN ({','.join('?' * len(ids))})",
                list(ids),
            )
        }

    def passage_ids_matching(
        self, since: str | None, until: str | None, sources: Sequence[str]
    ) -> list[int]:
        """Passages of articles dated within [since, until] (ISO prefixes, compared at
        their own precision) and from one of `sources` (any case; none: every source)."""
        where, args = [], []
        if since:
            where.append("a.date IS NOT NULL AND substr(a.date, 1, ?) >= ?")
            args += [len(since), since]
        if until:
            where.append("a.date IS NOT NULL AND substr(a.date, 1, ?) <= ?")
            args += [len(until), until]
        if sources:
            where.append(f"lower(a.source) IN ({','.join('?' * len(sources))})")
            args += [s.lower() for s in sources]
        sql = "SELECT p.id FROM passages p JOIN articles a ON a.id = p.article_id"
        if self._articles_meta:  # the articles' index, then each one's passages: no row read
            sql = (
                "SELECT p.id FROM articles a INDEXED BY articles_meta CROSS JOIN passages p "
                "INDEXED BY passages_article ON p.article_id = a.id"
            )
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [int(r[0]) for r in self._db.execute(sql + " ORDER BY p.id", args)]

    def passage_vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored e5 vectors of these passages (from the FAISS cache), in order. A
        passage another process wrote since the cache was loaded (the lexical search, which
        reads SQLite, may find it) is read from SQLite; one removed meanwhile gets zeros."""
        with self._lock:
            if not ids:
                return np.zeros((0, self.dim), dtype=np.float32)
            try:
                return np.vstack([self.index.reconstruct(int(i)) for i in ids]).astype(np.float32)
            except RuntimeError:  # a key the cache lacks
                stored = dict(
                    self._rows_in(
                        "SELECT p.id, e.vector FROM passages p JOIN embeddings e "
                        "USING (text_hash) WHERE p.id",
                        [int(i) for i in ids],
                    )
                )
        missing = bytes(2 * self.dim)  # float16 zeros
        return blob_vectors(b"".join(stored.get(int(i), missing) for i in ids), self.dim)

    def secondary_vectors(self, encoder: SecondaryEncoder) -> faiss.Index:
        """The second model's FAISS index of every passage text (ids: `text_key`), brought
        to SQLite's generation. It lives beside the e5 index as its own snapshot + log
        (faiss_cache), so opening reads no passage text and no SQLite vector; after a write
        only the texts added are read (from `secondary_embeddings`, or embedded when never
        seen) and those gone removed. Approximate (IVF, 8-bit codes) from
        faiss_cache.ANN_MIN_VECTORS texts on."""
        with self._secondary_lock:
            state = self._secondary.get(encoder.model_id)
            if state is not None and state.loaded.generation == self.generation:
                return state.loaded.index
            cache = FaissCache(self.directory, encoder.dim, name=_secondary_name(encoder))
            with self._lock_file(self.directory / f"{cache.snapshot.name}.lock") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)  # one process writes its files at a time
                if state is None or not state.persisted or not cache.catch_up(state.loaded):
                    state = self._load_secondary(cache)
                    self._secondary[encoder.model_id] = state
                self._update_secondary(encoder, cache, state)
            return state.loaded.index

    def _load_secondary(self, cache: FaissCache) -> _SecondaryState:
        """Its files, else an empty index (to be filled and saved whole)."""
        try:
            return _SecondaryState(cache.load(), True)
        except FileNotFoundError:
            pass
        except (CacheError, OSError) as exc:
            log.warning("%s unreadable (%s); rebuilding it", cache.snapshot, exc)
        return _SecondaryState(Loaded(new_index(cache.dim), -1, (0, 0), 0), False)

    def _update_secondary(
        self, encoder: SecondaryEncoder, cache: FaissCache, state: _SecondaryState
    ) -> None:
        """Bring the index to SQLite's generation: the passage texts it lacks added, those
        no passage has any more removed; written as one log record."""
        loaded = state.loaded
        self._db.execute("BEGIN")
        try:
            generation = self.generation
            if loaded.generation == generation:
                return
            hashes = [r[0] for r in self._db.execute("SELECT DISTINCT text_hash FROM passages")]
        finally:
            self._db.execute("COMMIT")
        current = np.fromiter((text_key(h) for h in hashes), dtype=np.int64, count=len(hashes))
        held = stored_ids(loaded.index)
        gone = held[absent_from(held, np.sort(current))]
        new = absent_from(current, np.sort(held))
        added = [h for h, keep in zip(hashes, new.tolist(), strict=True) if keep]
        vectors = self._secondary_of(encoder, added)
        if len(gone):
            remove_ids(loaded.index, gone)
        if added:
            loaded.index.add_with_ids(vectors, current[new])
        loaded.generation = generation
        try:
            replacement = resized(loaded.index, encoder.dim, compact=True)
            if replacement is not None or not state.persisted:
                loaded.index = replacement or loaded.index
                cache.save(loaded.index, generation)
            else:
                keys = current[new].tolist()
                cache.append(loaded.index, generation, gone.tolist(), keys, vectors)
            state.loaded = cache.position(loaded.index, generation)
            state.persisted = True
        except OSError as exc:  # a full disk: serve from memory, save it whole next time
            state.persisted = False
            log.warning("could not save %s: %s", cache.snapshot, exc)

    def _secondary_of(self, encoder: SecondaryEncoder, hashes: list[str]) -> np.ndarray:
        """The second model's vectors of these passage texts (by hash), embedding those never
        seen (and keeping them in `secondary_embeddings`)."""
        found: dict[str, bytes] = {}
        texts: dict[str, str] = {}
        for start in range(0, len(hashes), 500):
            chunk = hashes[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                self._db.execute(
                    "SELECT text_hash, vector FROM secondary_embeddings WHERE model_id = ? "
                    f"AND text_hash IN ({marks})",
                    [encoder.model_id, *chunk],
                ).fetchall()
            )
            lacking = [h for h in chunk if h not in found]
            if lacking:
                texts.update(
                    (r[0], passage_embedding_text(r[1], r[2]))
                    for r in self._db.execute(
                        "SELECT text_hash, heading, text FROM passages WHERE text_hash IN "
                        f"({','.join('?' * len(lacking))}) GROUP BY text_hash",
                        lacking,
                    )
                )
        if texts:
            matrix = encoder.embed_texts(list(texts.values())).astype(np.float32)
            # float16 like the e5 rows (half the bytes; rows written before as float32 are
            # read by their length).
            fresh = {h: vector_blob(v) for h, v in zip(texts, matrix, strict=True)}
            self._cache_embeddings(
                "INSERT OR IGNORE INTO secondary_embeddings (model_id, text_hash, vector) "
                "VALUES (?, ?, ?)",
                [(encoder.model_id, h, v) for h, v in fresh.items()],
            )
            found.update(fresh)
        out = np.empty((len(hashes), encoder.dim), dtype=np.float32)
        for row, h in enumerate(hashes):
            blob = found[h]
            kind = np.float16 if len(blob) == 2 * encoder.dim else np.float32
            out[row] = np.frombuffer(blob, dtype=kind)
        return out

    def secondary_search(
        self, encoder: SecondaryEncoder, query: np.ndarray, k: int
    ) -> list[tuple[int, float]]:
        """The passages of the k texts most similar to one query under the second model,
        (passage id, cosine), best first."""
        index = self.secondary_vectors(encoder)
        with self._secondary_lock:
            if index.ntotal == 0:
                return []
            params = search_params(index, None, exact=False)
            scores, keys = index.search(query.reshape(1, -1).astype(np.float32), k, params=params)
        by_key = self._passages_of_keys([int(key) for key in keys[0] if key >= 0])
        return [
            (pid, float(score))
            for key, score in zip(keys[0].tolist(), scores[0].tolist(), strict=True)
            for pid in by_key.get(key, [])
        ]

    def secondary_scores(
        self, encoder: SecondaryEncoder, ids: Iterable[int], query: np.ndarray
    ) -> dict[int, float]:
        """The second model's cosine of one query with each of these passages (their
        stored vectors; a passage the index lacks is left out)."""
        index = self.secondary_vectors(encoder)
        ids = list(ids)
        keys = {
            int(r[0]): text_key(r[1])
            for r in self._rows_in("SELECT id, text_hash FROM passages WHERE id", ids)
        }
        scores: dict[int, float] = {}
        with self._secondary_lock:
            for pid, key in keys.items():
                try:
                    scores[pid] = float(index.reconstruct(key) @ query)
                except RuntimeError:  # not in the index (a write since it was updated)
                    continue
        return scores

    def _passages_of_keys(self, keys: list[int]) -> dict[int, list[int]]:
        """Passage ids by text key (several passages may share one text)."""
        found: dict[int, list[int]] = {}
        for key in keys:
            prefix = f"{key:015x}"
            for pid, digest in self._db.execute(
                "SELECT id, text_hash FROM passages WHERE text_hash >= ? AND text_hash < ? "
                "ORDER BY id",
                (prefix, prefix + "g"),
            ):
                if text_key(digest) == key:
                    found.setdefault(key, []).append(int(pid))
        return found

    def _sentences_current(self) -> bool:
        """Whether the recorded sentence lists (and their rows) were cut by today's chunker."""
        return self._meta("sentence_split") == SENTENCE_SPLIT

    def _stored_sentence_vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Each passage's sentence vectors from its `sentence_vectors` row (one row read per
        passage), for the passages that have one and were cut by today's chunker."""
        if not ids or not self._sentences_current():
            return {}
        return {
            int(pid): blob_vectors(blob, self.dim)
            for pid, blob in self._rows_in(
                "SELECT passage_id, vectors FROM sentence_vectors WHERE passage_id", ids
            )
            if blob and len(blob) % (2 * self.dim) == 0
        }

    def _recorded_sentences(self, ids: Sequence[int]) -> dict[int, list[str]]:
        """The text hashes of each passage's quotable sentences, as recorded at ingest by
        today's chunker; passages without such a list are left out."""
        if not ids or not self._sentences_current():
            return {}
        return {
            int(pid): sentence_digests(blob)
            for pid, blob in self._rows_in(
                "SELECT id, sentences FROM passages WHERE sentences IS NOT NULL AND id", ids
            )
        }

    def passages(self, ids: Sequence[int]) -> dict[int, StoredPassage]:
        """Passages with their articles, by id."""
        if not ids:
            return {}
        rows = self._db.execute(
            'SELECT p.id AS pid, p.ordinal, p.heading, p.text AS ptext, p.start, p."end", a.* '
            "FROM passages p JOIN articles a ON a.id = p.article_id "
            f"WHERE p.id IN ({','.join('?' * len(ids))})",
            list(ids),
        ).fetchall()
        return {
            int(r["pid"]): StoredPassage(
                id=int(r["pid"]),
                article=_article_from_row(r),
                ordinal=int(r["ordinal"]),
                heading=r["heading"],
                text=r["ptext"],
                start=int(r["start"]),
                end=int(r["end"]),
                story_id=r["story_id"] or r["id"],
            )
            for r in rows
        }

    def passage_bounds(self) -> dict[str, list[tuple[int, int]]]:
        """Each article's passages as (start, end) offsets in its text, in order: what the
        chunker produced when it was indexed."""
        bounds: dict[str, list[tuple[int, int]]] = {}
        for article_id, start, end in self._db.execute(
            'SELECT article_id, start, "end" FROM passages ORDER BY article_id, ordinal'
        ):
            bounds.setdefault(article_id, []).append((start, end))
        return bounds

    def article_passages(self, article_id: str) -> tuple[list[StoredPassage], np.ndarray]:
        """An article's passages in order, with their vectors (from SQLite, not FAISS)."""
        rows = self._db.execute(
            "SELECT p.id, e.vector FROM passages p JOIN embeddings e USING (text_hash) "
            "WHERE p.article_id = ? ORDER BY p.ordinal",
            (article_id,),
        ).fetchall()
        if not rows:
            return [], np.zeros((0, self.dim), dtype=np.float32)
        by_id = self.passages([int(r[0]) for r in rows])
        vectors = blob_vectors(b"".join(r[1] for r in rows), self.dim)
        return [by_id[int(r[0])] for r in rows], vectors

    def recent_story_vectors(self, limit: int) -> dict[str, np.ndarray]:
        """Passage vectors of the `limit` most recently indexed stories (first copies)."""
        rows = self._db.execute(
            "SELECT p.article_id, e.vector FROM passages p JOIN embeddings e USING (text_hash) "
            "WHERE p.article_id IN (SELECT id FROM articles WHERE story_id IS NULL OR "
            "story_id = id ORDER BY added_at DESC LIMIT ?) ORDER BY p.article_id, p.ordinal",
            (limit,),
        ).fetchall()
        grouped: dict[str, list[bytes]] = {}
        for article_id, vector in rows:
            grouped.setdefault(article_id, []).append(vector)
        return {a: blob_vectors(b"".join(v), self.dim) for a, v in grouped.items()}

    def stories_added_since(self, since: float) -> dict[str, float]:
        """Stories whose first copy was indexed after `since` (epoch seconds), with when."""
        return {
            r[0]: float(r[1])
            for r in self._db.execute(
                "SELECT id, added_at FROM articles WHERE added_at > ? "
                "AND (story_id IS NULL OR story_id = id) ORDER BY added_at",
                (since,),
            )
        }

    def article_hashes(self) -> dict[str, str]:
        """Every article's content hash, by id: what a reindex compares to find the writes
        made while it was building."""
        return {r[0]: r[1] for r in self._db.execute("SELECT id, content_hash FROM articles")}

    def article_ids(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT id FROM articles")}

    def all_articles(self) -> list[Article]:
        return [
            _article_from_row(r) for r in self._db.execute("SELECT * FROM articles ORDER BY id")
        ]

    def article(self, article_id: str) -> Article | None:
        row = self._db.execute("SELECT * FROM articles WHERE id = ?", (article_id,)).fetchone()
        return None if row is None else _article_from_row(row)

    def stats(self) -> StoreStats:
        row = self._db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT NULLIF(source, '')), MIN(date), MAX(date) "
            "FROM articles"
        ).fetchone()
        return StoreStats(
            articles=int(row[0]),
            passages=self._count("passages"),
            sources=int(row[1]),
            model=self._meta("model_id"),
            last_update=self._meta("last_update"),
            index_bytes=self._cache.bytes_on_disk(),
            first_date=row[2],
            last_date=row[3],
        )

    def sources(self) -> list[str]:
        return [
            r[0]
            for r in self._db.execute(
                "SELECT source FROM articles WHERE source != '' GROUP BY source "
                "ORDER BY COUNT(*) DESC"
            )
        ]

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


def _article_from_row(row: sqlite3.Row) -> Article:
    return Article(
        id=row["id"],
        title=row["title"],
        text=row["text"],
        date=row["date"],
        source=row["source"],
        url=row["url"],
        lang=row["lang"],
        summary_only=bool(row["summary_only"]),
    )


def _try_flock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
