"""Retrieval benchmark: index a set's corpus with the product's pipeline, rank its queries.

Writes the run format of ../shared/bench/README.md: one line per query,
{"qid", "ranked_ids"} with the 10 best document ids. Long documents are chunked by the
product's chunker; a document's rank is that of its best passage.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bot.config import Settings
from bot.engine import build_retriever
from index.articles import Article, article_from_record
from index.embedding import Embedder
from index.search import Retrieval
from index.store import Store


def load_corpus(path: Path) -> list[Article]:
    """corpus.jsonl records become articles whose id is the record's id."""
    articles = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            record["id"] = str(record["id"])
            articles.append(article_from_record(record))
    return articles


def load_queries(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


DEPTH = 10


def documents(retrieval: Retrieval, depth: int = DEPTH) -> list[str]:
    """Distinct article ids in rank order: a document's rank is its best passage's."""
    ids: list[str] = []
    for hit in retrieval.hits:
        if hit.passage.article.id not in ids:
            ids.append(hit.passage.article.id)
    return ids[:depth]


def write_run(out: Path, queries: list[dict[str, object]], ranked: list[list[str]]) -> None:
    """The run file: one {"qid", "ranked_ids"} line per query."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "".join(
            json.dumps({"qid": q["id"], "ranked_ids": ids}) + "\n"
            for q, ids in zip(queries, ranked, strict=True)
        ),
        encoding="utf-8",
    )


def run_retrieval_bench(
    bench_dir: Path, out: Path, embedder: Embedder, store_dir: Path, settings: Settings
) -> str:
    """Index the set (embeddings cached in store_dir), rank its queries with the product's
    retriever (the settings' fusion), write the run file and return a summary."""
    started = time.monotonic()
    store = Store(store_dir, embedder.model_id, embedder.dim, embed_quotes=False)
    report = store.add_articles(load_corpus(bench_dir / "corpus.jsonl"), embedder, progress=True)
    indexed = time.monotonic()
    queries = load_queries(bench_dir / "queries.jsonl")
    retriever = build_retriever(settings, store, embedder)
    texts = [str(q["text"]) for q in queries]
    ranked = [
        documents(r)
        for start in range(0, len(texts), 64)
        for r in retriever.retrieve_many(texts[start : start + 64], k=DEPTH * 5, floor=-1.0)
    ]
    write_run(out, queries, ranked)
    passages = store.stats().passages
    store.close()
    done = time.monotonic()
    return (
        f"{bench_dir.name}: {passages} passages ({report.embedded} embedded) in "
        f"{indexed - started:.1f} s; {len(queries)} queries in {done - indexed:.1f} s "
        f"({1000 * (done - indexed) / max(1, len(queries)):.1f} ms each); run -> {out}"
    )
