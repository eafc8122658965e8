"""The two index backends side by side: time per question, same answers.

    NEWSBOT_DATABASE_URL=postgresql://… python -m bench.backends [--set NAME] [--queries N]

Opens one public set's index on SQLite + FAISS and its copy on PostgreSQL + pgvector (as
`newsbot bench quality` builds them), ranks the same N queries on each with the product's
retriever (e5 + BM25 + USE + best sentence, no answer step), alternating the backends
three times, and prints the median milliseconds per question and how many top-1 passages
differ (the same article ids are expected).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from bench.quality import BENCH, CachedQueries, open_set_store
from bench.retrieval import documents, load_queries, rank_queries
from bot.config import Settings
from index.embedding import embedder_for


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", default="xquad_en-de")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    on_pg = Settings()
    if on_pg.database_url is None:
        print("set NEWSBOT_DATABASE_URL (python -m bench.postgres_server starts one)")
        return 2
    on_sqlite = on_pg.model_copy(update={"database_url": None})
    embedder = embedder_for(on_pg)
    queries = CachedQueries(embedder, on_pg.cache_dir / "bench" / "queries.sqlite3")
    texts = [str(q["text"]) for q in load_queries(BENCH / "dev" / args.set / "queries.jsonl")]
    texts = texts[: args.queries]
    stores = {
        "sqlite": open_set_store("dev", args.set, embedder, on_sqlite),
        "postgres": open_set_store("dev", args.set, embedder, on_pg),
    }
    times: dict[str, list[float]] = {name: [] for name in stores}
    ranked: dict[str, list[list[str]]] = {}
    for store in stores.values():  # warm: caches, prepared statements
        rank_queries(store, queries, embedder, on_pg, texts[:10])
    for _ in range(3):
        for name, store in stores.items():
            started = time.perf_counter()
            retrievals = rank_queries(store, queries, embedder, on_pg, texts)
            times[name].append((time.perf_counter() - started) * 1000 / len(texts))
            ranked[name] = [documents(r)[:1] for r in retrievals]
    differ = sum(a != b for a, b in zip(ranked["sqlite"], ranked["postgres"], strict=True))
    print(f"dev {args.set}, {len(texts)} queries, median of 3 runs\n")
    print("| backend | ms per question | passages |\n|---|---|---|")
    for name, store in stores.items():
        print(f"| {name} | {statistics.median(times[name]):.1f} | {store.stats().passages} |")
        store.close()
    print(f"\ntop-1 article differs on {differ} of {len(texts)} queries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
