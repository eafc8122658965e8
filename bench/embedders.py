"""The embedding backends side by side: speed and fidelity on the same real passages.

    python -m bench.embedders [--passages 128] [--queries 30] [--rounds 3]

Cuts the bench articles (FR/EN news) into passages as the product does, then for each
backend (torch fp32, ONNX fp32, ONNX int8) times embedding them through the product's
Embedder and embedding single questions one at a time, with the threads the product gives
each backend. Rounds alternate the backends so that load from other work falls on all alike;
the table gives each figure's median over rounds and the cosine of each backend's passage
vectors to torch fp32's. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from bench.speed import QUESTIONS
from index.articles import load_articles
from index.chunking import passage_embedding_text, split_into_passages
from index.embedding import BACKENDS, Embedder, default_cache_dir, get_embedder

SHARED = Path(__file__).resolve().parents[2] / "shared" / "bench"
ARTICLES = [SHARED / "articles", SHARED / "newsqa-dev" / "articles"]


def real_passages(embedder: Embedder, count: int) -> list[str]:
    """The first `count` passages of the bench articles, cut and headed as the store does."""
    texts: list[str] = []
    for article in load_articles(ARTICLES).articles:
        for passage in split_into_passages(article, embedder.count_tokens, embedder.max_tokens):
            texts.append(passage_embedding_text(passage.heading, passage.text))
    return texts[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=128)
    parser.add_argument("--queries", type=int, default=30, help="single questions timed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    args = parser.parse_args()

    embedders: dict[str, Embedder] = {}
    load_s: dict[str, float] = {}
    for backend in args.backends:
        started = time.perf_counter()
        embedders[backend] = get_embedder("bundled", default_cache_dir(), backend=backend)
        embedders[backend].embed_queries(["warm-up"])
        load_s[backend] = time.perf_counter() - started
    first = embedders[args.backends[0]]
    passages = real_passages(first, args.passages)
    words = statistics.mean(len(p.split()) for p in passages)
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(args.queries)]

    rates: dict[str, list[float]] = {b: [] for b in args.backends}
    latencies: dict[str, list[float]] = {b: [] for b in args.backends}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for backend, embedder in embedders.items():
            started = time.perf_counter()
            vectors[backend] = embedder.embed_passages(passages)
            rates[backend].append(len(passages) / (time.perf_counter() - started))
            for question in questions:
                started = time.perf_counter()
                embedder.embed_queries([question])
                latencies[backend].append((time.perf_counter() - started) * 1000)

    reference = vectors.get("torch")
    base_rate = statistics.median(rates["torch"]) if "torch" in rates else None
    base_ms = statistics.median(latencies["torch"]) if "torch" in latencies else None
    print(
        f"{len(passages)} passages (mean {words:.0f} words), {len(questions)} single questions, "
        f"{args.rounds} rounds; medians\n"
    )
    print(
        "| backend | load | passages/s | × torch | query ms | × torch | cosine to torch min/mean |"
    )
    print("|---|---|---|---|---|---|---|")
    for backend in args.backends:
        rate = statistics.median(rates[backend])
        ms = statistics.median(latencies[backend])
        speedup = f"{rate / base_rate:.2f}" if base_rate else "—"
        faster = f"{base_ms / ms:.2f}" if base_ms else "—"
        if reference is not None:
            cosines = np.sum(vectors[backend] * reference, axis=1)
            fidelity = f"{cosines.min():.4f} / {cosines.mean():.4f}"
        else:
            fidelity = "—"
        print(
            f"| {embedders[backend].model_id} | {load_s[backend]:.1f} s | {rate:.1f} | "
            f"{speedup} | {ms:.1f} | {faster} | {fidelity} |"
        )


if __name__ == "__main__":
    main()
