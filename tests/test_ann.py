"""The approximate (IVF) indexes a large store switches to, with the size threshold lowered
so a few real articles cross it: same answers as exact search, filters still exact, deletes
and reopening still work; and the second model's index kept on disk beside the e5 one."""

from __future__ import annotations

import threading
from pathlib import Path

import faiss
import numpy as np
import pytest

from index import faiss_cache, faiss_index
from index.articles import Article, load_articles
from index.store import Store
from index.usem import UseEncoder

ARTICLES = Path(__file__).resolve().parents[2] / "shared" / "bench" / "articles"
QUESTIONS = [
    "What gas was detected on Venus?",
    "Combien de tonnes de produits ont brûlé chez Lubrizol ?",
    "Where did the earthquake in the Philippines happen?",
    "Why did EasyJet stop selling peanuts?",
]


@pytest.fixture
def approximate(monkeypatch: pytest.MonkeyPatch) -> None:
    """IVF from 40 vectors on, sqrt(n) lists, one probed: a search that misses lists shows."""
    monkeypatch.setattr(faiss_cache, "ANN_MIN_VECTORS", 40)
    monkeypatch.setattr(faiss_cache, "LISTS_PER_ROOT", 1)
    monkeypatch.setattr(faiss_cache, "MIN_PROBES", 1)
    monkeypatch.setattr(faiss_cache, "PROBE_SHARE", 0.0)
    monkeypatch.setattr(faiss_cache, "COMPACT_MIN_PROBES", 1)
    monkeypatch.setattr(faiss_cache, "COMPACT_PROBE_SHARE", 0.0)


def _articles() -> list[Article]:
    return load_articles([ARTICLES]).articles


def test_large_store_goes_approximate_and_answers_like_exact(  # type: ignore[no-untyped-def]
    tmp_path: Path, embedder, approximate: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faiss_cache, "MIN_PROBES", 3)  # of 8 lists
    articles = _articles()
    store = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    store.add_articles(articles[:2], embedder)
    assert not faiss_cache.is_approximate(store.index)  # under the threshold: exact
    store.add_articles(articles[2:], embedder)
    assert faiss_cache.is_approximate(store.index) and store.index.nprobe == 3
    queries = embedder.embed_queries(QUESTIONS)
    found = store.search_vectors(queries, 1)
    exact = store.search_vectors(queries, 1, exact=True)
    assert [hits[0][0] for hits in found] == [hits[0][0] for hits in exact]
    # Vectors read back by id are the stored ones (the IVF keeps an id -> entry map).
    passages, vectors = store.article_passages(articles[3].id)
    ids = [p.id for p in passages]
    np.testing.assert_allclose(store.passage_vectors(ids), vectors, atol=1e-6)

    reopened = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    assert faiss_cache.is_approximate(reopened.index)
    assert reopened.index.ntotal == reopened.stats().passages
    assert reopened.search_vectors(queries, 1) == found
    # Deleting still works, in memory and through the log.
    removed = store.remove_articles([articles[3].id])
    assert removed == 1 and store.index.ntotal == store.stats().passages
    assert reopened.refresh() and reopened.index.ntotal == store.index.ntotal
    hits = reopened.search_vectors(vectors, 5)
    assert not {pid for row in hits for pid, _ in row} & set(ids)


def test_filtered_search_stays_exact_on_an_approximate_index(  # type: ignore[no-untyped-def]
    tmp_path: Path, embedder, approximate: None
) -> None:
    store = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    store.add_articles(_articles(), embedder)
    assert faiss_cache.is_approximate(store.index)
    among = list(range(1, store.stats().passages + 1, 3))
    queries = embedder.embed_queries(QUESTIONS)
    matrix = store.passage_vectors(among)
    for query, hits in zip(queries, store.search_vectors(queries, 5, among=among), strict=True):
        scores = matrix @ query
        best = np.argsort(-scores)[:5]
        assert [pid for pid, _ in hits] == [among[i] for i in best]
        np.testing.assert_allclose([s for _, s in hits], scores[best], atol=1e-5)


def test_second_model_index_is_read_from_its_files(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    articles = _articles()
    store = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    store.add_articles(articles, embedder)
    use = UseEncoder()
    question = use.embed_queries(["Quel gaz a été détecté sur Vénus ?"])[0]
    first = store.secondary_search(use, question, 3)
    store.close()
    # Reopened with SQLite's copy of those vectors gone: they come from the index files.
    reopened = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    reopened._db.execute("DELETE FROM secondary_embeddings")
    assert reopened.secondary_search(use, question, 3) == first
    top = reopened.passages([first[0][0]])[first[0][0]].article.id
    reopened.remove_articles([top])
    after = reopened.secondary_search(use, question, 3)
    assert top not in {p.article.id for p in reopened.passages([pid for pid, _ in after]).values()}
    again = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    assert again.secondary_search(use, question, 3) == after
    scores = again.secondary_scores(use, [pid for pid, _ in after], question)
    assert scores == pytest.approx(dict(after))


def test_second_model_index_goes_approximate(  # type: ignore[no-untyped-def]
    tmp_path: Path, embedder, approximate: None
) -> None:
    store = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    store.add_articles(_articles(), embedder)
    use = UseEncoder()
    index = store.secondary_vectors(use)
    assert isinstance(index, faiss_cache.faiss.IndexIVFScalarQuantizer)
    question = use.embed_queries(["Why did EasyJet stop selling peanuts?"])[0]
    best = store.secondary_search(use, question, 1)[0]
    keys, vectors = faiss_cache.stored_vectors(index, use.dim)
    assert len(keys) == index.ntotal == store.stats().passages
    top = int(keys[np.argmax(vectors @ question)])
    assert best[0] in {pid for pid, _ in store.secondary_search(use, question, 5)}
    assert store.secondary_scores(use, [best[0]], question)[best[0]] == pytest.approx(
        best[1], abs=0.02
    )
    every_list = faiss_cache.search_params(index, None, exact=True)
    assert top == index.search(question.reshape(1, -1), 1, params=every_list)[1][0][0]


def test_approximate_index_holds_the_stored_half_floats(  # type: ignore[no-untyped-def]
    tmp_path: Path, embedder, approximate: None
) -> None:
    """The IVF keeps 2 bytes a dimension (float32 would take 4), losing nothing: its
    vectors are exactly SQLite's float16 rows, so exact scores match them."""
    articles = _articles()
    store = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    store.add_articles(articles, embedder)
    assert faiss_cache.is_approximate(store.index)
    assert store.index.code_size == 2 * embedder.dim
    passages, stored = store.article_passages(articles[1].id)
    ids = [p.id for p in passages]
    assert np.array_equal(store.passage_vectors(ids), stored)
    query = embedder.embed_queries(QUESTIONS[:1])
    hits = dict(store.search_vectors(query, store.index.ntotal, exact=True)[0])
    np.testing.assert_allclose([hits[i] for i in ids], stored @ query[0], atol=1e-6)


def test_a_snapshot_is_read_without_a_copy_of_the_whole_file(tmp_path: Path) -> None:
    """A large index is read from its file in blocks: the Python side never holds the
    whole file (at 1M passages that copy alone was gigabytes of peak memory)."""
    import tracemalloc

    rng = np.random.default_rng(1)
    index = faiss_cache.new_index(384)  # half floats: 40k vectors, a 31 MB file
    index.add_with_ids(rng.standard_normal((40_000, 384)).astype(np.float32), np.arange(40_000))
    path = tmp_path / faiss_cache.SNAPSHOT_NAME
    faiss_cache.write_snapshot(path, index, 3)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        loaded, generation = faiss_cache.read_snapshot(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (generation, loaded.ntotal) == (3, 40_000)
    assert peak < size / 4


def test_absent_from_matches_set_difference() -> None:
    rng = np.random.default_rng(2)
    held = rng.integers(0, 1 << 60, 5_000)
    current = np.concatenate([held[:4_000], rng.integers(0, 1 << 60, 700)])
    rng.shuffle(current)
    gone = held[faiss_cache.absent_from(held, np.sort(current))]
    new = current[faiss_cache.absent_from(current, np.sort(held))]
    assert set(gone.tolist()) == set(held.tolist()) - set(current.tolist())
    assert set(new.tolist()) == set(current.tolist()) - set(held.tolist())
    assert faiss_cache.absent_from(held, np.zeros(0, dtype=np.int64)).all()
    assert not faiss_cache.absent_from(np.zeros(0, dtype=np.int64), held).any()


def test_probes_follow_the_setting_not_the_stored_index(  # type: ignore[no-untyped-def]
    tmp_path: Path, embedder, approximate: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index saved with one probe share is searched with today's: visiting every list
    finds what an exact search finds, even though the file says one list."""
    store = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    store.add_articles(_articles(), embedder)
    assert faiss_cache.is_approximate(store.index) and store.index.nprobe == 1
    store.close()
    monkeypatch.setattr(faiss_cache, "PROBE_SHARE", 1.0)
    reopened = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    assert reopened.index.nprobe == 1  # as stored
    queries = embedder.embed_queries(QUESTIONS)
    n = reopened.index.ntotal
    assert reopened.search_vectors(queries, n) == reopened.search_vectors(queries, n, exact=True)


def test_the_exact_index_holds_half_floats_and_reads_a_float32_one_as_such(
    tmp_path: Path,
) -> None:
    """Vectors are float16 in SQLite, so the exact index keeps them as half floats: the same
    scores as float32 in half the memory. A float32 snapshot of an older store is read as
    one, its ids, vectors and search results unchanged."""
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((500, 384)).astype(np.float16).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors.astype(np.float16).astype(np.float32)  # as stored_precision gives them
    ids = np.arange(10, 510, dtype=np.int64)
    old = faiss.IndexIDMap2(faiss.IndexFlatIP(384))
    old.add_with_ids(vectors, ids)
    cache = faiss_cache.FaissCache(tmp_path, 384)
    faiss_cache.write_snapshot(cache.snapshot, old, 7)
    read = cache.load()
    loaded = read.index
    assert read.generation == 7 and cache.outdated
    assert isinstance(faiss.downcast_index(loaded.index), faiss.IndexScalarQuantizer)
    assert isinstance(
        faiss.downcast_index(faiss_cache.new_index(384).index), faiss.IndexScalarQuantizer
    )
    got_ids, got = faiss_cache.stored_vectors(loaded, 384)
    assert np.array_equal(got_ids, ids) and np.array_equal(got, vectors)
    query = vectors[:3] + 0.01
    assert np.array_equal(loaded.search(query, 20)[1], old.search(query, 20)[1])
    np.testing.assert_allclose(loaded.search(query, 20)[0], old.search(query, 20)[0], atol=1e-6)
    assert len(faiss.serialize_index(loaded)) < 0.6 * len(faiss.serialize_index(old))
    # The next write rewrites the snapshot as half floats rather than appending to the log.
    before = cache.snapshot.stat().st_size
    loaded.add_with_ids(vectors[:1], np.array([9_999]))
    cache.append(loaded, 8, [], [9_999], vectors[:1])
    assert not cache.outdated and cache.snapshot.stat().st_size < 0.6 * before
    reread = faiss_cache.FaissCache(tmp_path, 384).load()
    assert reread.generation == 8 and reread.index.ntotal == 501


def test_lists_grow_with_the_index_and_an_outgrown_one_is_retrained(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four times sqrt(n) lists, a sixteenth probed but at least 256 (bench/scale.py: the
    recall of 1/8 of sqrt(n) lists at half the scan); an index trained when it was a
    quarter of its size (half its lists) is retrained by the next write, keeping every
    vector."""
    assert faiss_cache.lists_for(1_000_000) == 4096
    assert faiss_cache.lists_for(200_000) == 2048
    monkeypatch.setattr(faiss_cache, "ANN_MIN_VECTORS", 1000)
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((3000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(100, 3100, dtype=np.int64)
    small = faiss.index_factory(16, "IVF8,SQfp16", faiss.METRIC_INNER_PRODUCT)
    small.by_residual = False
    small.train(vectors[:800])
    small.set_direct_map_type(faiss.DirectMap.Hashtable)
    small.add_with_ids(vectors, ids)
    grown = faiss_cache.resized(small, 16)
    assert grown is not None and grown.nlist == faiss_cache.lists_for(3000) == 256
    assert faiss_cache.probes(grown) == 256  # every list of so small an index
    e5_like = faiss.index_factory(16, "IVF4096,SQfp16", faiss.METRIC_INNER_PRODUCT)
    use_like = faiss.index_factory(16, "IVF4096,SQ8", faiss.METRIC_INNER_PRODUCT)
    assert (faiss_cache.probes(e5_like), faiss_cache.probes(use_like)) == (256, 128)
    kept, held = faiss_cache.stored_vectors(grown, 16)
    assert sorted(kept.tolist()) == ids.tolist()
    np.testing.assert_allclose(held[np.argsort(kept)], vectors, atol=1e-3)
    assert faiss_cache.resized(grown, 16) is None  # trained for its size: kept


def test_questions_are_answered_while_a_grown_index_is_trained_again(  # type: ignore[no-untyped-def]
    tmp_path: Path, embedder, approximate: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training a grown IVF again takes ~75 s (e5) and ~90 s (USE) at 1M passages: the
    writer does it outside the locks searches take, so a question asked meanwhile is
    answered from the index as it stands, with the write already in it."""
    articles = _articles()
    use = UseEncoder()
    store = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    store.add_articles(articles[:-1], embedder)
    store.secondary_vectors(use)
    assert faiss_cache.is_approximate(store.index)
    training, answered = threading.Event(), threading.Event()
    trained_at_all: list[int] = []

    def slow_resized(index: faiss.Index, dim: int, compact: bool = False) -> faiss.Index:
        trained_at_all.append(dim)
        training.set()
        assert answered.wait(30), "no question was answered during the training"
        answered.clear()
        return faiss_cache.index_for(*faiss_cache.stored_vectors(index, dim), dim, compact)

    monkeypatch.setattr(faiss_index, "resized", slow_resized)
    e5_question = embedder.embed_queries([QUESTIONS[3]])
    use_question = use.embed_queries([QUESTIONS[3]])[0]
    writer = threading.Thread(
        target=lambda: (store.add_articles(articles[-1:], embedder), store.secondary_vectors(use))
    )
    writer.start()
    for ask in (
        lambda: store.search_vectors(e5_question, 3),
        lambda: store.secondary_search(use, use_question, 3),
    ):
        assert training.wait(30)
        training.clear()
        found: list[object] = []
        asking = threading.Thread(target=lambda: found.append(ask()))  # noqa: B023
        asking.start()
        asking.join(20)
        assert found and found[0], "the question waited for the training"
        answered.set()
    writer.join(60)
    assert not writer.is_alive() and trained_at_all == [embedder.dim, use.dim]
    newest = {p.id for p in store.article_passages(articles[-1].id)[0]}
    assert newest and store.index.ntotal == store.stats().passages
    assert store.secondary_vectors(use).ntotal == store.stats().passages
