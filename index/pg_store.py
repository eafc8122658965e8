"""The index on PostgreSQL + pgvector (NEWSBOT_DATABASE_URL): one database for every process.

The same tables as the SQLite store, in one database that any number of bot processes,
pollers and workers share: articles, passages (each with its e5 vector as `halfvec`, an
HNSW index over them, and its FTS5 tokens as a `tsvector` with a GIN index), the embedding
cache by text hash (float16 bytes, as in SQLite), each passage's sentence vectors, and the
second model's vectors (`halfvec`, with an HNSW index over USE's). A write is one
transaction per batch of articles under an advisory lock (one writer at a time, across
machines); readers never wait for it.

Dense search (e5's, and the second model's) is exact (every vector compared) below
faiss_cache.ANN_MIN_VECTORS passages, as the FAISS backend is, and through HNSW above; a
search restricted to some passages (a date or source filter) is always exact. Lexical
search: index/pg_lexical.py (BM25 in SQL). Needs the `postgres` extra (psycopg 3,
psycopg_pool, pgvector).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Protocol

import numpy as np
import psycopg
from pgvector import HalfVector
from pgvector.psycopg import register_vector
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout
from tqdm import tqdm

from index.articles import Article
from index.articles import article_id as stable_article_id
from index.chunking import passage_embedding_text
from index.faiss_cache import ANN_MIN_VECTORS
from index.pg_lexical import PgLexical, lexemes
from index.pg_schema import (
    BUILD_PREFIX,
    CONNECT_TIMEOUT_S,
    EF_SEARCH_MIN,
    INDEX_TABLES,
    MIGRATION_LOCK,
    REBUILD_LOCK,
    SECONDARY_HNSW_DIM,
    WRITE_LOCK,
    active_schema,
    describe,
    migrate,
    open_pool,
    unavailable,
)
from index.store_base import (
    BATCH_ARTICLES,
    SENTENCE_SPLIT,
    STORY_SIMILARITY,
    IngestReport,
    ModelMismatchError,
    PassageEncoder,
    RebuildInProgress,
    SecondaryEncoder,
    StoreBase,
    StoredPassage,
    StoreError,
    StoreRetired,
    StoreStats,
    article_from_row,
    blob_vectors,
    body_hash,
    catch_up,
    chunk_articles,
    close_in_time,
    float_vector,
    joined_vectors,
    sentence_digests,
    text_hash,
    vector_blob,
)

log = logging.getLogger(__name__)


class _Embeddings(Protocol):
    def embedding_rows(self) -> Iterator[tuple[str, bytes]]: ...

    def secondary_embedding_rows(self, model_id: str) -> Iterator[tuple[str, bytes]]: ...


def _half(vector: np.ndarray) -> HalfVector:
    return HalfVector(np.asarray(vector, dtype=np.float32))


def _stored_passage(row: dict[str, Any]) -> StoredPassage:
    return StoredPassage(
        id=int(row["pid"]),
        article=article_from_row(row),
        ordinal=int(row["ordinal"]),
        heading=row["heading"],
        text=row["ptext"],
        start=int(row["start"]),
        end=int(row["end"]),
        story_id=row["story_id"] or row["id"],
    )


_PASSAGE_COLUMNS = (
    'p.id AS pid, p.ordinal, p.heading, p.text AS ptext, p.start, p."end", a.id, a.title, '
    "a.text, a.date, a.source, a.url, a.lang, a.summary_only, a.story_id"
)


# A read replica that failed a read is left alone this long: reads go to the primary.
REPLICA_RETRY_S = 30.0
# The longest a read waits for a replica connection before it goes to the primary.
REPLICA_WAIT_S = 2.0
# What a replica that is down, behind a reindex's swap, or cancelling a read that conflicts
# with the WAL it replays raises: the read is done again on the primary.
_REPLICA_ERRORS = (
    psycopg.OperationalError,
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedColumn,
    psycopg.errors.InvalidSchemaName,
    psycopg.errors.SerializationFailure,
    PoolTimeout,
)


def _replica_read(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a read-only method of the question path on the read replica
    (NEWSBOT_DATABASE_READ_URL) when one is set, and on the primary when the replica cannot
    answer it (then, for REPLICA_RETRY_S, every read goes to the primary). A method called
    from within another runs where that one runs."""

    @functools.wraps(method)
    def read(self: PgStore, *args: Any, **kwargs: Any) -> Any:
        local = self._local
        if self._read_pool is None or getattr(local, "replica", None) is not None:
            return method(self, *args, **kwargs)
        if time.monotonic() >= self._replica_down_until:
            try:
                with self._reads_on(replica=True):
                    return method(self, *args, **kwargs)
            except _REPLICA_ERRORS as exc:
                self._replica_failed(exc)
        with self._reads_on(replica=False):
            return method(self, *args, **kwargs)

    return read


class PgStore(StoreBase):
    """The index in one PostgreSQL database (or one schema of it: `schema`). After a
    reindex (rebuild_database) it lives in the schema the reindex built, found through
    `index_active` when the store is opened.

    An index built by another embedding model than `model_id` is refused
    (ModelMismatchError), unless `any_model`: then the store takes that model's id and
    width, for a reindex to read its articles (and it writes nothing with another model)."""

    def __init__(
        self,
        url: str,
        model_id: str,
        dim: int,
        embed_quotes: bool = True,
        schema: str | None = None,
        max_connections: int = 8,
        any_model: bool = False,
        read_url: str | None = None,
    ) -> None:
        self.model_id = model_id
        self.dim = dim
        self.embed_quotes = embed_quotes
        self.url = url
        self.home = schema
        self.schema = schema
        self._where = describe(url) + (f" (schema {schema})" if schema else "")
        self._lexical = PgLexical()
        self._init_sentence_cache()
        self._secondary_generation: dict[str, int] = {}
        self._local = threading.local()  # .replica: where this thread's reads go now
        self._read_pool: ConnectionPool[Any] | None = None
        self._replica_down_until = 0.0
        try:
            with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as db:
                self.schema = migrate(db, self.dim, self.home, self._where)
            if self.schema != self.home:
                self._where = f"{describe(url)} (schema {self.schema})"
            self._pool = open_pool(
                url,
                "newsbot-index",
                max_connections,
                kwargs={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "newsbot"},
                configure=self._configure,
            )
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise unavailable(self._where, exc) from None
        self._check_model(any_model)
        if read_url is not None:
            self._open_replica(read_url, max_connections)

    # --- opening -------------------------------------------------------------------------

    def _configure(self, db: psycopg.Connection[Any]) -> None:
        db.autocommit = True
        if self.schema:
            db.execute(f'SET search_path TO "{self.schema}", public')
        register_vector(db)

    def _check_model(self, any_model: bool = False) -> None:
        """Record the model of a new index; refuse an index of another model (or take its
        model, `any_model`)."""
        with self._transaction() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            stored = self._setting(cursor, "model_id")
            if stored is None:
                self._set(cursor, "model_id", self.model_id)
                self._set(cursor, "dim", str(self.dim))
                return
            dim = int(self._setting(cursor, "dim") or 0)
        if stored == self.model_id and dim == self.dim:
            return
        if any_model:
            self.model_id, self.dim = stored, dim
            return
        self.close()
        same = stored == self.model_id  # the same model's id at another width
        built = f"{stored!r}" + (f" ({dim} dimensions)" if same else "")
        configured = f"{self.model_id!r}" + (f" ({self.dim} dimensions)" if same else "")
        raise ModelMismatchError(
            f"The index in {self._where} was built with the embedding model {built}, but "
            f"the configured model is {configured}. Vectors of different models cannot be "
            "mixed: run `newsbot reindex` to convert the index to the configured model (it "
            "is built beside the current one, which serves until the new one is swapped in), "
            "or set NEWSBOT_MODEL and NEWSBOT_EMBEDDER back to the index's model."
        )

    def _open_replica(self, read_url: str, max_connections: int) -> None:
        """The read replica's pool. It connects in the background: a replica that is down
        does not keep the bot from starting; its reads go to the primary meanwhile."""
        schema = f" (schema {self.schema})" if self.schema else ""
        self._replica_where = describe(read_url) + schema
        self._read_pool = open_pool(
            read_url,
            "newsbot-index-read",
            max_connections,
            timeout=REPLICA_WAIT_S,
            wait=False,
            kwargs={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "newsbot-read"},
            configure=self._configure,
        )

    def _replica_failed(self, exc: Exception) -> None:
        self._replica_down_until = time.monotonic() + REPLICA_RETRY_S
        reason = " ".join(str(exc).split()) or type(exc).__name__
        log.warning(
            "the read replica %s could not answer (%s): reads go to the primary for %.0f s",
            self._replica_where,
            reason,
            REPLICA_RETRY_S,
        )

    @property
    def reads_from_replica(self) -> bool:
        """Whether question reads go to the read replica now (one is set and answering)."""
        return self._read_pool is not None and time.monotonic() >= self._replica_down_until

    def _reading_pool(self) -> ConnectionPool[Any]:
        replica = getattr(self._local, "replica", None)
        return self._read_pool if replica and self._read_pool is not None else self._pool

    @contextmanager
    def _cursor(self) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor for reads: each statement on its own (the connections autocommit), so a
        question costs no BEGIN/COMMIT round trips. Within a method of the question path
        (`_replica_read`), on the read replica when one is set."""
        with self._reading_pool().connection() as db, db.cursor() as cursor:
            yield cursor

    @contextmanager
    def _reads_on(self, replica: bool) -> Iterator[None]:
        """This thread's reads in this block go to the read replica or to the primary."""
        before = getattr(self._local, "replica", None)
        self._local.replica = replica
        try:
            yield
        finally:
            self._local.replica = before

    def _primary(self) -> AbstractContextManager[None]:
        """Reads in this block go to the primary: what a write is decided on must not lag."""
        return self._reads_on(replica=False)

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor in one transaction: committed when the block ends, rolled back when it
        raises."""
        with self._pool.connection() as db, db.transaction(), db.cursor() as cursor:
            yield cursor

    @contextmanager
    def _rows(self) -> Iterator[psycopg.Cursor[Any]]:
        with (
            self._reading_pool().connection() as db,
            db.cursor(row_factory=dict_row) as cursor,
        ):
            yield cursor

    # --- settings ------------------------------------------------------------------------

    @staticmethod
    def _setting(cursor: psycopg.Cursor[Any], key: str) -> str | None:
        cursor.execute("SELECT value FROM index_settings WHERE key = %s", (key,))
        row = cursor.fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _set(cursor: psycopg.Cursor[Any], key: str, value: str) -> None:
        cursor.execute(
            "INSERT INTO index_settings (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _settings(self) -> dict[str, str]:
        with self._cursor() as cursor:
            cursor.execute("SELECT key, value FROM index_settings")
            return {str(k): str(v) for k, v in cursor.fetchall()}

    @property
    def generation(self) -> int:
        """Bumped by every write (what in-process caches are keyed by)."""
        with self._cursor() as cursor:
            return int(self._setting(cursor, "generation") or 0)

    @property
    def retired(self) -> bool:
        """True once a reindex swapped another schema in (bot/engine.py then reopens)."""
        with self._cursor() as cursor:
            return self._swapped(cursor)

    def _swapped(self, cursor: psycopg.Cursor[Any]) -> bool:
        return active_schema(cursor, self.home) != self.schema

    @property
    def location(self) -> str:
        return self._where

    def refresh(self, locked: bool = False) -> bool:
        return False  # every read goes to the database: nothing to catch up with

    # --- writing -------------------------------------------------------------------------

    def add_articles(
        self,
        articles: Sequence[Article],
        encoder: PassageEncoder,
        progress: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
        force: bool = False,
        defer: bool = False,
    ) -> IngestReport:
        """Chunk, embed (only text never embedded before) and store articles, one
        transaction per batch. `force`: cut unchanged articles again (a reindex). `defer`:
        embed nothing here: passages whose text was never embedded are stored without a
        vector, for `newsbot worker` processes (index/pg_worker.py) to embed; until then
        they are found by their words only, and a copy of a story is recognised by its body
        alone (not by its lead's vector)."""
        report, unique = self._accepted(articles, encoder)
        with tqdm(total=len(unique), unit="article", disable=not progress, leave=False) as bar:
            for start in range(0, len(unique), BATCH_ARTICLES):
                batch = unique[start : start + BATCH_ARTICLES]
                self._add_batch(batch, encoder, report, force, defer)
                bar.update(len(batch))
                if on_progress:
                    on_progress(min(start + BATCH_ARTICLES, len(unique)), len(unique))
        return report

    def _add_batch(
        self,
        batch: Sequence[Article],
        encoder: PassageEncoder,
        report: IngestReport,
        force: bool,
        defer: bool,
    ) -> None:
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT id, content_hash FROM articles WHERE id = ANY(%s)", ([a.id for a in batch],)
            )
            known = {str(r[0]): str(r[1]) for r in cursor.fetchall()}
        changed = [a for a in batch if force or known.get(a.id) != a.content_hash]
        report.unchanged += len(batch) - len(changed)
        if not changed:
            return
        chunked, quotes, sentence_lists = chunk_articles(changed, encoder, self.embed_quotes)
        vectors, embedded = self._embed_missing(
            [t for _, _, texts in chunked for t in texts] + quotes, encoder, embed=not defer
        )
        with self._transaction() as cursor:
            self._lock_writes(cursor)
            # When the articles were first indexed: taken once the writers' lock is held, so
            # a batch that waited for another commits after it with a later time (the alert
            # watermark and digests move past the latest time they have read).
            now = time.time()
            if sentence_lists and self._setting(cursor, "sentence_split") != SENTENCE_SPLIT:
                cursor.execute("UPDATE passages SET sentences = NULL")
                cursor.execute("DELETE FROM sentence_vectors")
                self._set(cursor, "sentence_split", SENTENCE_SPLIT)
            cursor.execute(
                "SELECT id, added_at, story_id FROM articles WHERE id = ANY(%s)",
                ([a.id for a, _, _ in chunked],),
            )
            first_seen = {str(r[0]): (float(r[1]), r[2]) for r in cursor.fetchall()}
            stories = self._assign_stories(
                cursor,
                [(a, vectors.get(text_hash(t[0])) if t else None) for a, _, t in chunked],
                {a: s for a, (_, s) in first_seen.items()},
            )
            rows_delta = tokens_delta = 0
            changed_ids = [a.id for a, _, _ in chunked]
            _count_words(cursor, changed_ids, -1)  # the passages about to be replaced
            for article, passages, texts in chunked:
                cursor.execute(
                    "DELETE FROM passages WHERE article_id = %s RETURNING length", (article.id,)
                )
                gone = [int(r[0]) for r in cursor.fetchall()]
                rows_delta -= len(gone)
                tokens_delta -= sum(gone)
                cursor.execute(
                    "INSERT INTO articles (id, title, text, date, source, url, lang, "
                    "summary_only, content_hash, added_at, story_id, body_hash) VALUES "
                    "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (id) DO UPDATE SET "
                    "title = excluded.title, text = excluded.text, date = excluded.date, "
                    "source = excluded.source, url = excluded.url, lang = excluded.lang, "
                    "summary_only = excluded.summary_only, content_hash = excluded.content_hash, "
                    "story_id = excluded.story_id, body_hash = excluded.body_hash",
                    (
                        article.id,
                        article.title,
                        article.text,
                        article.date,
                        article.source,
                        article.url,
                        article.lang,
                        article.summary_only,
                        article.content_hash,
                        first_seen.get(article.id, (now, None))[0],
                        stories[article.id],
                        body_hash(article.text),
                    ),
                )
                for passage, embed_text in zip(passages, texts, strict=True):
                    digest = text_hash(embed_text)
                    listed = sentence_lists.get((article.id, passage.ordinal))
                    literal, length = lexemes(f"{article.title} {passage.heading} {passage.text}")
                    cursor.execute(
                        'INSERT INTO passages (article_id, ordinal, heading, text, start, "end", '
                        "text_hash, sentences, embedding, lexemes, length) VALUES "
                        "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s::tsvector,%s) RETURNING id",
                        (
                            article.id,
                            passage.ordinal,
                            passage.heading,
                            passage.text,
                            passage.start,
                            passage.end,
                            digest,
                            listed,
                            _half(vectors[digest]) if digest in vectors else None,
                            literal,
                            length,
                        ),
                    )
                    pid = int(cursor.fetchone()[0])  # type: ignore[index]
                    if listed and all(h in vectors for h in sentence_digests(listed)):
                        cursor.execute(
                            "INSERT INTO sentence_vectors (passage_id, vectors) VALUES (%s, %s)",
                            (pid, joined_vectors(listed, vectors)),
                        )
                    rows_delta += 1
                    tokens_delta += length
                if article.id in known:
                    report.updated += 1
                else:
                    report.added += 1
                report.passages += len(passages)
                report.article_ids.append(article.id)
            cursor.executemany(
                "INSERT INTO embeddings (text_hash, vector) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                [(h, vector_blob(v)) for h, v in vectors.items()],
            )
            _count_words(cursor, changed_ids, +1)
            self._record_write(cursor, now, rows_delta, tokens_delta)
        report.embedded += embedded

    def _lock_writes(self, cursor: psycopg.Cursor[Any]) -> None:
        """Take the writers' lock; a write that waited for it while a reindex swapped
        another schema in must go there (StoreRetired: Engine._write retries on it)."""
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        if self._swapped(cursor):
            raise StoreRetired(f"the index in {self._where} was replaced by a reindex")

    def _record_write(
        self, cursor: psycopg.Cursor[Any], now: float, rows: int, tokens: int
    ) -> None:
        """Inside a write's transaction: the new generation, when, and the lexical index's
        row and token counts (BM25's N and mean length) moved by the write."""
        cursor.execute(
            "INSERT INTO index_settings (key, value) VALUES ('generation', '1'), "
            "('passages', %s), ('tokens', %s) ON CONFLICT (key) DO UPDATE SET value = "
            "(index_settings.value::bigint + CASE index_settings.key WHEN 'generation' THEN 1 "
            "WHEN 'passages' THEN %s ELSE %s END)::text",
            (str(rows), str(tokens), rows, tokens),
        )
        self._set(cursor, "last_update", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)))

    def _assign_stories(
        self,
        cursor: psycopg.Cursor[Any],
        leads: Sequence[tuple[Article, np.ndarray | None]],
        known: dict[str, str | None],
    ) -> dict[str, str]:
        """As the SQLite store does: an updated article keeps its story; a new one joins
        the story of an article with the same body or a near-duplicate lead passage."""
        assigned: dict[str, str] = {}
        batch_leads: list[tuple[np.ndarray, str, str | None]] = []
        for article, lead in leads:
            story = known.get(article.id)
            if story is None:
                cursor.execute(
                    "SELECT story_id FROM articles WHERE body_hash = %s AND id != %s LIMIT 1",
                    (body_hash(article.text), article.id),
                )
                row = cursor.fetchone()
                story = row[0] if row else None
            if story is None and lead is not None:
                story = self._near_duplicate_story(
                    cursor, article.id, article.date, lead, batch_leads
                )
            assigned[article.id] = story or article.id
            if lead is not None:
                batch_leads.append((lead, assigned[article.id], article.date))
        return assigned

    def _near_duplicate_story(
        self,
        cursor: psycopg.Cursor[Any],
        article_id: str,
        article_date: str | None,
        lead: np.ndarray,
        batch_leads: Sequence[tuple[np.ndarray, str, str | None]] = (),
        nearest: int = 3,
    ) -> str | None:
        """The story of another article whose lead passage is within STORY_SIMILARITY of
        `lead` and published within a few days (this batch's leads first; then the
        `nearest` passages), if any: not the article's own story."""
        for vector, story, date in batch_leads:
            if float(vector @ lead) >= STORY_SIMILARITY and close_in_time(date, article_date):
                return story
        for pid, score in self._dense(cursor, lead, nearest, None, exact=False):
            if score < STORY_SIMILARITY:
                continue
            cursor.execute(
                "SELECT a.id, a.story_id, a.date FROM passages p JOIN articles a "
                "ON a.id = p.article_id WHERE p.id = %s AND p.ordinal = 0",
                (pid,),
            )
            row = cursor.fetchone()
            if row is None:  # not a lead passage
                continue
            story = str(row[1] or row[0])
            if story != article_id and close_in_time(row[2], article_date):
                return story
        return None

    def _stored_embeddings(self, hashes: Sequence[str]) -> dict[str, bytes]:
        if not hashes:
            return {}
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT text_hash, vector FROM embeddings WHERE text_hash = ANY(%s)",
                (list(hashes),),
            )
            return {str(h): bytes(v) for h, v in cursor.fetchall()}

    def embed_texts(self, texts: Sequence[str], encoder: PassageEncoder) -> np.ndarray:
        """Passage-side vectors for arbitrary texts (quote candidates), through the cache."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors, embedded = self._embed_missing(list(texts), encoder)
        if embedded:
            with self._transaction() as cursor:
                cursor.executemany(
                    "INSERT INTO embeddings (text_hash, vector) VALUES (%s, %s) "
                    "ON CONFLICT DO NOTHING",
                    [(h, vector_blob(v)) for h, v in vectors.items()],
                )
            self._forget_incomplete_sentences()
        return np.vstack([vectors[text_hash(t)] for t in texts])

    def copy_embeddings_from(
        self, other: _Embeddings, secondary: Sequence[SecondaryEncoder] = ()
    ) -> int:
        """Seed the embedding caches (e5, and these second models') from another store
        built by the same model, so that moving an index embeds nothing."""
        copied = 0
        with self._transaction() as cursor:
            cursor.execute(
                "CREATE TEMP TABLE incoming (text_hash TEXT, vector BYTEA) ON COMMIT DROP"
            )
            with cursor.copy("COPY incoming (text_hash, vector) FROM STDIN") as copy:
                for digest, blob in other.embedding_rows():
                    copy.write_row((digest, bytes(blob)))
                    copied += 1
            cursor.execute(
                "INSERT INTO embeddings SELECT DISTINCT ON (text_hash) * FROM incoming "
                "ON CONFLICT DO NOTHING"
            )
            for encoder in secondary:
                rows = [
                    (encoder.model_id, digest, _half(float_vector(blob, encoder.dim)))
                    for digest, blob in other.secondary_embedding_rows(encoder.model_id)
                ]
                cursor.executemany(
                    "INSERT INTO secondary_embeddings (model_id, text_hash, vector) "
                    "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    rows,
                )
        return copied

    def remove_articles(self, ids: Sequence[str]) -> int:
        """Delete articles and their passages (their vectors stay cached)."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0
        with self._transaction() as cursor:
            self._lock_writes(cursor)
            _count_words(cursor, ids, -1)
            cursor.execute(
                "DELETE FROM passages WHERE article_id = ANY(%s) RETURNING length", (ids,)
            )
            lengths = [int(r[0]) for r in cursor.fetchall()]
            cursor.execute("DELETE FROM articles WHERE id = ANY(%s)", (ids,))
            removed = cursor.rowcount
            if removed:
                self._record_write(cursor, time.time(), -len(lengths), -sum(lengths))
        return max(removed, 0)

    # --- reading -------------------------------------------------------------------------

    def _passage_count(self, cursor: psycopg.Cursor[Any]) -> int:
        return int(self._setting(cursor, "passages") or 0)

    def _dense(
        self,
        cursor: psycopg.Cursor[Any],
        query: np.ndarray,
        k: int,
        among: Sequence[int] | None,
        exact: bool,
    ) -> list[tuple[int, float]]:
        """One query's top-k (passage id, cosine): exact below ANN_MIN_VECTORS passages or
        among given ones (`+ 0` keeps the planner off the HNSW index), HNSW otherwise."""
        vector = _half(query)
        if among is not None:
            cursor.execute(
                "SELECT id, -(embedding <#> %s) FROM passages WHERE id = ANY(%s) "
                "AND embedding IS NOT NULL ORDER BY (embedding <#> %s) + 0, id LIMIT %s",
                (vector, list(among), vector, k),
            )
        elif exact or self._passage_count(cursor) < ANN_MIN_VECTORS:
            cursor.execute(
                "SELECT id, -(embedding <#> %s) FROM passages WHERE embedding IS NOT NULL "
                "ORDER BY (embedding <#> %s) + 0, id LIMIT %s",
                (vector, vector, k),
            )
        else:  # SET LOCAL lasts until the end of this transaction (a savepoint in a write's)
            with cursor.connection.transaction():
                _hnsw_settings(cursor, k)
                cursor.execute(
                    "SELECT id, -(embedding <#> %s) FROM passages "
                    "ORDER BY embedding <#> %s LIMIT %s",
                    (vector, vector, k),
                )
                return [(int(pid), float(score)) for pid, score in cursor.fetchall()]
        return [(int(pid), float(score)) for pid, score in cursor.fetchall()]

    @_replica_read
    def search_vectors(
        self, query: np.ndarray, k: int, among: Sequence[int] | None = None, exact: bool = False
    ) -> list[list[tuple[int, float]]]:
        """Top-k (passage id, cosine) for each query vector (see `_dense`)."""
        if k <= 0 or (among is not None and not len(among)):
            return [[] for _ in range(len(query))]
        with self._cursor() as cursor:
            return [self._dense(cursor, row, k, among, exact) for row in query]

    @_replica_read
    def lexical_search(
        self, question: str, k: int, among: Sequence[int] = ()
    ) -> list[tuple[int, float]]:
        """Top-k (passage id, BM25) (index/pg_lexical.py)."""
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT key, value FROM index_settings "
                "WHERE key IN ('generation', 'passages', 'tokens')"
            )
            settings = {"generation": 0, "passages": 0, "tokens": 0}
            settings.update({str(key): int(value) for key, value in cursor.fetchall()})
            rows = settings["passages"]
            mean = settings["tokens"] / rows if rows else 1.0
            return self._lexical.search(
                cursor, question, k, settings["generation"], rows, mean, among
            )

    @_replica_read
    def passage_ids_matching(
        self, since: str | None, until: str | None, sources: Sequence[str]
    ) -> list[int]:
        where, args = [], []
        if since:
            where.append("a.date IS NOT NULL AND substr(a.date, 1, %s) >= %s")
            args += [len(since), since]
        if until:
            where.append("a.date IS NOT NULL AND substr(a.date, 1, %s) <= %s")
            args += [len(until), until]
        if sources:
            where.append("lower(a.source) = ANY(%s)")
            args.append([s.lower() for s in sources])
        sql = "SELECT p.id FROM passages p JOIN articles a ON a.id = p.article_id"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._cursor() as cursor:
            cursor.execute(sql + " ORDER BY p.id", args)
            return [int(r[0]) for r in cursor.fetchall()]

    @_replica_read
    def passage_languages(self, ids: Sequence[int]) -> dict[int, str | None]:
        if not ids:
            return {}
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT p.id, a.lang FROM passages p JOIN articles a ON a.id = p.article_id "
                "WHERE p.id = ANY(%s)",
                (list(ids),),
            )
            return {int(pid): lang for pid, lang in cursor.fetchall()}

    @_replica_read
    def passage_vectors(self, ids: Sequence[int]) -> np.ndarray:
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT id, embedding FROM passages WHERE id = ANY(%s)", (list(ids),), binary=True
            )
            found = {int(pid): v.to_numpy() for pid, v in cursor.fetchall() if v is not None}
        # A passage still waiting for a worker's vector counts as unrelated (cosine 0).
        zero = np.zeros(self.dim, dtype=np.float32)
        return np.vstack([found.get(int(i), zero) for i in ids]).astype(np.float32)

    @_replica_read
    def passages(self, ids: Sequence[int]) -> dict[int, StoredPassage]:
        if not ids:
            return {}
        # Each article read (and built) once, not once per passage: an article's text is
        # most of what a question reads, and several of its passages are often candidates.
        with self._rows() as cursor:
            cursor.execute(
                'SELECT p.id AS pid, p.ordinal, p.heading, p.text AS ptext, p.start, p."end", '
                "p.article_id FROM passages p WHERE p.id = ANY(%s)",
                (list(ids),),
            )
            rows = cursor.fetchall()
            cursor.execute(
                "SELECT * FROM articles WHERE id = ANY(%s)",
                (list({r["article_id"] for r in rows}),),
            )
            articles = {r["id"]: (article_from_row(r), r["story_id"]) for r in cursor.fetchall()}
        return {
            int(r["pid"]): StoredPassage(
                id=int(r["pid"]),
                article=articles[r["article_id"]][0],
                ordinal=int(r["ordinal"]),
                heading=r["heading"],
                text=r["ptext"],
                start=int(r["start"]),
                end=int(r["end"]),
                story_id=articles[r["article_id"]][1] or r["article_id"],
            )
            for r in rows
            if r["article_id"] in articles
        }

    @_replica_read
    def sentence_vectors(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """StoreBase's, on the read replica when one is set: its generation (what the cache
        is keyed by) and its rows are then read from the same server."""
        return super().sentence_vectors(ids)

    def _sentence_rows(self, sql: str, ids: Sequence[int]) -> list[tuple[Any, ...]]:
        """The rows `sql` gives for these passage ids (its one parameter), or none when the
        recorded sentence lists (and their rows) were cut by another chunker than today's."""
        if not ids:
            return []
        with self._cursor() as cursor:
            if self._setting(cursor, "sentence_split") != SENTENCE_SPLIT:
                return []
            cursor.execute(sql, (list(ids),))
            return cursor.fetchall()

    def _stored_sentence_vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        rows = self._sentence_rows(
            "SELECT passage_id, vectors FROM sentence_vectors WHERE passage_id = ANY(%s)", ids
        )
        return {
            int(pid): blob_vectors(bytes(blob), self.dim)
            for pid, blob in rows
            if blob and len(blob) % (2 * self.dim) == 0
        }

    def _recorded_sentences(self, ids: Sequence[int]) -> dict[int, list[str]]:
        rows = self._sentence_rows(
            "SELECT id, sentences FROM passages WHERE sentences IS NOT NULL AND id = ANY(%s)", ids
        )
        return {int(pid): sentence_digests(bytes(b)) for pid, b in rows}

    # --- the second model ----------------------------------------------------------------

    def secondary_vectors(self, encoder: SecondaryEncoder) -> int:
        """Embed (once) every passage text the second model has no vector of; the number of
        texts embedded now. On the primary: what it writes is decided on what it reads."""
        with self._primary():
            return self._secondary_vectors(encoder)

    def _secondary_vectors(self, encoder: SecondaryEncoder) -> int:
        generation = self.generation
        if self._secondary_generation.get(encoder.model_id) == generation:
            return 0
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT DISTINCT ON (p.text_hash) p.text_hash, p.heading, p.text FROM passages p "
                "WHERE NOT EXISTS (SELECT 1 FROM secondary_embeddings s WHERE s.model_id = %s "
                "AND s.text_hash = p.text_hash)",
                (encoder.model_id,),
            )
            lacking = {str(h): passage_embedding_text(hd, t) for h, hd, t in cursor.fetchall()}
        hashes = list(lacking)
        for start in range(0, len(hashes), 256):
            chunk = hashes[start : start + 256]
            matrix = encoder.embed_texts([lacking[h] for h in chunk]).astype(np.float32)
            with self._transaction() as cursor:
                cursor.executemany(
                    "INSERT INTO secondary_embeddings (model_id, text_hash, vector) "
                    "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    [(encoder.model_id, h, _half(v)) for h, v in zip(chunk, matrix, strict=True)],
                )
        self._secondary_generation[encoder.model_id] = generation
        return len(hashes)

    @_replica_read
    def secondary_search(
        self, encoder: SecondaryEncoder, query: np.ndarray, k: int, exact: bool = False
    ) -> list[tuple[int, float]]:
        """The passages of the k texts most similar to the query under the second model,
        best first. As `_dense`: exact (every text a passage holds is compared; `+ 0` keeps
        the planner off the index) below ANN_MIN_VECTORS passages, when `exact`, or for a
        model of another width than SECONDARY_HNSW_DIM; through the HNSW index of migration
        4 otherwise, whose iterative scan goes on past the texts of another model or that
        no passage holds any more until k are found (in exact distance order)."""
        self.secondary_vectors(encoder)
        vector = _half(query)
        with self._cursor() as cursor:
            flat = (
                exact
                or encoder.dim != SECONDARY_HNSW_DIM
                or self._passage_count(cursor) < ANN_MIN_VECTORS
            )
            scan: AbstractContextManager[object] = nullcontext()
            if flat:  # `+ 0`: not through the index
                usable, order = "", "(s.vector <#> %s) + 0, s.text_hash"
            else:  # the index's expression and predicate, spelt as in the migration
                usable = f"vector_dims(s.vector) = {SECONDARY_HNSW_DIM} AND "
                order = f"s.vector::halfvec({SECONDARY_HNSW_DIM}) <#> %s"
                scan = cursor.connection.transaction()  # what SET LOCAL lasts for
            with scan:
                if not flat:
                    _hnsw_settings(cursor, k)
                cursor.execute(
                    "WITH top AS (SELECT s.text_hash, -(s.vector <#> %s) AS score "
                    f"FROM secondary_embeddings s WHERE {usable}s.model_id = %s AND "
                    "EXISTS (SELECT 1 FROM passages p WHERE p.text_hash = s.text_hash) "
                    f"ORDER BY {order} LIMIT %s) "
                    "SELECT p.id, top.score FROM top JOIN passages p USING (text_hash) "
                    "ORDER BY top.score DESC, top.text_hash, p.id",
                    (vector, encoder.model_id, vector, k),
                )
                return [(int(pid), float(score)) for pid, score in cursor.fetchall()]

    @_replica_read
    def secondary_scores(
        self, encoder: SecondaryEncoder, ids: Iterable[int], query: np.ndarray
    ) -> dict[int, float]:
        ids = list(ids)
        if not ids:
            return {}
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT p.id, -(s.vector <#> %s) FROM passages p JOIN secondary_embeddings s "
                "ON s.text_hash = p.text_hash AND s.model_id = %s WHERE p.id = ANY(%s)",
                (_half(query), encoder.model_id, ids),
            )
            return {int(pid): float(score) for pid, score in cursor.fetchall()}

    # --- articles, stories, stats --------------------------------------------------------

    def article_passages(self, article_id: str) -> tuple[list[StoredPassage], np.ndarray]:
        """An article's passages and vectors. On the primary, also with a read replica: the
        alert round and digests read the stories a poll has just written through it, and a
        replica that has not replayed them yet would skip them for good."""
        with self._rows() as cursor:
            cursor.execute(
                f"SELECT {_PASSAGE_COLUMNS}, p.embedding FROM passages p JOIN articles a "
                "ON a.id = p.article_id WHERE p.article_id = %s ORDER BY p.ordinal",
                (article_id,),
                binary=True,
            )
            rows = cursor.fetchall()
        if not rows:
            return [], np.zeros((0, self.dim), dtype=np.float32)
        zero = np.zeros(self.dim, dtype=np.float32)  # a vector not embedded yet: unrelated
        vectors = np.vstack(
            [zero if r["embedding"] is None else r["embedding"].to_numpy() for r in rows]
        ).astype(np.float32)
        return [_stored_passage(r) for r in rows], vectors

    def recent_story_vectors(self, limit: int) -> dict[str, np.ndarray]:
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT p.article_id, p.embedding FROM passages p WHERE p.article_id IN "
                "(SELECT id FROM articles WHERE story_id IS NULL OR story_id = id "
                "ORDER BY added_at DESC LIMIT %s) AND p.embedding IS NOT NULL "
                "ORDER BY p.article_id, p.ordinal",
                (limit,),
                binary=True,
            )
            grouped: dict[str, list[np.ndarray]] = {}
            for article_id, vector in cursor.fetchall():
                grouped.setdefault(str(article_id), []).append(vector.to_numpy())
        return {a: np.vstack(v).astype(np.float32) for a, v in grouped.items()}

    def stories_added_since(self, since: float) -> dict[str, float]:
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT id, added_at FROM articles WHERE added_at > %s "
                "AND (story_id IS NULL OR story_id = id) ORDER BY added_at",
                (since,),
            )
            return {str(r[0]): float(r[1]) for r in cursor.fetchall()}

    def article_hashes(self) -> dict[str, str]:
        with self._cursor() as cursor:
            cursor.execute("SELECT id, content_hash FROM articles")
            return {str(r[0]): str(r[1]) for r in cursor.fetchall()}

    def article_ids(self) -> set[str]:
        with self._cursor() as cursor:
            cursor.execute("SELECT id FROM articles")
            return {str(r[0]) for r in cursor.fetchall()}

    def all_articles(self) -> list[Article]:
        with self._rows() as cursor:
            cursor.execute("SELECT * FROM articles ORDER BY id")
            return [article_from_row(r) for r in cursor.fetchall()]

    def article(self, article_id: str) -> Article | None:
        with self._rows() as cursor:
            cursor.execute("SELECT * FROM articles WHERE id = %s", (article_id,))
            row = cursor.fetchone()
        return None if row is None else article_from_row(row)

    def find_article(self, ref: str) -> Article | None:
        """The article an admin means by `ref`: its id, or its link (compared canonically)."""
        ref = ref.strip()
        if not ref:
            return None
        found = self.article(ref)
        if found is None and ref.startswith(("http://", "https://")):
            found = self.article(stable_article_id(ref, "", "", None))
            if found is None:
                with self._cursor() as cursor:
                    cursor.execute("SELECT id FROM articles WHERE url = %s LIMIT 1", (ref,))
                    row = cursor.fetchone()
                found = self.article(row[0]) if row else None
        return found

    def articles_older_than(self, date: str, added_before: float) -> list[str]:
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT id FROM articles WHERE (date IS NOT NULL AND date != '' AND date < %s) "
                "OR ((date IS NULL OR date = '') AND added_at < %s)",
                (date, added_before),
            )
            return [str(r[0]) for r in cursor.fetchall()]

    def passage_bounds(self) -> dict[str, list[tuple[int, int]]]:
        bounds: dict[str, list[tuple[int, int]]] = {}
        with self._cursor() as cursor:
            cursor.execute(
                'SELECT article_id, start, "end" FROM passages ORDER BY article_id, ordinal'
            )
            for article_id, start, end in cursor.fetchall():
                bounds.setdefault(str(article_id), []).append((int(start), int(end)))
        return bounds

    def stats(self) -> StoreStats:
        settings = self._settings()
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*), COUNT(DISTINCT NULLIF(source, '')), MIN(date), MAX(date) "
                "FROM articles"
            )
            row = cursor.fetchone()
            assert row is not None
            cursor.execute(
                "SELECT pg_total_relation_size('passages') + pg_total_relation_size('embeddings')"
            )
            size = cursor.fetchone()
        return StoreStats(
            articles=int(row[0]),
            passages=int(settings.get("passages", 0)),
            sources=int(row[1]),
            model=settings.get("model_id"),
            last_update=settings.get("last_update"),
            index_bytes=int(size[0]) if size else 0,
            first_date=row[2],
            last_date=row[3],
        )

    def sources(self) -> list[str]:
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT source FROM articles WHERE source != '' GROUP BY source "
                "ORDER BY COUNT(*) DESC"
            )
            return [str(r[0]) for r in cursor.fetchall()]

    def close(self) -> None:
        for pool in (getattr(self, "_read_pool", None), getattr(self, "_pool", None)):
            if pool is not None:
                pool.close()


def _hnsw_settings(cursor: psycopg.Cursor[Any], k: int) -> None:
    """For the HNSW search of k rows next in this transaction: candidates kept (at least
    twice k, EF_SEARCH_MIN at least, pgvector's 1000 at most), and an iterative scan that
    goes on, in exact distance order, while filters leave fewer than k."""
    ef_search = min(1000, max(2 * k, EF_SEARCH_MIN))
    cursor.execute(f"SET LOCAL hnsw.ef_search = {ef_search}")
    cursor.execute("SET LOCAL hnsw.iterative_scan = strict_order")


def _count_words(cursor: psycopg.Cursor[Any], article_ids: list[str], sign: int) -> None:
    """Add (+1) or take away (-1) these articles' passages from the `lexicon` counts of
    the words they hold (inside a write, under its lock)."""
    cursor.execute(
        "INSERT INTO lexicon (lexeme, documents) SELECT u.lexeme, %s * count(*) "
        "FROM passages p, unnest(p.lexemes) AS u WHERE p.article_id = ANY(%s) "
        "GROUP BY u.lexeme ON CONFLICT (lexeme) DO UPDATE "
        "SET documents = lexicon.documents + excluded.documents",
        (sign, article_ids),
    )


CATCH_UP_ROUNDS = 5  # tries to find the writers idle before a reindex gives up


def rebuild_database(
    current: PgStore,
    articles: Sequence[Article],
    encoder: PassageEncoder,
    progress: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[IngestReport, int]:
    """Build the index again beside `current`, in a fresh schema: every article it holds
    and `articles` (the data dir's files), with `encoder`'s model, seeded with its
    embedding cache when that is the model `current` was built with (unchanged text is not
    embedded again); then swap it in, in one transaction, for every process.

    `encoder` may be another model than `current`'s (opened with `any_model`): the new
    index is built with it (every passage embedded again, at its width), and after the swap
    a process still configured with the old model is refused when it reopens the index
    (ModelMismatchError), while those configured with the new one open it.

    Readers go on reading `current` while it builds, and writers writing to it; the
    writes made meanwhile are carried over, and the swap itself holds the writers' lock
    and moves the pointer in `index_active`, so a writer that waited writes to the new
    schema (StoreRetired) and each process's next question reopens the index there
    (PgStore.retired). Articles keep when they were first indexed and their story.
    The schemas retired by earlier reindexes are dropped first (their readers long gone).
    One reindex at a time: while another runs (in any process, on any machine) this one is
    refused at once with RebuildInProgress, as on SQLite, rather than queued behind it.
    Returns the build's report and how many cached vectors were carried over."""
    with psycopg.connect(current.url, autocommit=True) as lock:
        taken = lock.execute("SELECT pg_try_advisory_lock(%s)", (REBUILD_LOCK,)).fetchone()
        if not taken or not taken[0]:  # another process (any machine) is rebuilding it
            raise RebuildInProgress(
                f"a reindex of the index in {current.location} is already running"
            )
        _drop_retired(lock)
        name = _new_schema_name(lock)
        if encoder.model_id != current.model_id:
            log.info(
                "reindex: converting the index from %s to %s: every passage is embedded again",
                current.model_id,
                encoder.model_id,
            )
        fresh = PgStore(
            current.url, encoder.model_id, encoder.dim, current.embed_quotes, schema=name
        )
        try:
            if current.retired:
                raise StoreRetired(f"the index in {current.location} was replaced meanwhile")
            reused = _copy_cache(fresh, current)
            snapshot = current.article_hashes()
            every = {a.id: a for a in current.all_articles()}
            every.update({a.id: a for a in articles})
            report = fresh.add_articles(
                list(every.values()), encoder, progress=progress, on_progress=on_progress
            )
            for _ in range(CATCH_UP_ROUNDS):
                snapshot = catch_up(fresh, current, snapshot, encoder, report)
                if _swap_in(fresh, current, snapshot):
                    break
            else:
                raise StoreError("the index kept being written to: reindex again later")
        except BaseException:
            fresh.close()
            lock.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            raise
        fresh.close()
    log.info("reindex: the index now lives in schema %s", name)
    return report, reused


def _qualified(schema: str | None) -> str:
    return f'"{schema}"' if schema else "public"


def _built_schemas(db: psycopg.Connection[Any]) -> list[str]:
    """The schemas reindexes built (BUILD_PREFIX and a number), retired or not."""
    rows = db.execute(
        "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (BUILD_PREFIX,)
    ).fetchall()
    return [str(r[0]) for r in rows]


def _new_schema_name(db: psycopg.Connection[Any]) -> str:
    numbers = [
        int(n[len(BUILD_PREFIX) :]) for n in _built_schemas(db) if n[len(BUILD_PREFIX) :].isdigit()
    ]
    return f"{BUILD_PREFIX}{max(numbers, default=0) + 1}"


def _drop_retired(db: psycopg.Connection[Any]) -> None:
    """Drop what earlier reindexes left (under the reindex lock): the built schemas no
    home points at, and the index's tables in a home that points elsewhere."""
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        active = dict(db.execute("SELECT home, schema FROM public.index_active").fetchall())
        for schema in _built_schemas(db):
            if schema not in active.values():
                db.execute(f'DROP SCHEMA "{schema}" CASCADE')
                log.info("reindex: dropped the retired index in schema %s", schema)
        for home, schema in active.items():
            if home == schema:
                continue
            where = _qualified(home or None)
            exists = db.execute(
                "SELECT to_regclass(%s) IS NOT NULL", (f"{where}.index_settings",)
            ).fetchone()
            if exists and exists[0]:
                tables = ", ".join(f"{where}.{t}" for t in INDEX_TABLES.split(", "))
                db.execute(f"DROP TABLE IF EXISTS {tables} CASCADE")
                db.execute(f"DELETE FROM {where}.schema_versions WHERE component = 'index'")
                log.info("reindex: dropped the retired index's tables in %s", where)


def _copy_cache(fresh: PgStore, current: PgStore) -> int:
    """Seed the new schema's embedding caches from the current one's (same database; the
    e5 vectors only when the model is the same: a reindex to another model embeds all)."""
    source = _qualified(current.schema)
    copied = 0
    with fresh._transaction() as cursor:
        if (fresh.model_id, fresh.dim) == (current.model_id, current.dim):
            cursor.execute(f"INSERT INTO embeddings SELECT * FROM {source}.embeddings")
            copied = max(cursor.rowcount, 0)
        cursor.execute(
            f"INSERT INTO secondary_embeddings SELECT * FROM {source}.secondary_embeddings"
        )
    return copied


def _swap_in(fresh: PgStore, current: PgStore, snapshot: dict[str, str]) -> bool:
    """In one transaction holding the writers' lock: if nobody wrote since `snapshot`,
    give the new schema's articles their first-indexed time and story from the current
    one and point the home at it. False (nothing done) if somebody wrote."""
    source = _qualified(current.schema)
    with fresh._transaction() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        cursor.execute(f"SELECT id, content_hash FROM {source}.articles")
        if {str(r[0]): str(r[1]) for r in cursor.fetchall()} != snapshot:
            return False
        cursor.execute(
            f"UPDATE articles a SET added_at = o.added_at, "
            f"story_id = COALESCE(o.story_id, a.story_id) FROM {source}.articles o "
            "WHERE o.id = a.id"
        )
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        cursor.execute(
            "INSERT INTO public.index_active (home, schema) VALUES (%s, %s) "
            "ON CONFLICT (home) DO UPDATE SET schema = excluded.schema",
            (current.home or "", fresh.schema),
        )
    return True
