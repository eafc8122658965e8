"""The PostgreSQL scale bench (bench/pg_scale.py) at 2,000 passages: its exact search is
exact, its approximate variants report a recall, a month's query is pruned to that month's
partition, and a replica serves the same answers and sees new passages."""

from __future__ import annotations

import numpy as np
import pytest

from bench.pg_scale import (
    FILTER_MONTH,
    Corpus,
    Row,
    connect,
    load_tables,
    month_variants,
    partition_name,
    replica_figures,
    synthetic_corpus,
    vector_variants,
)
from tests.postgres import PostgresServer

SIZE = 2000


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    """Vectors mixed from a random basis that shares one direction (as e5's do)."""
    rng = np.random.default_rng(3)
    basis = rng.standard_normal((64, 384)).astype(np.float32) + 2 * rng.standard_normal(384)
    basis /= np.linalg.norm(basis, axis=1, keepdims=True)
    queries = basis[:12] + 0.3 * rng.standard_normal((12, 384)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return synthetic_corpus(SIZE, basis, queries.astype(np.float32))


def by_variant(rows: list[Row]) -> dict[str, Row]:
    return {row.variant: row for row in rows}


def test_exact_search_is_exact_and_each_index_is_the_one_measured(
    database_url: str, corpus: Corpus
) -> None:
    with connect(database_url) as db:
        load_tables(db, corpus)
        rows = by_variant(vector_variants(db, corpus, repeats=1))
    assert rows["exact, vector (float32)"].recall == 1.0
    assert rows["exact, vector (float32)"].plan == "Seq Scan items_vector"
    assert rows["HNSW, halfvec, ef_search 200"].plan == "Index Scan items_half_hnsw"
    assert rows["HNSW, halfvec, ef_search 200"].recall >= 0.9
    assert rows["HNSW, vector, ef_search 40"].index_bytes
    for label in ("sign", "centred"):
        reranked = rows[f"binary quantised ({label}), top 40 re-ranked"]
        assert 0.0 < reranked.recall <= 1.0
        assert reranked.plan == f"Index Scan items_half_bq_{label}"


def test_a_months_query_scans_only_that_months_partition(database_url: str, corpus: Corpus) -> None:
    with connect(database_url) as db:
        load_tables(db, corpus)
        rows, pruned = month_variants(db, corpus, repeats=1)
    assert pruned == [f"Seq Scan {partition_name(FILTER_MONTH)}"]
    month = by_variant(rows)
    assert month["exact, partitioned by month"].recall == 1.0
    assert month["exact, unpartitioned, B-tree on the date"].recall == 1.0
    assert "items_half_hnsw" in month["HNSW on all, filtered, iterative_scan strict_order"].plan


def test_a_replica_answers_alike_and_sees_a_new_passage(
    postgres: PostgresServer, postgres_replica: PostgresServer, corpus: Corpus
) -> None:
    url = postgres.new_database()
    with connect(url) as db:
        load_tables(db, corpus)
    replica_url = postgres_replica.url(url.rsplit("/", 1)[1])
    figures = replica_figures(url, replica_url, corpus, repeats=1, trials=2)
    assert figures.same_results
    assert figures.primary.recall == figures.replica.recall
    assert [len(times) for times in figures.lag_ms.values()] == [2, 2]
    assert all(ms >= 0 for times in figures.lag_ms.values() for ms in times)
