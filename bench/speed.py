"""Speed benchmark: indexing throughput and question latency on real news articles.

    python -m bench.speed [--articles ../shared/bench/articles] [--queries 30]

Indexes the articles into a fresh store (embedding everything), re-ingests them (nothing to
embed), then times single questions one at a time: retrieval only, and the whole answer
(retrieval + quote selection, first time and cached). Then the peer, in the same run and on
the same texts (bench/peer.py, needs the `bench` extra): LangChain's FAISS.from_texts over
the product's passages with the same model on torch, raw SentenceTransformer.encode as the
limit, and the peer's similarity_search against the product's whole answer on the same
questions. Torch, onnxruntime and USE all run on 2 threads (2 CPUs). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.peer import PeerFigures, PeerMissing, measure_peer
from bot.answer import compose_answer
from bot.config import Settings
from bot.engine import build_retriever
from index.articles import load_articles
from index.chunking import passage_embedding_text, split_into_passages
from index.embedding import embedder_for, model_folder
from index.store import Store
from index.usem import get_use_encoder

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
THREADS = 2  # torch, onnxruntime and USE alike: the peer comparison is per pair of cores


def use_threads(count: int) -> None:
    """Run on `count` CPUs: the ONNX embedder sizes its pool from the affinity mask, torch
    is told, USE already uses 2 BLAS threads."""
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) > count:
            os.sched_setaffinity(0, cpus[:count])
    import torch

    torch.set_num_threads(count)


@contextmanager
def timed(owner: object, method: str, clock: dict[str, float], key: str) -> Iterator[None]:
    """Add the time spent in `owner.method` to clock[key] (the instance attribute shadows the
    method until the block ends)."""
    original = getattr(owner, method)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            clock[key] += time.perf_counter() - t0

    setattr(owner, method, wrapper)
    try:
        yield
    finally:
        delattr(owner, method)


@contextmanager
def timed_by_kind(
    embedder: Any, passage_texts: set[str], clock: dict[str, float]
) -> Iterator[None]:
    """Split the store's embedding calls into passages and quotable sentences, timing each
    (the two groups are embedded in turn; a text's vector does not depend on its batch)."""
    original: Callable[..., np.ndarray] = embedder.embed_passages

    def embed_passages(texts: Sequence[str], progress: bool = False) -> np.ndarray:
        texts = list(texts)
        out = np.empty((len(texts), embedder.dim), dtype=np.float32)
        passages = [i for i, t in enumerate(texts) if t in passage_texts]
        sentences = [i for i, t in enumerate(texts) if t not in passage_texts]
        for key, rows in (("passages", passages), ("sentences", sentences)):
            if rows:
                t0 = time.perf_counter()
                out[rows] = original([texts[i] for i in rows], progress)
                clock[key] += time.perf_counter() - t0
        return out

    embedder.embed_passages = embed_passages
    try:
        yield
    finally:
        del embedder.embed_passages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=Path, default=ARTICLES)
    parser.add_argument("--queries", type=int, default=30, help="timed questions")
    args = parser.parse_args()

    use_threads(THREADS)
    load_before = _load_average()
    settings = Settings()
    started = time.perf_counter()
    embedder = embedder_for(settings)
    embedder.embed_queries(["warm-up"])
    load_s = time.perf_counter() - started
    use = get_use_encoder()
    use.embed_queries(["warm-up"])
    articles = load_articles([args.articles]).articles
    rows: list[tuple[str, str]] = [
        (f"model load ({embedder.model_id}, materialised, warm)", f"{load_s:.1f} s")
    ]
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
        passage_texts = {
            passage_embedding_text(p.heading, p.text)
            for article in articles
            for p in split_into_passages(article, embedder.count_tokens, embedder.max_tokens)
        }
        index_clock: dict[str, float] = defaultdict(float)
        t0, c0 = time.perf_counter(), time.process_time()
        with timed_by_kind(embedder, passage_texts, index_clock):
            report = store.add_articles(articles, embedder)
        index_s = time.perf_counter() - t0
        with timed(use, "embed_texts", index_clock, "USE"):
            if settings.use_weight > 0:  # what Engine.prepare does after an ingest
                store.secondary_vectors(use)
        shipped_s, shipped_cpu_s = time.perf_counter() - t0, time.process_time() - c0
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
        retriever = build_retriever(settings, store, embedder)  # the product's signals
        questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(args.queries)]
        search_ms: list[float] = []
        first_ms: list[float] = []
        cached_ms: list[float] = []
        ask_clock: dict[str, float] = defaultdict(float)
        with (
            timed(embedder, "embed_queries", ask_clock, "e5"),
            timed(use, "embed_queries", ask_clock, "USE"),
        ):
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
        ask_s = (sum(first_ms) + sum(cached_ms)) / 1000
        product = Product(
            passages=report.passages,
            index_s=shipped_s,
            index_cpu_s=shipped_cpu_s,
            index_clock=dict(index_clock),
            answer_ms=first_ms + cached_ms,
            ask_share={k: v / ask_s for k, v in ask_clock.items()},
        )
        product_texts = [
            passage_embedding_text(p.heading, p.text)
            for p in store.passages(list(range(1, report.passages + 1))).values()
        ]
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
    try:
        folder, _ = model_folder(settings.model, settings.cache_dir)
        rows += peer_rows(product, measure_peer(folder, product_texts, questions))
    except PeerMissing as exc:
        rows.append(("peer comparison", f"not measured: {exc}"))
    rows.append(
        (
            f"machine load average (1 min) before / after, {os.cpu_count()} CPUs",
            f"{load_before} / {_load_average()}",
        )
    )
    print("| what | figure |\n|---|---|")
    for what, figure in rows:
        print(f"| {what} | {figure} |")


@dataclass(frozen=True)
class Product:
    """The product's side of the peer comparison."""

    passages: int
    index_s: float  # ingest as shipped, then the USE vectors that Engine.prepare computes
    index_cpu_s: float  # CPU time of the process meanwhile, every thread
    index_clock: dict[str, float]  # seconds embedding passages, sentences, USE
    answer_ms: list[float]
    ask_share: dict[str, float]  # share of the answers' time in the e5 and USE query encodes


def _load_average() -> str:
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "?"


def peer_rows(product: Product, peer: PeerFigures) -> list[tuple[str, str]]:
    """The peer comparison, as rows of the table."""
    n = peer.passages
    peer_rate = n / peer.peer_index_s
    limit_rate = n / peer.limit_s
    rate = product.passages / product.index_s
    clock = product.index_clock
    parts = [(k, clock.get(k, 0.0)) for k in ("passages", "sentences", "USE")]
    rest = product.index_s - sum(s for _, s in parts)
    split = ", ".join(f"{k} {s / product.index_s:.0%}" for k, s in [*parts, ("rest", rest)])
    peer_ms = statistics.median(peer.search_ms)
    answer_ms = statistics.median(product.answer_ms)
    share = product.ask_share
    e5, use = share.get("e5", 0.0), share.get("USE", 0.0)
    return [
        (
            f"**peer** (LangChain FAISS.from_texts, same model on torch, {THREADS} threads), "
            f"{n} passages",
            f"{peer.peer_index_s:.1f} s = {peer_rate:.1f} passages/s "
            f"({peer.peer_cpu_s:.1f} s of CPU)",
        ),
        (
            f"limit: SentenceTransformer.encode fp32 torch, batch 32, {THREADS} threads",
            f"{peer.limit_s:.1f} s = {limit_rate:.1f} passages/s ({peer.limit_cpu_s:.1f} s of CPU)",
        ),
        (
            f"product, as shipped (passages, quotable sentences, USE, SQLite, FAISS), "
            f"{THREADS} threads",
            f"{product.index_s:.1f} s = {rate:.1f} passages/s ({product.index_cpu_s:.1f} s of CPU)",
        ),
        ("… time split", split),
        ("product / peer, indexing (goal ≥ 1.5)", f"{rate / peer_rate:.2f}x"),
        ("product / limit, indexing", f"{rate / limit_rate:.2f}x"),
        (
            f"peer similarity_search(q, k=5), median of {len(peer.search_ms)}",
            f"{peer_ms:.1f} ms",
        ),
        (
            f"product question → answer, median of {len(product.answer_ms)}",
            f"{answer_ms:.1f} ms (e5 query {e5:.0%}, USE query {use:.0%}, rest {1 - e5 - use:.0%})",
        ),
        ("product / peer, question latency (goal ≤ 0.5)", f"{answer_ms / peer_ms:.2f}x"),
        (
            "… against the peer with torch on 1 thread (its threads spin on a busy machine), "
            f"peer median {statistics.median(peer.search_one_thread_ms):.1f} ms",
            f"{answer_ms / statistics.median(peer.search_one_thread_ms):.2f}x",
        ),
    ]


if __name__ == "__main__":
    main()
