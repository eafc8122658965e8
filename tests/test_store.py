"""The SQLite + FAISS store: round trip, incremental ingest, crash safety, model guard."""

from __future__ import annotations

import dataclasses
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from index import faiss_cache, sqlite_schema
from index import store as store_module
from index.articles import Article, load_articles
from index.faiss_cache import SNAPSHOT_NAME as FAISS_NAME
from index.store import Store
from index.store_base import ModelMismatchError
from tests.conftest import SEED


class CountingEncoder:
    """The real embedder, counting how many texts it is asked to embed."""

    def __init__(self, inner, fail_after: int | None = None) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.max_tokens = inner.max_tokens
        self.embedded = 0
        self.fail_after = fail_after

    def count_tokens(self, text: str) -> int:
        return int(self.inner.count_tokens(text))

    def embed_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if self.fail_after is not None and self.embedded + len(texts) > self.fail_after:
            raise RuntimeError("simulated crash while embedding")
        self.embedded += len(texts)
        return np.asarray(self.inner.embed_passages(texts))


def _seed() -> list[Article]:
    return load_articles([SEED]).articles


def _other_articles(n: int) -> list[Article]:
    return [
        Article(
            title=f"Storm {i}",
            text=f"A storm named Storm{i} hit the coast of Brittany on day {i}. "
            "Thousands of homes lost power and trains were cancelled.",
            source="Test",
            date=f"2024-01-{i + 1:02d}",
        )
        for i in range(n)
    ]


def test_round_trip_survives_reopening(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path, embedder.model_id, embedder.dim)
    report = store.add_articles(_seed(), embedder)
    assert report.added == 1 and report.passages >= 4
    query = embedder.embed_queries(["who denied signing an accord?"])
    before = store.search_vectors(query, 3)[0]
    stats = store.stats()
    store.close()

    reopened = Store(tmp_path, embedder.model_id, embedder.dim)
    assert reopened.stats().passages == stats.passages == reopened.index.ntotal
    assert reopened.search_vectors(query, 3)[0] == before
    top = reopened.passages([before[0][0]])[before[0][0]]
    assert "Aucun accord n'a été signé" in top.text
    assert top.article.source == "ATS" and top.article.date == "2023-09"
    assert top.article.text[top.start : top.end] == top.text


def test_second_ingest_embeds_nothing(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    encoder = CountingEncoder(embedder)
    store = Store(tmp_path, encoder.model_id, encoder.dim)
    first = store.add_articles(_seed(), encoder)
    assert first.embedded == encoder.embedded > 0
    second = store.add_articles(_seed(), encoder)
    assert (second.added, second.updated, second.unchanged, second.embedded) == (0, 0, 1, 0)
    assert encoder.embedded == first.embedded
    assert store.index.ntotal == first.passages


def test_changed_article_replaces_its_passages(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    encoder = CountingEncoder(embedder)
    store = Store(tmp_path, encoder.model_id, encoder.dim)
    original = _other_articles(1)[0]
    store.add_articles([original], encoder)
    changed = Article(
        title=original.title,
        text=original.text + " Schools closed.",
        source="Test",
        date=original.date,
    )
    assert changed.id == original.id
    report = store.add_articles([changed], encoder)
    assert report.updated == 1
    assert store.index.ntotal == store.stats().passages == 1
    assert "Schools closed." in store.all_articles()[0].text


def test_removed_articles_leave_index_and_search_and_stay_out(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    encoder = CountingEncoder(embedder)
    store = Store(tmp_path, encoder.model_id, encoder.dim)
    linked = Article(
        title="Peskov",
        text=_seed()[0].text,
        source="ATS",
        date="2023-09",
        url="https://news.test/kremlin?utm_source=x",
    )
    storms = _other_articles(2)
    store.add_articles([linked, *storms], encoder)
    embedded = encoder.embedded
    query = embedder.embed_queries(["who denied signing an accord?"])
    ((top, _),) = store.search_vectors(query, 1)[0]
    assert store.passages([top])[top].article.id == linked.id
    generation = store.generation

    # Found by id, by its link as given, or by the same link written differently.
    assert store.find_article(storms[0].id) == storms[0]
    assert store.find_article("https://NEWS.test/kremlin/") == linked
    assert store.find_article("https://news.test/other") is None
    assert store.remove_articles([linked.id, "no-such-id"]) == 1
    assert store.remove_articles([linked.id]) == 0  # already gone
    assert store.generation > generation
    assert store.article(linked.id) is None
    assert store.index.ntotal == store.stats().passages == 2
    found = store.search_vectors(query, 5)[0]
    assert {store.passages([pid])[pid].article.id for pid, _ in found} == {s.id for s in storms}
    assert store.lexical_search("Peskov", 5) == []  # the full-text index forgot it too
    store.close()

    reopened = Store(tmp_path, encoder.model_id, encoder.dim)
    assert reopened.index.ntotal == reopened.stats().passages == 2
    assert reopened.article(linked.id) is None
    reopened.add_articles([linked], encoder)  # back again: its vectors were kept
    assert encoder.embedded == embedded and reopened.index.ntotal > 2
    reopened.close()


def test_crash_while_saving_faiss_leaves_a_loadable_index(
    tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path, embedder.model_id, embedder.dim)
    store.add_articles(_seed(), embedder)
    saved = (tmp_path / FAISS_NAME).read_bytes()
    passages_before = store.stats().passages

    def crash(*args: object) -> None:
        raise OSError("simulated power cut during os.replace")

    monkeypatch.setattr(faiss_cache, "COMPACT_RATIO", 0.0)  # every write rewrites the file
    monkeypatch.setattr(faiss_cache, "COMPACT_MIN_BYTES", 0)
    monkeypatch.setattr(faiss_cache.os, "replace", crash)
    # SQLite holds the write: it is reported done, and the cache is rebuilt from SQLite.
    assert store.add_articles(_other_articles(2), embedder).added == 2
    monkeypatch.undo()
    assert (tmp_path / FAISS_NAME).read_bytes() == saved  # old file untouched
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".faiss-")]  # no temp litter
    store.close()

    encoder = CountingEncoder(embedder)
    reopened = Store(tmp_path, encoder.model_id, encoder.dim)
    # SQLite committed the new articles; the stale FAISS cache is rebuilt, not re-embedded.
    assert reopened.stats().passages == passages_before + 2 == reopened.index.ntotal
    assert encoder.embedded == 0
    hits = reopened.search_vectors(embedder.embed_queries(["storm Storm1 Brittany"]), 1)[0]
    assert "Storm1" in reopened.passages([hits[0][0]])[hits[0][0]].text


def test_crash_while_embedding_keeps_earlier_batches(
    tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(store_module, "BATCH_ARTICLES", 2)
    per_article = 3  # one passage and its two quotable sentences
    encoder = CountingEncoder(embedder, fail_after=2 * per_article)
    store = Store(tmp_path, encoder.model_id, encoder.dim)
    with pytest.raises(RuntimeError, match="simulated crash"):
        store.add_articles(_other_articles(5), encoder)
    assert store.stats().articles == 2 and store.index.ntotal == 2
    store.close()
    reopened = Store(tmp_path, embedder.model_id, embedder.dim)
    report = reopened.add_articles(_other_articles(5), CountingEncoder(embedder))
    # Each new article brings a passage and one new sentence; the other sentence is the
    # same in every article and was embedded (and cached) by the first batch.
    assert (report.unchanged, report.added, report.embedded) == (2, 3, 3 * (per_article - 1))


def test_corrupt_or_missing_faiss_file_is_rebuilt_from_sqlite(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path, embedder.model_id, embedder.dim)
    store.add_articles(_seed(), embedder)
    count = store.index.ntotal
    store.close()
    path = tmp_path / FAISS_NAME
    path.write_bytes(path.read_bytes()[:100])
    assert Store(tmp_path, embedder.model_id, embedder.dim).index.ntotal == count
    path.unlink()
    assert Store(tmp_path, embedder.model_id, embedder.dim).index.ntotal == count


def test_an_index_built_by_another_model_is_refused(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    Store(tmp_path, embedder.model_id, embedder.dim).add_articles(_seed(), embedder)
    with pytest.raises(ModelMismatchError, match="newsbot reindex"):
        Store(tmp_path, "sentence-transformers/some-other-model", embedder.dim)
    with pytest.raises(ModelMismatchError):
        Store(tmp_path, embedder.model_id, 768)


def test_reindex_swaps_in_a_new_store_and_reuses_embeddings(
    settings, embedder, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from index.corpus import ingest_paths, open_store, rebuild_store

    store = open_store(settings.data_dir, embedder)
    extra = tmp_path / "extra.json"
    extra.write_text(
        '{"title": "Extra", "text": "An ingested article about tides.", "source": "X"}'
    )
    ingest_paths(store, [settings.articles_dir, extra], embedder)
    assert store.stats().articles == 2
    encoder = CountingEncoder(embedder)
    first_seen = store.stories_added_since(0.0)
    new_store, report = rebuild_store(settings.data_dir, encoder, current=store)
    assert new_store.stories_added_since(0.0) == first_seen  # old stories don't look new
    assert report.articles == 2 and encoder.embedded == 0 and report.reused > 0
    assert new_store.stats().articles == 2  # the ingested article survived
    assert not (settings.data_dir / "store.new").exists()
    assert not (settings.data_dir / "store.old").exists()
    shutil.rmtree(settings.data_dir / "store")
    assert open_store(settings.data_dir, embedder).stats().articles == 0


# One news item in two wordings: copies of one story (also tests/test_pg_store.py).
ECB_TEXT = (
    "The European Central Bank raised its main interest rate by a quarter point on "
    "Thursday, its tenth consecutive increase, citing inflation that remains too high."
)
ECB_REWORDED = (
    "On Thursday the European Central Bank raised its main interest rate by a quarter "
    "point, its tenth consecutive increase, saying inflation remains too high."
)


def test_copies_of_one_story_share_a_story_and_distinct_stories_do_not(
    tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    original = Article(
        title="ECB raises rates",
        text=ECB_TEXT,
        source="Wire",
        date="2023-09-14",
        url="https://wire.example/ecb",
    )
    republished = Article(
        title="ECB raises rates again",
        text=ECB_TEXT + " ",
        source="Wire",
        date="2023-09-14",
        url="https://wire.example/ecb?id=2&amp",
    )
    reworded = Article(
        title="ECB lifts rates",
        text=ECB_REWORDED,
        source="Other",
        date="2023-09-15",
        url="https://other.example/ecb",
    )
    unrelated = Article(
        title="Storm",
        text=_other_articles(1)[0].text,
        source="Wire",
        date="2023-09-14",
        url="https://wire.example/storm",
    )
    store = Store(tmp_path, embedder.model_id, embedder.dim)
    store.add_articles([original], embedder)
    store.add_articles([republished, reworded, unrelated], embedder)
    ids = [a.id for a in (original, republished, reworded, unrelated)]
    assert len(set(ids)) == 4
    stories = {
        p.article.id: p.story_id
        for p in store.passages(list(range(1, store.stats().passages + 1))).values()
    }
    assert stories[republished.id] == stories[original.id] == original.id
    assert stories[reworded.id] == original.id
    assert stories[unrelated.id] == unrelated.id


def test_a_write_appends_to_the_faiss_log_and_readers_apply_only_that(
    tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    writer = Store(tmp_path, embedder.model_id, embedder.dim)
    writer.add_articles(_other_articles(12), embedder)
    snapshot = (tmp_path / FAISS_NAME).read_bytes()
    log = tmp_path / faiss_cache.LOG_NAME
    before = log.stat().st_size
    reader = Store(tmp_path, embedder.model_id, embedder.dim)
    served = reader.index
    writer.add_articles(_other_articles(13)[12:], embedder)
    # A write costs its own size (one passage: a vector and its id), not the index's.
    assert (tmp_path / FAISS_NAME).read_bytes() == snapshot
    assert 0 < log.stat().st_size - before < 4 * 384 + 200
    assert reader.refresh() is True
    assert reader.index is served and served.ntotal == writer.index.ntotal == 13  # in place
    # Once the log is a large share of the snapshot, the snapshot is rewritten.
    monkeypatch.setattr(faiss_cache, "COMPACT_MIN_BYTES", 0)
    writer.add_articles(_other_articles(30)[13:], embedder)
    assert log.stat().st_size == 0
    assert (tmp_path / FAISS_NAME).read_bytes() != snapshot
    assert reader.refresh() is True and reader.index.ntotal == 30


def test_a_torn_faiss_log_record_is_ignored_and_the_index_rebuilt(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path, embedder.model_id, embedder.dim)
    store.add_articles(_other_articles(8), embedder)
    store.add_articles(_other_articles(9)[8:], embedder)
    store.close()
    log = tmp_path / faiss_cache.LOG_NAME
    data = log.read_bytes()
    log.write_bytes(data[: len(data) - 100])  # a writer killed in the middle of appending
    encoder = CountingEncoder(embedder)
    reopened = Store(tmp_path, encoder.model_id, encoder.dim)
    assert reopened.index.ntotal == reopened.stats().passages == 9
    assert encoder.embedded == 0
    hits = reopened.search_vectors(embedder.embed_queries(["storm Storm8 Brittany"]), 1)[0]
    assert "Storm8" in reopened.passages([hits[0][0]])[hits[0][0]].text


def test_quotable_sentences_are_recorded_at_ingest_and_dropped_with_another_chunker(
    tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    from index.chunking import quote_spans
    from index.store_base import text_hash

    store = Store(tmp_path, embedder.model_id, embedder.dim)
    store.add_articles(_seed(), embedder)
    ids = sorted(store.passages(list(range(1, 200))))
    cut = {}
    for pid, passage in store.passages(ids).items():
        text = passage.article.text
        cut[pid] = [text_hash(text[a:b]) for a, b in quote_spans(text, passage.start, passage.end)]
    # A question reads the lists recorded at ingest: the same sentences, not re-cut.
    assert store._recorded_sentences(ids) == cut
    vectors = store.sentence_vectors(ids)
    assert set(vectors) == set(ids)
    assert all(len(vectors[pid]) == len(cut[pid]) for pid in ids)
    # Lists recorded by another chunker are never read: the sentences are cut again, and
    # the next write forgets the old lists and records today's.
    with store._transaction():
        store._set_meta("sentence_split", "another chunker")
    assert store._recorded_sentences(ids) == {}
    store._sentence_cache.clear()
    again = store.sentence_vectors(ids)
    assert all(np.array_equal(again[pid], vectors[pid]) for pid in ids)
    store.add_articles(_other_articles(1), embedder)
    assert store._recorded_sentences(ids) == {}  # old lists cleared, not trusted
    assert store._meta("sentence_split") == store_module.SENTENCE_SPLIT
    store.close()


def test_sentence_vectors_are_one_row_a_passage_kept_in_step_and_filled_for_older_stores(
    tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    from index.store import DB_NAME
    from index.store_base import blob_vectors

    store = Store(tmp_path, embedder.model_id, embedder.dim)
    store.add_articles(_seed() + _other_articles(2), embedder)
    ids = sorted(store.passages(list(range(1, 200))))
    recorded = store._recorded_sentences(ids)
    from_embeddings = {
        pid: blob_vectors(b"".join(store._stored_embeddings(hs)[h] for h in hs), embedder.dim)
        for pid, hs in recorded.items()
        if hs
    }
    # Each passage with sentences has its row, the same vectors in the same order as the
    # keyed rows of `embeddings`, and a question reads that row (not the keyed rows).
    rows = store._stored_sentence_vectors(ids)
    assert set(rows) == set(from_embeddings) and rows
    assert all(np.array_equal(rows[pid], from_embeddings[pid]) for pid in rows)
    looked_up: list[int] = []
    keyed = store._stored_embeddings
    store._stored_embeddings = lambda hashes: looked_up.append(len(hashes)) or keyed(hashes)  # type: ignore[method-assign]
    store._sentence_cache.clear()
    read = store.sentence_vectors(ids)
    assert looked_up == [] and all(np.array_equal(read[p], rows[p]) for p in rows)
    store._stored_embeddings = keyed  # type: ignore[method-assign]
    # Removing an article removes its passages' rows.
    storm = next(a for a in store.all_articles() if a.title == "Storm 0")
    storm_ids = [p.id for p in store.article_passages(storm.id)[0]]
    store.remove_articles([storm.id])
    assert store._stored_sentence_vectors(storm_ids) == {}
    store.close()
    # A schema-5 store (no such rows) gets them at its first open, read from `embeddings`.
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        left = db.execute("SELECT count(*) FROM sentence_vectors").fetchone()[0]
        db.execute("DELETE FROM sentence_vectors")
        db.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    reopened = Store(tmp_path, embedder.model_id, embedder.dim)
    again = reopened._stored_sentence_vectors(ids)
    assert len(again) == left
    assert all(np.array_equal(again[pid], rows[pid]) for pid in again)
    # Rows cut by another chunker are never read, and the next write clears them.
    with reopened._transaction():
        reopened._set_meta("sentence_split", "another chunker")
    assert reopened._stored_sentence_vectors(ids) == {}
    reopened.add_articles(_other_articles(3)[2:], embedder)
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        kept = {r[0] for r in db.execute("SELECT passage_id FROM sentence_vectors")}
    assert not kept & set(ids)
    reopened.close()


def test_a_passage_id_is_never_given_again_and_bm25_reads_the_new_lengths(
    tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    """BM25 remembers each passage's length by its id (index/lexical.py): a replaced
    article's new passages must not take the ids (and so the lengths) of the old ones."""
    import sqlite3

    from index.lexical import lexical_search
    from index.sqlite_schema import PASSAGE_ID_HIGH
    from index.store import DB_NAME

    store = Store(tmp_path, embedder.model_id, embedder.dim)
    short, last = _other_articles(2)
    store.add_articles([short, last], embedder)
    first_ids = sorted(store.passages(list(range(1, 50))))
    question = "Which storm hit the coast of Brittany?"
    store.lexical_search(question, 10)  # lengths remembered
    # The last article grows much longer: SQLite alone would number its new passage as the
    # one it replaces (the highest id, deleted in the same transaction).
    longer = Article(
        title=last.title,
        text=last.text + " Brittany" + " and the harbour walls gave way" * 40 + ".",
        source=last.source,
        date=last.date,
    )
    store.add_articles([longer], embedder)
    new_ids = {p.id for p in store.article_passages(longer.id)[0]}
    assert min(new_ids) > max(first_ids)
    assert store._meta(PASSAGE_ID_HIGH) == str(max(new_ids))
    # The remembered lengths give the scores FTS5's own bm25() gives.
    got = store.lexical_search(question, 10)
    assert got == lexical_search(store._db, question, 10)
    # Removing the article with the highest ids and adding one does not reuse them either.
    store.remove_articles([longer.id])
    store.add_articles(_other_articles(3)[2:], embedder)
    assert min(p.id for p in store.article_passages(_other_articles(3)[2].id)[0]) > max(new_ids)
    store.close()
    # A store of schema 6 (no high-water mark) gets it at its first open.
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        high = db.execute("SELECT max(id) FROM passages").fetchone()[0]
        db.execute("DELETE FROM meta WHERE key = ?", (PASSAGE_ID_HIGH,))
        db.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
    reopened = Store(tmp_path, embedder.model_id, embedder.dim)
    assert reopened._meta(PASSAGE_ID_HIGH) == str(high)
    reopened.close()


def test_a_passages_language_is_read_through_indexes_not_rows(  # type: ignore[no-untyped-def]
    tmp_path: Path, embedder
) -> None:
    """A question asks the language of ~400 passages: read from the passage -> article
    index and the articles' meta index, never from a passage or article row (mostly text,
    a page each: 400 random passages of 300k cost 14-17 ms that way, 1.1 ms this way)."""
    store = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    english = dataclasses.replace(_other_articles(1)[0], lang="en")
    french = Article(
        title="Tempête en Bretagne",
        text="Une tempête a frappé la côte bretonne. Des milliers de foyers sont privés "
        "d'électricité.",
        source="Test",
        date="2024-01-03",
        lang="fr",
    )
    store.add_articles([english, french], embedder)
    ids = {p.id: "en" for p in store.article_passages(english.id)[0]}
    ids |= {p.id: "fr" for p in store.article_passages(french.id)[0]}
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    try:
        assert store.passage_languages(sorted(ids)) == ids
    finally:
        store._db.set_trace_callback(None)
    (asked,) = [s for s in statements if "a.lang" in s]
    plan = [row[3] for row in store._db.execute("EXPLAIN QUERY PLAN " + asked)]
    assert len(plan) == 2 and all("USING COVERING INDEX" in step for step in plan), plan
    store.close()


def test_every_connection_keeps_a_larger_page_cache(  # type: ignore[no-untyped-def]
    tmp_path: Path, embedder
) -> None:
    """SQLite's default 2 MB cache lets a big store's inner B-tree pages go between a
    question's row reads (bench/scale.py: twice the read calls at 100k passages); each
    connection, the reader threads' too, asks for sqlite_schema.CACHE_KIB."""
    store = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    assert store._db.execute("PRAGMA cache_size").fetchone()[0] == -sqlite_schema.CACHE_KIB
    other: list[int] = []
    thread = threading.Thread(
        target=lambda: other.append(store._db.execute("PRAGMA cache_size").fetchone()[0])
    )
    thread.start()
    thread.join()
    assert other == [-sqlite_schema.CACHE_KIB]
    assert sqlite_schema.CACHE_KIB >= 16_384
    store.close()


def test_a_closed_store_lets_go_of_its_indexes(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    """close() drops the in-memory FAISS indexes (at 1M passages ~1.3 GB that glibc kept
    after a close: a reopened store doubled them); a closed store used again reads them
    back from its files."""
    store = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    store.add_articles(_other_articles(2), embedder)
    query = embedder.embed_queries(["What happened?"])
    before = store.search_vectors(query, 3)
    assert store.index.ntotal > 0
    store.close()
    assert store.index.ntotal == 0
    assert store.refresh() and store.search_vectors(query, 3) == before
    store.close()
