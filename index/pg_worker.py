"""Embedding workers: `newsbot worker` processes, on any machine, embed the passages an
ingest left without a vector (`PgStore.add_articles(defer=True)`) and write them back.

Each worker takes a batch of waiting passages with `SELECT … FOR UPDATE SKIP LOCKED`:
workers never take the same passage, a worker that dies releases its batch (its
transaction rolls back) for the next one, and ingest throughput grows with the machines
running workers. A batch is embedded and written in the transaction that locked it. An
ingest without vectors could join an article to a story by an identical body only; once a
lead passage has its vector, the worker looks for a near-duplicate lead as an ingest with
vectors does, and moves the article (and any article that had joined it) to that story.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg

from index.chunking import passage_embedding_text, quote_spans
from index.pg_store import PgStore, _half
from index.store_base import (
    PassageEncoder,
    StoreError,
    joined_vectors,
    sentence_digests,
    text_hash,
    vector_blob,
)

log = logging.getLogger(__name__)

BATCH_PASSAGES = 16
IDLE_WAIT_S = 2.0


def embed_pending(store: PgStore, encoder: PassageEncoder, batch: int = BATCH_PASSAGES) -> int:
    """Embed one batch of passages waiting for their vector (with their quotable
    sentences); how many were taken (0: none waits, or all are taken by other workers)."""
    if encoder.model_id != store.model_id:
        raise StoreError(f"this index uses {store.model_id!r}, not {encoder.model_id!r}")
    with store._transaction() as cursor:
        cursor.execute(
            'SELECT p.id, p.heading, p.text, p.text_hash, p.sentences, p.start, p."end", '
            "a.text, p.ordinal, a.id, a.date, a.story_id FROM passages p JOIN articles a "
            "ON a.id = p.article_id WHERE p.embedding IS NULL ORDER BY p.id LIMIT %s "
            "FOR UPDATE OF p SKIP LOCKED",
            (batch,),
        )
        rows = cursor.fetchall()
        if not rows:
            return 0
        texts: list[str] = []
        for _, heading, text, digest, listed, start, end, article_text, *_ in rows:
            passage_text = passage_embedding_text(heading, text)
            if text_hash(passage_text) != digest:
                raise StoreError(f"passage text hash {digest} does not match its text")
            texts.append(passage_text)
            if listed:
                texts += [article_text[a:b] for a, b in quote_spans(article_text, start, end)]
        vectors, _ = store._embed_missing(texts, encoder)
        cursor.executemany(
            "UPDATE passages SET embedding = %s WHERE id = %s",
            [(_half(vectors[row[3]]), row[0]) for row in rows],
        )
        sentence_rows = [
            (row[0], joined_vectors(bytes(row[4]), vectors))
            for row in rows
            if row[4] and all(h in vectors for h in sentence_digests(bytes(row[4])))
        ]
        cursor.executemany(
            "INSERT INTO sentence_vectors (passage_id, vectors) VALUES (%s, %s) "
            "ON CONFLICT DO NOTHING",
            sentence_rows,
        )
        cursor.executemany(
            "INSERT INTO embeddings (text_hash, vector) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            [(h, vector_blob(v)) for h, v in vectors.items()],
        )
        for row in rows:
            ordinal, article_id, date, story = row[8], row[9], row[10], row[11]
            if ordinal == 0 and (story is None or story == article_id):
                join_story(store, cursor, article_id, date, vectors[row[3]])
        store._record_write(cursor, time.time(), 0, 0)
    return len(rows)


def join_story(
    store: PgStore, cursor: psycopg.Cursor[Any], article_id: str, date: str | None, lead: Any
) -> None:
    """Move an article that is its own story, with the articles that joined it, to the story
    of a near-duplicate lead passage (PgStore._near_duplicate_story), if there is one."""
    # its copies joined to it at ingest (same body) are among the nearest: look further
    story = store._near_duplicate_story(cursor, article_id, date, lead, nearest=10)
    if story is not None and story != article_id:
        cursor.execute(
            "UPDATE articles SET story_id = %s WHERE id = %s OR story_id = %s",
            (story, article_id, article_id),
        )


def pending_passages(store: PgStore) -> int:
    """Passages waiting for a worker's vector."""
    with store._cursor() as cursor:
        cursor.execute("SELECT count(*) FROM passages WHERE embedding IS NULL")
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def run_worker(
    store: PgStore,
    encoder: PassageEncoder,
    once: bool = False,
    batch: int = BATCH_PASSAGES,
    on_batch: Callable[[int], None] | None = None,
    reopen: Callable[[], PgStore] | None = None,
) -> int:
    """Embed waiting passages until stopped (KeyboardInterrupt), waiting IDLE_WAIT_S when
    none waits; `once`: return as soon as none is left. How many were embedded. After a
    reindex swapped a new index in (`store.retired`), `reopen` gives the new one: the
    passages waiting for a vector are there."""
    done = 0
    while True:
        if reopen is not None and store.retired:
            log.info("the index was rebuilt: the worker moves to the new one")
            store = reopen()
        taken = embed_pending(store, encoder, batch)
        done += taken
        if taken and on_batch is not None:
            on_batch(done)
        if not taken:
            if once and pending_passages(store) == 0:
                return done
            time.sleep(0.1 if once else IDLE_WAIT_S)
