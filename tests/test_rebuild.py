"""Writes while a reindex builds are never lost; readers never rebuild FAISS in a writer's
way; an interrupted reindex leaves nothing behind."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bot.engine import Engine
from index.articles import Article
from index.corpus import open_store, rebuild_store, store_dir
from index.store_base import StoreRetired


def _article(i: int, topic: str = "storm") -> Article:
    return Article(
        title=f"{topic.title()} {i}",
        text=f"A {topic} named {topic.title()}{i} hit the coast of Brittany on day {i}. "
        "Thousands of homes lost power and trains were cancelled for two days.",
        source="Test",
        date=f"2024-01-{i % 28 + 1:02d}",
        url=f"https://news.example/{topic}/{i}",
    )


def _rebuild_paused(data_dir: Path, embedder, current=None):  # type: ignore[no-untyped-def]
    """Start a rebuild in a thread that stops after its first batch until released."""
    built = threading.Event()
    release = threading.Event()
    result: dict[str, object] = {}

    def on_progress(done: int, total: int) -> None:
        built.set()
        assert release.wait(60)

    def run() -> None:
        try:
            result["store"], result["report"] = rebuild_store(
                data_dir, embedder, current=current, on_progress=on_progress
            )
        except BaseException as exc:  # reported to the test
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    assert built.wait(120)
    return thread, release, result


def test_articles_written_during_a_rebuild_are_in_the_rebuilt_index(settings, embedder) -> None:  # type: ignore[no-untyped-def]
    # The writer is another Store object on the same data dir: as another process would be.
    writer = open_store(settings.data_dir, embedder)
    writer.add_articles([_article(i) for i in range(3)], embedder)
    thread, release, result = _rebuild_paused(settings.data_dir, embedder)
    added = writer.add_articles([_article(10), _article(11, "flood")], embedder)
    changed = Article(**{**_article(1).__dict__, "text": _article(1).text + " Updated."})
    writer.add_articles([changed], embedder)
    assert writer.remove_articles([_article(2).id]) == 1
    assert added.added == 2
    release.set()
    thread.join()
    assert "error" not in result
    new = result["store"]
    ids = new.article_ids()  # type: ignore[attr-defined]
    assert {_article(10).id, _article(11, "flood").id, _article(0).id} <= ids
    assert _article(2).id not in ids
    assert new.article(_article(1).id).text.endswith("Updated.")  # type: ignore[attr-defined]
    # FAISS holds the carried-over passages too
    assert new.index.ntotal == new.stats().passages  # type: ignore[attr-defined]
    # The old writer learns its store was replaced: its next write is refused, not lost.
    assert writer.retired
    with pytest.raises(StoreRetired):
        writer.add_articles([_article(12)], embedder)


def test_an_engine_follows_a_reindex_made_by_another_process(settings, embedder) -> None:  # type: ignore[no-untyped-def]
    engine = Engine(settings, embedder=embedder)
    engine.add_articles([_article(0)])
    before = engine.store
    # `newsbot reindex` in another process: its own store objects.
    new, _ = rebuild_store(settings.data_dir, embedder)
    new.close()
    assert before.retired
    report = engine.add_articles([_article(5)])  # goes to the new store
    assert report.added == 1 and engine.store is not before
    reopened = open_store(settings.data_dir, embedder)
    assert _article(5).id in reopened.article_ids()
    answers = engine.ask(["Which storm hit the coast of Brittany on day 5?"])
    assert answers[0].answered


def test_a_writer_waiting_for_the_swap_writes_to_the_new_store(settings, embedder) -> None:  # type: ignore[no-untyped-def]
    engine = Engine(settings, embedder=embedder)
    engine.add_articles([_article(0)])
    thread, release, result = _rebuild_paused(settings.data_dir, embedder)
    # Hold the rebuild at its catch-up: take the writers' lock the way it does.
    done = threading.Event()

    def ingest() -> None:
        engine.add_articles([_article(7)])
        done.set()

    with open_store(settings.data_dir, embedder).exclusive():
        writer = threading.Thread(target=ingest)
        writer.start()
        release.set()
        time.sleep(0.5)
        assert not done.is_set()  # both wait for the lock
    thread.join()
    writer.join()
    assert "error" not in result and done.is_set()
    final = open_store(settings.data_dir, embedder)
    assert _article(7).id in final.article_ids()
    assert _article(0).id in final.article_ids()


def test_a_reader_does_not_rebuild_faiss_while_a_writer_holds_the_lock(settings, embedder) -> None:  # type: ignore[no-untyped-def]
    writer = open_store(settings.data_dir, embedder)
    writer.add_articles([_article(0)], embedder)
    reader = open_store(settings.data_dir, embedder)
    served = reader.index
    with writer.writer():
        # The moment between a writer's SQLite commit and its FAISS write.
        with writer._transaction():
            writer._next_generation(time.time())
        assert reader.refresh() is False
        assert reader.index is served  # kept serving; did not rebuild
    # No writer now and the file is still behind (the writer died there): rebuild it.
    assert reader.refresh() is True
    assert reader.index is not served
    assert reader.index.ntotal == reader.stats().passages


def test_a_killed_reindex_leaves_nothing_behind(settings, embedder) -> None:  # type: ignore[no-untyped-def]
    store = open_store(settings.data_dir, embedder)
    store.add_articles([_article(0)], embedder)
    building = settings.data_dir / "store.new"
    building.mkdir()
    (building / "newsbot.sqlite3").write_bytes(b"half written")
    (store_dir(settings.data_dir) / ".faiss-999999999-abc").write_bytes(b"partial")
    reopened = open_store(settings.data_dir, embedder)
    assert not building.exists()
    assert not list(store_dir(settings.data_dir).glob(".faiss-*"))
    assert _article(0).id in reopened.article_ids()


def test_a_failed_reindex_removes_its_half_built_store(settings, embedder) -> None:  # type: ignore[no-untyped-def]
    store = open_store(settings.data_dir, embedder)
    store.add_articles([_article(0)], embedder)

    def stop(done: int, total: int) -> None:
        raise RuntimeError("stopped")

    with pytest.raises(RuntimeError):
        rebuild_store(settings.data_dir, embedder, current=store, on_progress=stop)
    assert not (settings.data_dir / "store.new").exists()
    assert not store.retired
    store.add_articles([_article(1)], embedder)
    assert store.stats().articles >= 2


def test_a_passage_written_elsewhere_since_the_load_has_its_vector(settings, embedder) -> None:  # type: ignore[no-untyped-def]
    """The lexical search reads SQLite, so it finds passages a poll in another process
    (another replica) wrote after this process loaded its FAISS cache: their vectors come
    from SQLite instead of failing the question."""
    reader = open_store(settings.data_dir, embedder)
    writer = open_store(settings.data_dir, embedder)  # the other process's own store
    writer.add_articles([_article(7)], embedder)
    new_ids = writer.passage_ids_matching(None, None, [])
    try:
        assert reader.index.ntotal == 0 and len(new_ids) >= 1  # no refresh: the cache is behind
        vectors = reader.passage_vectors(new_ids)
        assert vectors.shape == (len(new_ids), reader.dim)
        np.testing.assert_allclose(vectors, writer.passage_vectors(new_ids), atol=1e-6)
    finally:
        reader.close()
        writer.close()
