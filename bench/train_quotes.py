"""Fit the quote model (bot/quote_model.json) on public dev sets only.

    python -m bench.train_quotes [--write]

Every question of the dev sets with answer strings (xquad_*, piaf_fr-fr from
../shared/bench/retrieval/dev, and ../shared/bench/newsqa-dev) is retrieved by the product's
retriever; each quotable sentence of its passages is described by bot/quote_features.py and
labelled by whether it contains an answer. A listwise logistic regression (softmax over one
question's sentences, L2) learns which sentence answers. Printed: how often the top
sentence holds an answer, for the old choice (mean of the sentence's and passage's cosine)
and for the model fitted without the set it is measured on (leave one set out); then
newsqa-dev with its articles left out one at a time (fitted on the other articles'
questions, scored on the held-out ones: top sentence and the `newsbot bench qa` figures
end to end), which is what to judge a change by; then the weights fitted on every set.
`--write` stores them. `--cached` reuses the retrievals (features are recomputed). Test
sets are never read.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from dataclasses import dataclass, fields
from unittest import mock

import numpy as np
from scipy.optimize import minimize

from bench.qa import QAScore, articles_by_file, format_score, load_questions, score_answers
from bench.quality import BENCH, CachedQueries, answers_of, bench_cache, open_set_store
from bench.retrieval import load_queries
from bot.answer import Answer, quote_candidates
from bot.config import Settings
from bot.engine import answer_questions, build_retriever
from bot.quote_features import FEATURES, MODEL_PATH, Candidate, candidate_features
from index.corpus import open_store
from index.embedding import embedder_for
from index.search import Retrieval

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


@dataclass
class Asked:
    """One question as retrieved: what its features are computed from (cached, so a change
    to the features needs no new retrieval), and the article its answer is in."""

    question: str
    keys: list[str]
    retrieval: Retrieval
    candidates: list[Candidate]
    cosines: np.ndarray
    article: str = ""


def astuple(a: Asked) -> tuple:
    """The fields of `a`, not copied (dataclasses.astuple would copy every candidate)."""
    return tuple(getattr(a, f.name) for f in fields(a))


def collect(store, queries, embedder, settings: Settings, items) -> list[Asked]:
    """Retrieve each (question, answer keys[, article]) of `items` with the product's
    retriever and keep its quotable sentences and their cosines."""
    retriever = build_retriever(settings, store, queries)
    asked = []
    for start in range(0, len(items), 256):
        chunk = items[start : start + 256]
        for item, retrieval in zip(
            chunk, retriever.retrieve_many([item[0] for item in chunk]), strict=True
        ):
            candidates = quote_candidates(retrieval.hits)
            if len(candidates) < 2:
                continue
            vectors = store.embed_texts([c.text for c in candidates], embedder)
            cosines = vectors @ retrieval.vector
            asked.append(Asked(item[0], item[1], retrieval, candidates, cosines, *item[2:]))
    return asked


def group_of(a: Asked) -> Group | None:
    """The question's features and labels (a sentence holding a key is an answer); None
    when no candidate holds one."""
    x, _ = candidate_features(a.question, a.candidates, a.cosines, a.retrieval.hits)
    y = np.array([any(k in c.text for k in a.keys) for c in a.candidates], dtype=np.float32)
    if not y.any():
        return None
    old = (a.cosines + np.array([c.hit.score for c in a.candidates])) / 2
    return Group(x, y, old)


def groups_of(asked: list[Asked]) -> list[Group]:
    return [g for g in map(group_of, asked) if g is not None]


@dataclass
class Stacked:
    """Many groups as one matrix: rows of group g are starts[g]:starts[g + 1]."""

    x: np.ndarray
    y: np.ndarray
    group: np.ndarray  # each row's group
    starts: np.ndarray
    weight: np.ndarray  # each group's weight in the loss


def stack(groups: list[Group], weights: list[float]) -> Stacked:
    sizes = [len(g.y) for g in groups]
    return Stacked(
        np.concatenate([g.x for g in groups]).astype(np.float64),
        np.concatenate([g.y for g in groups]),
        np.repeat(np.arange(len(groups)), sizes),
        np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
        np.array(weights, dtype=np.float64),
    )


def loss(w: np.ndarray, data: Stacked, l2: float) -> tuple[float, np.ndarray]:
    """Listwise log-loss: -log of the softmax mass of a question's answering sentences."""
    s = data.x @ w
    s = s - np.maximum.reduceat(s, data.starts)[data.group]
    p = np.exp(s)
    total = np.add.reduceat(p, data.starts)
    positive = np.add.reduceat(p * data.y, data.starts)  # every group has a positive
    gw = data.weight
    value = -float(gw @ np.log(positive / total + 1e-300))
    # d/dw of -log(sum_pos p / sum p) = sum_i p_i x_i / sum p - sum_pos p_i x_i / sum_pos p
    coef = gw[data.group] * (p / total[data.group] - data.y * p / positive[data.group])
    norm = float(gw.sum())
    return value / norm + l2 * float(w @ w), coef @ data.x / norm + 2 * l2 * w


def fit(
    sets: dict[str, list[Group]], l2: float = L2, start: np.ndarray | None = None
) -> np.ndarray:
    """The weights minimising the loss over `sets` (from `start`: a near fit converges
    in a few steps)."""
    groups, weights = [], []
    others = sum(len(g) for name, g in sets.items() if name != "newsqa-dev")
    for name, gs in sets.items():
        share = 1.0
        if name == "newsqa-dev" and gs and others:
            share = NEWSQA_SHARE * others / (1 - NEWSQA_SHARE) / len(gs)
        groups += gs
        weights += [share] * len(gs)
    if start is None:
        w0 = np.zeros(len(FEATURES))
        w0[FEATURES.index("cosine")] = 20.0
    else:
        w0 = start
    result = minimize(loss, w0, args=(stack(groups, weights), l2), jac=True, method="L-BFGS-B")
    return result.x


def top1(groups: list[Group], score) -> float:
    return float(np.mean([g.y[int(np.argmax(score(g)))] for g in groups])) if groups else 0.0


def newsqa_items() -> tuple[list[dict], list[tuple[str, list[str], str]]]:
    """newsqa-dev's questions, and the answerable ones as (question, keys, article file)."""
    questions = load_questions(NEWSQA)
    items = [
        (str(q["question"]), [str(k) for k in q["answer_keys"]], str(q["gold_file"]))  # type: ignore[attr-defined]
        for q in questions
    ]
    return questions, [item for item, q in zip(items, questions, strict=True) if q["answerable"]]


def question_article(question: dict) -> str:
    """The article a newsqa-dev question is about: its gold file, a near-miss's article,
    or "" for an off-topic one."""
    if question["answerable"]:
        return str(question["gold_file"])
    notes = str(question.get("notes") or "")
    return notes.split(":", 1)[1].split()[0].strip(" ,;") if notes.startswith("near-miss") else ""


def cross_validated(
    sets: dict[str, list[Asked]], store, embedder, settings: Settings, l2: float
) -> tuple[float, QAScore]:
    """newsqa-dev with its articles left out, one at a time: the model is fitted on the
    other sets and on the questions of the other articles, then the held-out article's
    questions are scored (top sentence holds a key) and answered end to end by
    `answer_questions` (the code behind `newsbot ask`) with those weights. Off-topic
    questions belong to no article and are answered with the model fitted on everything."""
    public = {name: groups_of(asked) for name, asked in sets.items() if name != "newsqa-dev"}
    news = sets["newsqa-dev"]
    questions, _ = newsqa_items()
    retriever = build_retriever(settings, store, embedder)
    hits: list[float] = []
    answers: dict[int, Answer] = {}
    every = fit({**public, "newsqa-dev": groups_of(news)}, l2)
    for article in sorted({question_article(q) for q in questions}):
        train = [a for a in news if a.article != article] if article else news
        w = fit({**public, "newsqa-dev": groups_of(train)}, l2, every)
        held = [g for g in groups_of([a for a in news if a.article == article])] if article else []
        hits += [float(g.y[int(np.argmax(g.x @ w))]) for g in held]
        asked = [i for i, q in enumerate(questions) if question_article(q) == article]
        with mock.patch("bot.answer.quote_weights", lambda w=w: w.astype(np.float32)):
            pairs = answer_questions(
                retriever, store, embedder, settings, [str(questions[i]["question"]) for i in asked]
            )
        answers.update((i, answer) for i, (_, answer) in zip(asked, pairs, strict=True))
    _, file_of_article = articles_by_file(NEWSQA)
    score = score_answers(questions, [answers[i] for i in range(len(questions))], file_of_article)
    return float(np.mean(hits)), score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {MODEL_PATH.name}")
    parser.add_argument(
        "--cached",
        action="store_true",
        help="reuse the last run's retrievals of the dev sets (the features are recomputed)",
    )
    parser.add_argument("--sets", nargs="*", default=list(DEV_SETS), help="dev sets to use")
    parser.add_argument("--l2", type=float, default=L2, help="L2 penalty of the fit")
    args = parser.parse_args(argv)
    settings = Settings()
    embedder = embedder_for(settings)
    queries = CachedQueries(embedder, settings.cache_dir / "bench" / "queries.sqlite3")
    sets: dict[str, list[Asked]] = {}
    cache = bench_cache(settings, embedder.model_id) / "quote_candidates.pkl"
    if args.cached and cache.exists():  # plain tuples: `python -m` names classes __main__.*
        sets = {
            n: [Asked(*a) for a in rows] for n, rows in pickle.loads(cache.read_bytes()).items()
        }
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
        print(f"  {name}: {len(sets[name])} questions retrieved")
    sets = {name: sets[name] for name in [*args.sets, "newsqa-dev"] if name in sets}
    qa_dir = bench_cache(settings, embedder.model_id) / "qa" / NEWSQA.name
    if not (qa_dir / "store").exists():
        print(f"run `newsbot bench qa {NEWSQA}` first (it builds the index)", file=sys.stderr)
        return 1
    store = open_store(qa_dir, embedder)
    sets["newsqa-dev"] = collect(store, queries, embedder, settings, newsqa_items()[1])
    cache.write_bytes(pickle.dumps({n: [astuple(a) for a in rows] for n, rows in sets.items()}))
    groups = {name: groups_of(asked) for name, asked in sets.items()}
    print("\n| set | questions | old choice: top sentence holds an answer | model (set left out) |")
    print("|---|---|---|---|")
    for name, gs in groups.items():
        w = fit({n: g for n, g in groups.items() if n != name}, args.l2)
        print(
            f"| {name} | {len(gs)} | {top1(gs, lambda g: g.old):.3f} | "
            f"{top1(gs, lambda g, w=w: g.x @ w):.3f} |"
        )
    w = fit(groups, args.l2)
    print(
        f"\nnewsqa-dev in-sample (model fitted on every set): top sentence holds a key "
        f"{top1(groups['newsqa-dev'], lambda g: g.x @ w):.3f}"
    )
    held_top1, score = cross_validated(sets, store, embedder, settings, args.l2)
    store.close()
    print(
        "newsqa-dev, articles left out one at a time: top sentence holds a key "
        f"{held_top1:.3f}; answered end to end:\n"
    )
    print(format_score("newsqa-dev (cross-validated)", score, 0.0).split("\n\nRun time")[0])
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
