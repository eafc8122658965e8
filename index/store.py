"""The SQLite backend: SQLite is the source of truth, the FAISS index only a cache of it.

`Store` is one index directory. In SQLite it reads and writes the articles, passages, the
embedding caches (by hash of the embedded text, so unchanged text is never embedded
twice; e5's and the second model's), each passage's quotable sentences and their vectors,
stories, the full-text index and the metadata (model, generation); it holds the writers'
lock. Around it:
- index/sqlite_schema.py: the tables, their migrations, opening a connection, full disks;
- index/faiss_index.py: the vector index, `FaissVectors` (the store's `vectors`): the e5
  and second-model FAISS indexes, kept at SQLite's generation, saved as snapshot + log by
  index/faiss_cache.py and rebuilt from SQLite (nothing re-embedded) when stale or broken;
- index/store_base.py: what this backend shares with index/pg_store.py.
`Store` implements `IndexStore` (index/backend.py), handing vector searches to `vectors`.
"""

from __future__ import annotations

import fcntl
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from tqdm import tqdm

from index.articles import Article
from index.articles import article_id as stable_article_id
from index.chunking import passage_embedding_text
from index.faiss_index import FaissVectors, lock_file, text_key
from index.lexical import TermCounts, lexical_search
from index.sqlite_schema import (
    PASSAGE_ID_HIGH,
    connect,
    disk_errors,
    disk_full,
    highest_passage_id,
    immediate_transaction,
    meta,
    migrate,
    rows_in,
    set_meta,
)
from index.store_base import (
    BATCH_ARTICLES,
    SENTENCE_SPLIT,
    STORY_SIMILARITY,
    IngestReport,
    ModelMismatchError,
    PassageEncoder,
    SecondaryEncoder,
    StoreBase,
    StoredPassage,
    StoreRetired,
    StoreStats,
    article_from_row,
    blob_vectors,
    body_hash,
    chunk_articles,
    close_in_time,
    float_vector,
    joined_vectors,
    sentence_digests,
    text_hash,
    vector_blob,
)

log = logging.getLogger(__name__)

DB_NAME = "newsbot.sqlite3"
LOCK_NAME = "write.lock"


class Store(StoreBase):
    """One index directory: the SQLite database (the source of truth, written and read
    here) and, beside it, the FAISS vector index (`self.vectors`), which the vector
    searches are handed to."""

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
        self._lock = threading.RLock()  # guards the list of connections
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._init_sentence_cache()
        self._term_counts = TermCounts()  # words' passage counts, for the BM25 row budget
        self._migrate()
        self._check_model()
        # Read what a question needs of articles and passages through these indexes (not
        # the rows) where they exist.
        self._articles_meta = self._indexed_by("articles_meta")
        self._article_of = self._indexed_by("passages_article_of")
        self._inode = (self.directory / DB_NAME).stat().st_ino
        self.vectors = FaissVectors(self, self.directory, dim, self.lock_path)

    @property
    def index(self) -> faiss.Index:
        """The e5 FAISS index of every passage, as this process holds it."""
        return self.vectors.index

    # --- opening -------------------------------------------------------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        """One connection per thread: WAL lets readers go on while a writer commits."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.directory / DB_NAME)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _migrate(self) -> None:
        with disk_errors(self.directory):
            migrate(self._db, self.directory, self.dim)

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

    # --- metadata ------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        return meta(self._db, key)

    def _set_meta(self, key: str, value: str) -> None:
        set_meta(self._db, key, value)

    @property
    def generation(self) -> int:
        """Bumped by every write; the FAISS file records the generation it reflects."""
        return int(self._meta("generation") or 0)

    def _count(self, table: str) -> int:
        return int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with immediate_transaction(self._db):
            yield

    @contextmanager
    def writer(self) -> Iterator[None]:
        """One writer at a time, across threads and processes (an flock on `lock_path`).
        Raises StoreRetired when a reindex has swapped a new store in meanwhile."""
        with self._write_lock, lock_file(self.lock_path) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            if self.retired:
                raise StoreRetired(f"{self.directory} was replaced by a reindex; reopen it")
            self.refresh(locked=True)
            yield

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the writers' lock without writing (a reindex swapping stores)."""
        with self._write_lock, lock_file(self.lock_path) as handle:
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
        return self.vectors.refresh(locked)

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
        # The batch's articles already indexed: their hash, first-indexed time and story.
        rows = self._db.execute(
            "SELECT id, content_hash, added_at, story_id FROM articles "
            f"WHERE id IN ({','.join('?' * len(batch))})",
            [a.id for a in batch],
        ).fetchall()
        known = {r[0]: r[1] for r in rows}
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
            [(a, vectors[text_hash(t[0])] if t else None) for a, _, t in chunked],
            {r[0]: r[3] for r in rows},
        )
        first_seen = {r[0]: float(r[2]) for r in rows}
        with self._transaction():
            if sentence_lists and self._meta("sentence_split") != SENTENCE_SPLIT:
                # Lists cut by another chunker: forgotten, so none is read with today's.
                self._db.execute("UPDATE passages SET sentences = NULL")
                self._db.execute("DELETE FROM sentence_vectors")
                self._set_meta("sentence_split", SENTENCE_SPLIT)
            # Numbered past every id a passage ever had: never reused (see PASSAGE_ID_HIGH).
            last_id = highest_passage_id(self._db)
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
                    last_id += 1
                    pid = last_id
                    self._db.execute(
                        "INSERT INTO passages (id, article_id, ordinal, heading, text, start, "
                        '"end", text_hash, sentences) VALUES (?,?,?,?,?,?,?,?,?)',
                        (
                            pid,
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
                    listed = sentence_lists.get((article.id, passage.ordinal))
                    if listed:
                        self._db.execute(
                            "INSERT INTO sentence_vectors (passage_id, vectors) VALUES (?, ?)",
                            (pid, joined_vectors(listed, vectors)),
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
            self._set_meta(PASSAGE_ID_HIGH, str(last_id))
            generation = self._next_generation(now)
        report.embedded += embedded
        self.vectors.apply(removed, added_ids, added_vectors, generation)

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
            self.vectors.apply(removed, [], [], generation)
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
        self,
        leads: Sequence[tuple[Article, np.ndarray | None]],
        stored_stories: dict[str, str | None],
    ) -> dict[str, str]:
        """The story each article belongs to: an updated article keeps its story; a new one
        joins the story of an article with the same body, or whose lead passage is a near
        duplicate of its own (same story from another source, or republished with a new
        URL); otherwise it starts its own."""
        assigned: dict[str, str] = {}
        batch_leads: list[tuple[np.ndarray, str, str | None]] = []
        for article, lead in leads:
            story = stored_stories.get(article.id)  # an updated article keeps its story
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
        scores, ids = self.vectors.nearest(lead, 3)
        for score, pid in zip(scores, ids, strict=True):
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
        """The rows of `select` + " IN (keys)", 500 keys a statement."""
        return rows_in(self._db, select, keys)

    def _next_generation(self, now: float) -> int:
        """Record a write (inside its transaction): the new generation, and when."""
        generation = self.generation + 1
        self._set_meta("generation", str(generation))
        self._set_meta("last_update", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)))
        return generation

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
        when given; `exact`: every vector compared even when the index is approximate."""
        return self.vectors.search(query, k, among, exact)

    def lexical_search(
        self, question: str, k: int, among: Sequence[int] = ()
    ) -> list[tuple[int, float]]:
        """Top-k (passage id, BM25 score) from the full-text index, within its row budget
        (`among`: the passages scored when every word of the question is over it)."""
        return lexical_search(
            self._db, question, k, self._term_counts, self.generation, among=among
        )

    def _indexed_by(self, index: str) -> str:
        """ "INDEXED BY index" where the store has it, else nothing (a store on a full disk
        may be served read-only before its indexes could be made)."""
        found = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (index,)
        ).fetchone()
        return f"INDEXED BY {index}" if found else ""

    def passage_languages(self, ids: Sequence[int]) -> dict[int, str | None]:
        """The language of each passage's article, by passage id."""
        if not ids:
            return {}
        return {
            int(r[0]): r[1]
            for r in self._db.execute(
                f"SELECT p.id, a.lang FROM passages p {self._article_of} "
                f"JOIN articles a {self._articles_meta} "
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
        """The stored e5 vectors of these passages (from the FAISS cache, else SQLite), in
        order."""
        return self.vectors.passage_vectors(ids)

    def secondary_vectors(self, encoder: SecondaryEncoder) -> faiss.Index:
        """The second model's FAISS index of every passage text, brought to SQLite's
        generation (texts never seen embedded and kept in `secondary_embeddings`)."""
        return self.vectors.secondary_vectors(encoder)

    def secondary_search(
        self, encoder: SecondaryEncoder, query: np.ndarray, k: int
    ) -> list[tuple[int, float]]:
        """The passages of the k texts most similar to one query under the second model,
        (passage id, cosine), best first."""
        return self.vectors.secondary_search(encoder, query, k)

    def secondary_scores(
        self, encoder: SecondaryEncoder, ids: Iterable[int], query: np.ndarray
    ) -> dict[int, float]:
        """The second model's cosine of one query with each of these passages (a passage
        its index lacks is left out)."""
        return self.vectors.secondary_scores(encoder, ids, query)

    # --- what the vector index reads (faiss_index.VectorSource) --------------------------

    def _passage_count(self) -> int:
        return self._count("passages")

    def _vector_snapshot(self) -> tuple[int, np.ndarray, np.ndarray]:
        """The generation, every passage id and its e5 vector (float32 rows, by id), read
        in one snapshot, so a write committed meanwhile is in neither or both."""
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
        return generation, ids, blob_vectors(b"".join(r[1] for r in rows), self.dim)

    def _text_hash_snapshot(self, unless: int) -> tuple[int, list[str]] | None:
        """The generation and every distinct passage text hash, read in one snapshot; None
        when the generation is still `unless`."""
        self._db.execute("BEGIN")
        try:
            generation = self.generation
            if generation == unless:
                return None
            hashes = [r[0] for r in self._db.execute("SELECT DISTINCT text_hash FROM passages")]
        finally:
            self._db.execute("COMMIT")
        return generation, hashes

    def _passage_vector_blobs(self, ids: Sequence[int]) -> dict[int, bytes]:
        """The e5 vectors (float16 blobs) of these passages that SQLite holds, by id."""
        return dict(
            self._rows_in(
                "SELECT p.id, e.vector FROM passages p JOIN embeddings e "
                "USING (text_hash) WHERE p.id",
                ids,
            )
        )

    def _passage_text_hashes(self, ids: Sequence[int]) -> dict[int, str]:
        return {
            int(r[0]): r[1]
            for r in self._rows_in("SELECT id, text_hash FROM passages WHERE id", ids)
        }

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
            out[row] = float_vector(found[h], encoder.dim)
        return out

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
        rows = [
            (int(pid), blob)
            for pid, blob in self._rows_in(
                "SELECT passage_id, vectors FROM sentence_vectors WHERE passage_id", ids
            )
            if blob and len(blob) % (2 * self.dim) == 0
        ]
        if not rows:
            return {}
        # One conversion for every row, then a view per passage (~300 rows a question:
        # a conversion each cost ~3 ms more).
        matrix = blob_vectors(b"".join(blob for _, blob in rows), self.dim)
        ends = np.cumsum([len(blob) // (2 * self.dim) for _, blob in rows])
        return dict(zip((pid for pid, _ in rows), np.split(matrix, ends[:-1]), strict=True))

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
                article=article_from_row(r),
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
        return [article_from_row(r) for r in self._db.execute("SELECT * FROM articles ORDER BY id")]

    def article(self, article_id: str) -> Article | None:
        row = self._db.execute("SELECT * FROM articles WHERE id = ?", (article_id,)).fetchone()
        return None if row is None else article_from_row(row)

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
            index_bytes=self.vectors.bytes_on_disk(),
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
        if hasattr(self, "vectors"):  # not when opening failed before its indexes were read
            self.vectors.release()
