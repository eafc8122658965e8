"""A reindex of the PostgreSQL index builds beside (a fresh schema) and swaps atomically:
every PgStore reads the old index until the swap and the new one after, never a mix.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pydantic import SecretStr

from bot.config import Settings
from bot.engine import Engine
from index import pg_schema
from index.chunking import passage_embedding_text
from index.corpus import RebuildInProgress, open_database_index, reindex_in_database
from index.pg_store import PgStore
from index.store_base import ModelMismatchError, StoreRetired
from tests.test_store import _other_articles

QUESTION = "who denied signing an accord?"


def _history(store: PgStore) -> dict[str, tuple[float, str]]:
    with store._cursor() as cursor:
        cursor.execute("SELECT id, added_at, story_id FROM articles")
        return {str(i): (float(t), str(s)) for i, t, s in cursor.fetchall()}


def _schemas(url: str) -> set[str]:
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'newsbot%'")
        return {str(r[0]) for r in rows.fetchall()}


def test_readers_see_the_old_index_during_a_reindex_and_the_new_one_after(
    database_url: str, data_dir: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    writer = PgStore(database_url, embedder.model_id, embedder.dim)
    writer.add_articles(_other_articles(3), embedder)
    old_ids = writer.article_ids()
    with writer._transaction() as cursor:  # a story an alert already told: it must stay
        cursor.execute("UPDATE articles SET story_id = 'told-story'")
    before = _history(writer)
    reader = PgStore(database_url, embedder.model_id, embedder.dim)
    seen: list[tuple[bool, set[str], set[str]]] = []

    def mid_build(done: int, total: int) -> None:
        opened = PgStore(database_url, embedder.model_id, embedder.dim)
        seen.append((reader.retired, reader.article_ids(), opened.article_ids()))
        opened.close()

    reindex_in_database(writer, data_dir, embedder, on_progress=mid_build)
    # articles/ holds the seed article, which the old index does not: only the new one has it
    assert seen and all(not retired for retired, _, _ in seen)
    assert all(ids == old_ids and opened == old_ids for _, ids, opened in seen)
    assert reader.article_ids() == old_ids  # until it reopens, as the Engine does
    assert reader.retired and writer.retired
    with pytest.raises(StoreRetired):  # a write that waited goes to the new index instead
        writer.add_articles(_other_articles(4)[3:], embedder)
    after = PgStore(database_url, embedder.model_id, embedder.dim)
    assert after.schema == "newsbot_index_1" and after.article_ids() > old_ids
    assert len(after.article_ids()) == 4 and not after.retired
    history = _history(after)
    assert {i: history[i] for i in old_ids} == before  # first-indexed time and story kept
    for store in (writer, reader, after):
        store.close()


def test_a_write_made_during_the_build_is_in_the_new_index(
    database_url: str, data_dir: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    store = PgStore(database_url, embedder.model_id, embedder.dim)
    store.add_articles(_other_articles(2), embedder)
    late = _other_articles(5)[4]
    writes: list[int] = []

    def write_meanwhile(done: int, total: int) -> None:
        if not writes:
            writes.append(store.add_articles([late], embedder).added)

    reindex_in_database(store, data_dir, embedder, on_progress=write_meanwhile)
    assert writes == [1]
    after = PgStore(database_url, embedder.model_id, embedder.dim)
    assert late.id in after.article_ids() and len(after.article_ids()) == 4
    store.close()
    after.close()


def test_the_retired_index_is_dropped_at_the_next_reindex(
    database_url: str, data_dir: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    """Readers still on the old index finish their question: it is dropped by the next
    reindex, not by the swap."""
    store = PgStore(database_url, embedder.model_id, embedder.dim)
    store.add_articles(_other_articles(2), embedder)
    store.close()
    for built in (1, 2, 3):
        current = PgStore(database_url, embedder.model_id, embedder.dim)
        reindex_in_database(current, data_dir, embedder)
        current.close()
        kept = {f"newsbot_index_{n}" for n in (built - 1, built) if n > 0}
        assert _schemas(database_url) == kept
        with psycopg.connect(database_url) as db:
            row = db.execute("SELECT to_regclass('public.articles')").fetchone()
            versions = db.execute("SELECT component FROM public.schema_versions").fetchall()
        # the first index (in public) is retired by the first reindex, dropped by the second
        assert row is not None and (row[0] is None) == (built > 1)
        assert (("index",) in versions) == (built == 1)
    final = PgStore(database_url, embedder.model_id, embedder.dim)
    assert final.schema == "newsbot_index_3" and len(final.article_ids()) == 3
    final.close()


def test_the_engine_answers_from_the_new_schema_after_a_reindex(
    settings: Settings, database_url: str, embedder
) -> None:  # type: ignore[no-untyped-def]
    on_pg = settings.model_copy(update={"database_url": SecretStr(database_url)})
    engine = Engine(on_pg, embedder)
    other = Engine(on_pg, embedder)  # another replica, opened before the reindex
    engine.ingest([on_pg.data_dir / "articles"])
    old = other.store
    report = engine.reindex()
    assert report.embedded == 0 and report.reused > 0
    for replica in (engine, other):
        (answer,) = replica.ask([QUESTION])
        assert answer.answered and "Aucun accord" in answer.citations[0].quote
        assert isinstance(replica.store, PgStore) and replica.store.schema == "newsbot_index_1"
    assert other.store is not old
    engine.close()
    other.close()


def test_a_worker_moves_to_the_new_index_after_a_reindex(
    database_url: str, data_dir: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    """A running `newsbot worker` holds a store opened before the reindex: the passages
    ingested for workers after the swap wait in the new index, where it must look."""
    from index.pg_worker import pending_passages, run_worker

    old = PgStore(database_url, embedder.model_id, embedder.dim)
    old.add_articles(_other_articles(2), embedder)
    current = PgStore(database_url, embedder.model_id, embedder.dim)
    reindex_in_database(current, data_dir, embedder)
    current.close()
    new = PgStore(database_url, embedder.model_id, embedder.dim)
    report = new.add_articles(_other_articles(4)[2:], embedder, defer=True)
    assert report.passages > 0 and pending_passages(new) == report.passages

    def reopen() -> PgStore:
        return PgStore(database_url, embedder.model_id, embedder.dim)

    assert old.retired
    assert run_worker(old, embedder, once=True, reopen=reopen) == report.passages
    assert pending_passages(new) == 0
    for store in (old, new):
        store.close()


@pytest.fixture(scope="module")
def fp32(cache_dir: Path):  # type: ignore[no-untyped-def]
    """A second real model: the bundled e5 on the fp32 ONNX backend (NEWSBOT_EMBEDDER=onnx-fp32),
    whose model id and vectors differ from the default int8 one's (`embedder`)."""
    from index.embedding import get_embedder

    return get_embedder("bundled", cache_dir, backend="onnx-fp32")


def _stored_vectors(store: PgStore, article_id: str) -> tuple[list[str], np.ndarray]:
    passages, vectors = store.article_passages(article_id)
    return [passage_embedding_text(p.heading, p.text) for p in passages], vectors


def test_a_reindex_with_another_model_converts_the_index_for_every_process(
    settings: Settings, database_url: str, data_dir: Path, embedder, fp32
) -> None:  # type: ignore[no-untyped-def]
    """NEWSBOT_EMBEDDER changed (int8 → fp32): the reindex builds the new schema with the
    new model (every passage embedded again), while the processes on the old model go on
    answering from the old one; after the swap, the new model's processes open the new
    index and an old one is refused on its next question, with the message that says why."""
    int8_settings = settings.model_copy(update={"database_url": SecretStr(database_url)})
    old = Engine(int8_settings, embedder)  # a replica still configured with the old model
    old.ingest([data_dir / "articles"])
    old.add_articles(_other_articles(2))
    with pytest.raises(ModelMismatchError, match="newsbot reindex"):
        PgStore(database_url, fp32.model_id, fp32.dim)  # not converted yet: refused
    current = open_database_index(database_url, fp32)
    assert current.model_id == embedder.model_id  # read as the old model's index
    late = _other_articles(4)[3]
    during: list[tuple[bool, int]] = []

    def mid_build(done: int, total: int) -> None:
        if during:
            return
        (answer,) = old.ask([QUESTION])  # the old model's replica answers from the old index
        reading = open_database_index(database_url, fp32)  # the old index opens for reading
        during.append((answer.answered, len(reading.all_articles())))
        reading.close()
        with pytest.raises(ModelMismatchError):  # the new model opens nothing before the swap
            PgStore(database_url, fp32.model_id, fp32.dim)
        old.add_articles([late])  # a write meanwhile, embedded by the old model

    report = reindex_in_database(current, data_dir, fp32, on_progress=mid_build)
    current.close()
    assert during == [(True, 3)]
    assert report.reused == 0 and report.embedded > 0  # no vector of the old model reused

    new = Engine(int8_settings, fp32)
    store = new.store
    assert isinstance(store, PgStore) and store.schema == "newsbot_index_1"
    assert store.stats().model == fp32.model_id and store.model_id == fp32.model_id
    assert late.id in store.article_ids() and len(store.article_ids()) == 4
    (answer,) = new.ask([QUESTION])
    assert answer.answered and "Aucun accord" in answer.citations[0].quote
    for article_id in store.article_ids():  # every vector is the new model's, none the old's
        texts, vectors = _stored_vectors(store, article_id)
        np.testing.assert_allclose(vectors, fp32.embed_passages(texts), atol=2e-3)
        assert np.abs(vectors - embedder.embed_passages(texts)).max() > 5e-3

    for _ in range(2):  # the old model's replica: refused, each time, with the reason
        with pytest.raises(ModelMismatchError, match="newsbot reindex") as refused:
            old.ask([QUESTION])
        assert embedder.model_id in str(refused.value) and fp32.model_id in str(refused.value)
    with pytest.raises(ModelMismatchError):  # nor does it write the old model's vectors
        old.add_articles(_other_articles(5)[4:])
    with pytest.raises(ModelMismatchError):  # nor convert the index back (an admin /reindex)
        old.reindex()
    assert len(store.article_ids()) == 4
    new.close()
    old.close()


def test_newsbot_reindex_converts_the_database_index_to_a_new_embedder(
    data_dir: Path,
    cache_dir: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On PostgreSQL as on SQLite: a changed NEWSBOT_EMBEDDER is refused by every command
    but `newsbot reindex`, which converts the index; then the old setting is refused."""
    from bot.cli import main

    for name, value in (
        ("NEWSBOT_DATA_DIR", str(data_dir)),
        ("NEWSBOT_CACHE_DIR", str(cache_dir)),
        ("NEWSBOT_DATABASE_URL", database_url),
        ("NEWSBOT_EMBEDDER", "onnx-int8"),
    ):
        monkeypatch.setenv(name, value)
    assert main(["ingest", str(data_dir / "articles")]) == 0
    monkeypatch.setenv("NEWSBOT_EMBEDDER", "onnx-fp32")
    capsys.readouterr()
    for command in (["ask", QUESTION], ["ingest", str(data_dir / "articles")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "onnx-int8" in err and "run `newsbot reindex` to convert the index" in err
    assert main(["reindex"]) == 0
    out = capsys.readouterr().out  # every passage embedded again, no old vector reused
    assert "reindexed 1 articles" in out and "0 cached vectors" in out and "(0 embedded" not in out
    assert main(["stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert stats["model"].endswith(":onnx-fp32") and stats["articles"] == 1
    assert main(["ask", "--json", QUESTION]) == 0
    answer = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert answer["answered"] and "Aucun accord" in answer["citations"][0]["quote"]
    monkeypatch.setenv("NEWSBOT_EMBEDDER", "onnx-int8")  # a process left on the old setting
    assert main(["ask", QUESTION]) == 2
    err = capsys.readouterr().err
    assert "onnx-fp32" in err and "NEWSBOT_EMBEDDER back" in err


def test_a_second_reindex_is_refused_while_one_runs_elsewhere(
    database_url: str, data_dir: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    """One reindex at a time across every machine: while another process holds the rebuild
    lock, a reindex is refused at once (as on SQLite), not queued behind it."""
    store = PgStore(database_url, embedder.model_id, embedder.dim)
    store.add_articles(_other_articles(2), embedder)
    outcome: list[BaseException | None] = []

    def reindex() -> None:
        try:
            reindex_in_database(store, data_dir, embedder)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    with psycopg.connect(database_url, autocommit=True) as other:  # a reindex elsewhere
        other.execute("SELECT pg_advisory_lock(%s)", (pg_schema.REBUILD_LOCK,))
        worker = threading.Thread(target=reindex, daemon=True)
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive(), "the second reindex waited instead of being refused"
        assert isinstance(outcome[0], RebuildInProgress)
        assert "already running" in str(outcome[0])
    assert _schemas(database_url) == set()  # nothing was built
    reindex_in_database(store, data_dir, embedder)  # once the other is done, it runs
    assert _schemas(database_url) == {"newsbot_index_1"}
    store.close()
