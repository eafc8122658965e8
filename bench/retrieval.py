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
from bot.engine import answer_questions, build_retriever
from index.articles import Article, article_from_record
from index.backend import IndexStore
from index.chunking import quote_spans
from index.dates import question_period
from index.embedding import Embedder
from index.search import QueryEncoder, Retrieval
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


def every_sentence(store: IndexStore) -> list[str]:
    """The quotable sentences of every passage in the store."""
    sentences = []
    for article_id in sorted(store.article_ids()):
        passages, _ = store.article_passages(article_id)
        for p in passages:
            sentences += [
                p.article.text[a:b] for a, b in quote_spans(p.article.text, p.start, p.end)
            ]
    return sentences


def rank_queries(
    store: IndexStore,
    queries: QueryEncoder,
    embedder: Embedder,
    settings: Settings,
    texts: list[str],
) -> list[Retrieval]:
    """Each query's retrieval as the product ranks it (the settings' retriever, DEPTH * 5
    passages, no floor). A query naming a month or day is searched as bot/engine.py does:
    that date alone first, every date if nothing of that date answers."""
    retriever = build_retriever(settings, store, queries)  # type: ignore[arg-type]
    retrievals: list[Retrieval] = []
    for start in range(0, len(texts), 256):
        retrievals += retriever.retrieve_many(texts[start : start + 256], k=DEPTH * 5, floor=-1.0)
    for i, text in enumerate(texts):
        if question_period(text) is not None:
            ((retrievals[i], _),) = answer_questions(
                retriever, store, embedder, settings, [text], k=DEPTH * 5, floor=-1.0
            )
    return retrievals


def run_retrieval_bench(
    bench_dir: Path, out: Path, embedder: Embedder, store_dir: Path, settings: Settings
) -> str:
    """Index the set (embeddings cached in store_dir), rank its queries with the product's
    retriever (the settings' fusion), write the run file and return a summary."""
    started = time.monotonic()
    store = Store(store_dir, embedder.model_id, embedder.dim)
    report = store.add_articles(load_corpus(bench_dir / "corpus.jsonl"), embedder, progress=True)
    # As shipped, every quotable sentence is embedded (the best-sentence score reads them);
    # this completes an index an older bench built without them.
    store.embed_texts(every_sentence(store), embedder)
    indexed = time.monotonic()
    queries = load_queries(bench_dir / "queries.jsonl")
    texts = [str(q["text"]) for q in queries]
    ranked = [documents(r) for r in rank_queries(store, embedder, embedder, settings, texts)]
    write_run(out, queries, ranked)
    passages = store.stats().passages
    store.close()
    done = time.monotonic()
    return (
        f"{bench_dir.name}: {passages} passages ({report.embedded} embedded) in "
        f"{indexed - started:.1f} s; {len(queries)} queries in {done - indexed:.1f} s "
        f"({1000 * (done - indexed) / max(1, len(queries)):.1f} ms each); run -> {out}"
    )
