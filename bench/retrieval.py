"""Retrieval benchmark: index a set's corpus with the product's pipeline, rank its queries.

Writes the run format of ../shared/bench/README.md: one line per query,
{"qid", "ranked_ids"} with the 10 best document ids. Long documents are chunked by the
product's chunker; a document's rank is that of its best passage.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from index.articles import Article, article_from_record
from index.search import Retriever
from index.store import PassageEncoder, Store


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


def rank_documents(retriever: Retriever, questions: list[str], depth: int = 10) -> list[list[str]]:
    """The `depth` best distinct article ids for each question."""
    ranked = []
    for start in range(0, len(questions), 64):
        for retrieval in retriever.retrieve_many(questions[start : start + 64], k=depth * 5):
            ids: list[str] = []
            for hit in retrieval.hits:
                if hit.passage.article.id not in ids:
                    ids.append(hit.passage.article.id)
            ranked.append(ids[:depth])
    return ranked


def run_retrieval_bench(
    bench_dir: Path, out: Path, embedder: PassageEncoder, store_dir: Path
) -> str:
    """Index the set (embeddings cached in store_dir), write the run file, return a summary."""
    started = time.monotonic()
    store = Store(store_dir, embedder.model_id, embedder.dim)
    report = store.add_articles(load_corpus(bench_dir / "corpus.jsonl"), embedder, progress=True)
    indexed = time.monotonic()
    queries = load_queries(bench_dir / "queries.jsonl")
    retriever = Retriever(store, embedder, k=10, floor=-1.0)  # type: ignore[arg-type]
    ranked = rank_documents(retriever, [str(q["text"]) for q in queries])
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for query, ids in zip(queries, ranked, strict=True):
            handle.write(json.dumps({"qid": query["id"], "ranked_ids": ids}) + "\n")
    store.close()
    done = time.monotonic()
    return (
        f"{bench_dir.name}: {report.passages} passages ({report.embedded} embedded) in "
        f"{indexed - started:.1f} s; {len(queries)} queries in {done - indexed:.1f} s "
        f"({1000 * (done - indexed) / max(1, len(queries)):.1f} ms each); run -> {out}"
    )
