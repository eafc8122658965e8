"""Speed benchmark: indexing throughput and question latency on real news articles.

    python -m bench.speed [--articles ../shared/bench/articles] [--queries 30]

Indexes the articles into a fresh store (embedding everything), re-ingests them (nothing to
embed), then times single questions one at a time: retrieval only, and the whole answer
(retrieval + quote selection, first time and cached). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bot.answer import compose_answer
from bot.config import Settings
from bot.engine import build_retriever
from index.articles import load_articles
from index.embedding import default_cache_dir, get_embedder
from index.store import Store

ARTICLES = Path(__file__).resolve().parents[2] / "shared" / "bench" / "articles"
QUESTIONS = [
    "who denied signing an accord?",
    "Qui a nié la signature d'un accord ?",
    "How many people were injured when the cruise ship hit the quay in Venice?",
    "Combien de tonnes de produits ont brûlé chez Lubrizol ?",
    "What gas was detected on Venus?",
    "Where did the earthquake in the Philippines happen?",
    "Why did EasyJet stop selling peanuts?",
    "What weapon did the hero on London Bridge use?",
    "Quel est le record de température en France ?",
    "Who won the 2018 football World Cup?",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=Path, default=ARTICLES)
    parser.add_argument("--queries", type=int, default=30, help="timed questions")
    args = parser.parse_args()

    started = time.perf_counter()
    embedder = get_embedder("bundled", default_cache_dir())
    embedder.embed_queries(["warm-up"])
    load_s = time.perf_counter() - started
    articles = load_articles([args.articles]).articles
    rows: list[tuple[str, str]] = [("model load (materialised, warm)", f"{load_s:.1f} s")]
    with tempfile.TemporaryDirectory() as plain_dir:
        plain = Store(Path(plain_dir), embedder.model_id, embedder.dim, embed_quotes=False)
        t0 = time.perf_counter()
        plain_report = plain.add_articles(articles, embedder)
        plain_s = time.perf_counter() - t0
        plain.close()
    rows.append(
        (
            f"index {len(articles)} articles, passages only ({plain_report.passages} passages)",
            f"{plain_s:.1f} s = {plain_report.passages / plain_s:.1f} passages/s",
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp), embedder.model_id, embedder.dim)
        t0 = time.perf_counter()
        report = store.add_articles(articles, embedder)
        index_s = time.perf_counter() - t0
        words = sum(len(store.passages([i])[i].text.split()) for i in range(1, report.passages + 1))
        t0 = time.perf_counter()
        again = store.add_articles(articles, embedder)
        reingest_s = time.perf_counter() - t0
        rows += [
            (
                f"index {len(articles)} articles as shipped: {report.passages} passages "
                f"(mean {words / report.passages:.0f} words) + quotable sentences "
                f"({report.embedded} texts embedded)",
                f"{index_s:.1f} s = {report.passages / index_s:.1f} passages/s",
            ),
            (f"re-ingest unchanged ({again.embedded} embedded)", f"{reingest_s * 1000:.0f} ms"),
        ]
        settings = Settings()
        retriever = build_retriever(settings, store, embedder)  # the product's signals
        questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(args.queries)]
        search_ms: list[float] = []
        first_ms: list[float] = []
        cached_ms: list[float] = []
        for i, question in enumerate(questions):
            t0 = time.perf_counter()
            retrieval = retriever.retrieve_many([question])[0]
            t1 = time.perf_counter()
            compose_answer(
                retrieval,
                store,
                embedder,
                floor=settings.score_floor,
            )
            t2 = time.perf_counter()
            search_ms.append((t1 - t0) * 1000)
            (first_ms if i < len(QUESTIONS) else cached_ms).append((t2 - t0) * 1000)
        # The same questions without the best-sentence score: what that signal costs.
        unsentenced = build_retriever(
            settings.model_copy(update={"sentence_weight": 0.0}), store, embedder
        )
        vectors = embedder.embed_queries(questions)
        with_ms: list[float] = []
        without_ms: list[float] = []
        for i, question in enumerate(questions):
            for chosen, times in ((retriever, with_ms), (unsentenced, without_ms)):
                t0 = time.perf_counter()
                chosen.retrieve_many([question], vectors=vectors[i : i + 1])
                times.append((time.perf_counter() - t0) * 1000)
        rows += [
            (
                "question → passages (e5, FAISS, BM25, USE, best sentences), median",
                f"{statistics.median(search_ms):.0f} ms",
            ),
            (
                "… of which the best-sentence score (question already embedded), median",
                f"{statistics.median(with_ms) - statistics.median(without_ms):.1f} ms",
            ),
            (
                "question → answer, quotes not cached, median",
                f"{statistics.median(first_ms):.0f} ms",
            ),
        ]
        if cached_ms:
            rows.append(
                (
                    "question → answer, quotes cached, median",
                    f"{statistics.median(cached_ms):.0f} ms",
                )
            )
        store.close()
    print("| what | figure |\n|---|---|")
    for what, figure in rows:
        print(f"| {what} | {figure} |")


if __name__ == "__main__":
    main()
