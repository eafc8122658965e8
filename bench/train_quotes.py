"""Fit the quote model (bot/quote_model.json) on public dev sets only.

    python -m bench.train_quotes [--write]

Every question of the dev sets with answer strings (xquad_*, piaf_fr-fr from
../shared/bench/retrieval/dev, and ../shared/bench/newsqa-dev) is retrieved by the product's
retriever; each quotable sentence of its passages is described by bot/quote_features.py and
labelled by whether it contains an answer. A listwise logistic regression (softmax over one
question's sentences, L2) learns which sentence answers. Printed: how often the top
sentence holds an answer, for the old choice (mean of the sentence's and passage's cosine)
and for the model fitted without the set it is measured on (leave one set out), then the
weights fitted on every set. `--write` stores them. Test sets are never read.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from bench.quality import BENCH, CachedQueries, answers_of, bench_cache, open_set_store
from bench.retrieval import load_queries
from bot.answer import described_candidates
from bot.config import Settings
from bot.engine import build_retriever
from bot.quote_features import FEATURES, MODEL_PATH
from index.corpus import open_store
from index.embedding import embedder_for

DEV_SETS = ("xquad_en-en", "xquad_en-de", "xquad_de-en", "xquad_en-es", "xquad_es-en", "piaf_fr-fr")
NEWSQA = BENCH.parent / "newsqa-dev"
# newsqa-dev (news, the product's own case) counts in the fit as this share of all questions.
NEWSQA_SHARE = 0.25
L2 = 1e-5


@dataclass
class Group:
    """One question's candidates: features, labels, and the old score for comparison."""

    x: np.ndarray
    y: np.ndarray
    old: np.ndarray


def collect(store, queries, embedder, settings: Settings, items: list[tuple[str, list[str]]]):
    retriever = build_retriever(settings, store, queries)
    groups = []
    for start in range(0, len(items), 256):
        chunk = items[start : start + 256]
        for (_, keys), retrieval in zip(
            chunk, retriever.retrieve_many([t for t, _ in chunk]), strict=True
        ):
            candidates, cosines, x, _ = described_candidates(retrieval, store, embedder)
            if len(candidates) < 2:
                continue
            y = np.array([any(k in c.text for k in keys) for c in candidates], dtype=np.float32)
            if y.any():
                old = (cosines + np.array([c.hit.score for c in candidates])) / 2
                groups.append(Group(x, y, old))
    return groups


def loss(w: np.ndarray, groups: list[Group], weights: list[float]) -> tuple[float, np.ndarray]:
    total, grad = 0.0, np.zeros_like(w)
    for g, gw in zip(groups, weights, strict=True):
        s = g.x @ w
        s = s - s.max()
        p = np.exp(s)
        p /= p.sum()
        pos = p * g.y
        total -= gw * float(np.log(pos.sum() + 1e-12))
        # d/dw of -log(sum_pos p) = sum_i p_i x_i - sum_pos (p_i / sum_pos p) x_i
        grad += gw * (p @ g.x - (pos / pos.sum()) @ g.x)  # every group has a positive
    norm = sum(weights)
    return total / norm + L2 * float(w @ w), grad / norm + 2 * L2 * w


def fit(sets: dict[str, list[Group]]) -> np.ndarray:
    groups, weights = [], []
    others = sum(len(g) for name, g in sets.items() if name != "newsqa-dev")
    for name, gs in sets.items():
        share = 1.0
        if name == "newsqa-dev" and gs and others:
            share = NEWSQA_SHARE * others / (1 - NEWSQA_SHARE) / len(gs)
        groups += gs
        weights += [share] * len(gs)
    w0 = np.zeros(len(FEATURES))
    w0[FEATURES.index("cosine")] = 20.0
    result = minimize(loss, w0, args=(groups, weights), jac=True, method="L-BFGS-B")
    return result.x


def top1(groups: list[Group], score) -> float:
    return float(np.mean([g.y[int(np.argmax(score(g)))] for g in groups])) if groups else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {MODEL_PATH.name}")
    parser.add_argument(
        "--cached", action="store_true", help="reuse the features of the last run's dev sets"
    )
    parser.add_argument("--sets", nargs="*", default=list(DEV_SETS), help="dev sets to use")
    args = parser.parse_args(argv)
    settings = Settings()
    embedder = embedder_for(settings)
    queries = CachedQueries(embedder, settings.cache_dir / "bench" / "queries.sqlite3")
    sets: dict[str, list[Group]] = {}
    cache = bench_cache(settings, embedder.model_id) / "quote_groups.pkl"
    if args.cached and cache.exists():
        sets = pickle.loads(cache.read_bytes())
    for name in args.sets:
        if name in sets:
            continue
        store = open_set_store("dev", name, embedder, settings)
        items = [
            (str(q["text"]), answers_of(q))
            for q in load_queries(BENCH / "dev" / name / "queries.jsonl")
            if answers_of(q)
        ]
        sets[name] = collect(store, queries, embedder, settings, items)
        store.close()
        print(f"  {name}: {len(sets[name])} questions with an answer among the candidates")
    qa_dir = bench_cache(settings, embedder.model_id) / "qa" / NEWSQA.name
    if not (qa_dir / "store").exists():
        print(f"run `newsbot bench qa {NEWSQA}` first (it builds the index)", file=sys.stderr)
        return 1
    sets.pop("newsqa-dev", None)
    store = open_store(qa_dir, embedder)
    lines = (NEWSQA / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    items = [(q["question"], q["answer_keys"]) for q in map(json.loads, lines) if q["answerable"]]
    sets["newsqa-dev"] = collect(store, queries, embedder, settings, items)
    store.close()
    cache.write_bytes(pickle.dumps(sets))
    print("\n| set | questions | old choice: top sentence holds an answer | model (set left out) |")
    print("|---|---|---|---|")
    for name, groups in sets.items():
        w = fit({n: g for n, g in sets.items() if n != name})
        print(
            f"| {name} | {len(groups)} | {top1(groups, lambda g: g.old):.3f} | "
            f"{top1(groups, lambda g, w=w: g.x @ w):.3f} |"
        )
    w = fit(sets)
    weights = {name: round(float(v), 4) for name, v in zip(FEATURES, w, strict=True)}
    print("\nweights fitted on every set:", json.dumps(weights))
    if args.write:
        model = {
            "about": "Quote model fitted by `python -m bench.train_quotes --write` on the "
            "public dev sets " + ", ".join([*DEV_SETS, "newsqa-dev"]) + "; see "
            "bot/quote_features.py for the features.",
            "weights": weights,
        }
        MODEL_PATH.write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")
        print(f"written to {MODEL_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
