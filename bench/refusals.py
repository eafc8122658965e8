"""Calibrate and check the "no source" floor on public data.

For a set, answerable questions are its own queries over its own corpus; negatives are the
queries of an unrelated set asked against that corpus (their answers are not in it). The
evidence score of a question is what the product gates on: the similarity of the best
quote `compose_answer` would show. Usage:

    python -m bench.refusals [--split dev] [--limit 300]

prints, per set, the answer rate on answerable questions whose gold passage is in the top
5, and the refusal rate on negatives, for a range of floors, then the floor that meets
both goals (answer >= 0.90, refuse >= 0.90) with the widest margin.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from bench.retrieval import load_corpus, load_queries
from bot.answer import compose_answer
from index.embedding import Embedder, default_cache_dir, get_embedder
from index.search import Retriever
from index.store import Store

BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench" / "retrieval"

# (set, set whose questions serve as negatives): unrelated topics, both directions of language.
PAIRS = {
    "dev": [
        ("xquad_en-de", "piaf_fr-fr"),
        ("piaf_fr-fr", "xquad_en-en"),
        ("newstest2014_sent-en_to_passage-fr", "xquad_en-en"),
        ("xquad_en-en", "newstest2014_sent-en_to_passage-fr"),
        # French questions over a French news corpus: same language, like most real use.
        ("orangesum-test_title-fr_to_article-fr", "piaf_fr-fr"),
    ],
    "test": [
        ("piaf_fr-fr", "squad1.1-dev-minus-xquad_en-en"),
        ("newstest2014_sent-en_to_passage-fr", "piaf_fr-fr"),
        ("squad1.1-dev-minus-xquad_en-en", "piaf_fr-fr"),
    ],
}


def evidence(
    store: Store,
    embedder: Embedder,
    questions: list[str],
    gold: list[set[str]] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Best-quote similarity per question, and whether a gold document is in the top 5."""
    retriever = Retriever(store, embedder, k=5, floor=-1.0)
    scores, in_top5 = [], []
    for start in range(0, len(questions), 64):
        batch = questions[start : start + 64]
        for i, retrieval in enumerate(retriever.retrieve_many(batch)):
            answer = compose_answer(retrieval, store, embedder, floor=-1.0)
            scores.append(answer.citations[0].score if answer.citations else -1.0)
            ids = {h.passage.article.id for h in retrieval.hits}
            in_top5.append(bool(gold and ids & gold[start + i]))
    return np.array(scores), np.array(in_top5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", default="dev", choices=sorted(PAIRS))
    parser.add_argument("--limit", type=int, default=300, help="questions sampled per side")
    args = parser.parse_args()
    embedder = get_embedder("bundled", default_cache_dir())
    rng = random.Random(7)
    floors = np.round(np.arange(0.74, 0.85, 0.01), 2)
    positives, negatives = [], []
    for name, other in PAIRS[args.split]:
        store = Store(default_cache_dir() / "bench" / name, embedder.model_id, embedder.dim)
        store.add_articles(load_corpus(BENCH / args.split / name / "corpus.jsonl"), embedder)
        own = rng.sample(load_queries(BENCH / args.split / name / "queries.jsonl"), args.limit)
        foreign = rng.sample(load_queries(BENCH / args.split / other / "queries.jsonl"), args.limit)
        pos, top5 = evidence(
            store,
            embedder,
            [str(q["text"]) for q in own],
            [set(map(str, q["gold_ids"])) for q in own],  # type: ignore[call-overload]
        )
        neg, _ = evidence(store, embedder, [str(q["text"]) for q in foreign], None)
        positives.append(pos[top5])
        negatives.append(neg)
        row = {
            f"{f:.2f}": (
                round(float((pos[top5] >= f).mean()), 3),
                round(float((neg < f).mean()), 3),
            )
            for f in floors
        }
        print(json.dumps({"set": name, "negatives_from": other, "answer|refuse": row}))
        store.close()
    pos_all, neg_all = np.concatenate(positives), np.concatenate(negatives)
    print("floor  answered(answerable, gold in top5)  refused(negatives)")
    for f in floors:
        print(
            f"{f:.2f}   {(pos_all >= f).mean():.3f}                              "
            f"{(neg_all < f).mean():.3f}"
        )


if __name__ == "__main__":
    main()
