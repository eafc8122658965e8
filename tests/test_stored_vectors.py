"""e5 vectors kept as float16 in SQLite: compact rows, and older float32 stores migrated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from index.articles import load_articles
from index.store import DB_NAME, Store
from index.store_base import blob_vectors
from tests.conftest import SEED

HALF_ULP = 2.0**-11  # float16 rounding of a value under 1 moves it by at most this


def _rows(directory: Path) -> dict[str, bytes]:
    with sqlite3.connect(directory / DB_NAME) as db:
        return dict(db.execute("SELECT text_hash, vector FROM embeddings").fetchall())


def test_vectors_are_stored_in_half_the_bytes(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path, embedder.model_id, embedder.dim)
    store.add_articles(load_articles([SEED]).articles, embedder)
    passages, vectors = store.article_passages(store.all_articles()[0].id)
    assert vectors.dtype == np.float32
    # what FAISS holds after the write is exactly what a rebuild from SQLite gives
    for passage, vector in zip(passages, vectors, strict=True):
        assert np.array_equal(store.index.reconstruct(passage.id), vector)
    store.close()
    rows = _rows(tmp_path)
    assert rows and {len(blob) for blob in rows.values()} == {2 * embedder.dim}


def test_a_float32_store_is_migrated_and_reads_back_within_float16_precision(
    tmp_path: Path,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    store = Store(tmp_path, embedder.model_id, embedder.dim)
    store.add_articles(load_articles([SEED]).articles, embedder)
    store.close()
    # Make it a schema-3 store: float32 vectors (not float16-rounded ones) in every row.
    noise = np.random.default_rng(0)
    originals = {}
    for digest, blob in _rows(tmp_path).items():
        vector = blob_vectors(blob, embedder.dim)[0] + noise.normal(0, 1e-3, embedder.dim)
        originals[digest] = (vector / np.linalg.norm(vector)).astype(np.float32)
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.executemany(
            "UPDATE embeddings SET vector = ? WHERE text_hash = ?",
            [(v.tobytes(), h) for h, v in originals.items()],
        )
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")

    reopened = Store(tmp_path, embedder.model_id, embedder.dim)
    rows = _rows(tmp_path)
    assert {len(blob) for blob in rows.values()} == {2 * embedder.dim}
    for digest, original in originals.items():
        read = blob_vectors(rows[digest], embedder.dim)[0]
        assert np.abs(read - original).max() <= HALF_ULP
    # the FAISS index now holds the migrated rows, and searches as the float32 one did
    query = embedder.embed_queries(["who denied signing an accord?"])
    passages, vectors = reopened.article_passages(reopened.all_articles()[0].id)
    exact = [passages[i].id for i in np.argsort(-(vectors @ query[0]))]
    found = reopened.search_vectors(query, len(passages))[0]
    assert [pid for pid, _ in found] == exact
    for pid, _ in found:
        assert np.array_equal(
            reopened.index.reconstruct(pid), vectors[[p.id for p in passages].index(pid)]
        )
    quotes = reopened.sentence_vectors([p.id for p in passages])
    assert quotes and all(v.dtype == np.float32 for v in quotes.values())
    reopened.close()


def test_second_model_vectors_are_stored_as_float16_and_older_float32_rows_still_read(
    tmp_path: Path,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    from index.usem import UseEncoder

    use = UseEncoder()
    store = Store(tmp_path, embedder.model_id, embedder.dim)
    store.add_articles(load_articles([SEED]).articles, embedder)
    hashes = [r[0] for r in store._db.execute("SELECT DISTINCT text_hash FROM passages")]
    fresh = store._secondary_of(use, hashes)
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        rows = dict(db.execute("SELECT text_hash, vector FROM secondary_embeddings").fetchall())
    assert {len(blob) for blob in rows.values()} == {2 * use.dim}
    # A row written as float32 by an older newsbot reads back as it was.
    old = np.linspace(-0.1, 0.1, use.dim, dtype=np.float32)
    with store._transaction():
        store._db.execute(
            "UPDATE secondary_embeddings SET vector = ? WHERE text_hash = ?",
            (old.tobytes(), hashes[0]),
        )
    again = store._secondary_of(use, hashes)
    assert np.array_equal(again[0], old)
    assert np.array_equal(again[1:], fresh[1:])
    assert np.abs(fresh - fresh.astype(np.float16).astype(np.float32)).max() == 0
    store.close()
