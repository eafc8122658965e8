"""Quality benchmark: retrieval, quotes and refusals on every public set, in one table.

    newsbot bench quality [--split dev|test] [--sets NAME ...] [--limit N] [--calibrate]

For each set of ../shared/bench/retrieval/{dev,test}: index the corpus with the product's
pipeline (chunker, store, the settings' retriever), rank every query, write the run file
to bench/out/<split>/<set>.run.jsonl and score it like ../shared/bench/score.py (a
document is found when any of its passages is). For sets with answer strings, a sample
of questions is answered by `compose_answer` and we count how often the quoted sentences
contain an answer, beside "the first sentence of the top passage". Then refusals: the
questions of an unrelated set (PAIRS below) and the off-topic questions of
bench/negatives.json asked against a corpus must get "no source", while answerable
questions whose gold is in the top 5 must not. Passage and question vectors are cached
(by model and text hash), so a re-run after a change to search or answers embeds nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import random
import shutil
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.retrieval import (
    documents,
    every_sentence,
    load_corpus,
    load_queries,
    rank_queries,
    write_run,
)
from bot.answer import Answer, best_evidence, compose_answer, score_quotes
from bot.config import Settings
from bot.engine import answer_questions, build_retriever
from index import articles as articles_module
from index import chunking
from index.articles import Article
from index.backend import IndexStore
from index.chunking import quote_spans, split_into_passages
from index.embedding import Embedder, embedder_for, model_slug
from index.search import Retrieval
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

OUT = Path(__file__).resolve().parent / "out"
NEGATIVES = Path(__file__).resolve().parent / "negatives.json"


class CachedQueries:
    """An encoder's query vectors, cached in SQLite by (model, text hash)."""

    def __init__(self, encoder: Embedder, path: Path) -> None:
        self.encoder = encoder
        self.model_id = encoder.model_id
        self.dim = encoder.dim
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS queries (model_id TEXT, text_hash TEXT, vector BLOB, "
            "PRIMARY KEY (model_id, text_hash))"
        )

    def __getattr__(self, name: str) -> object:
        return getattr(self.encoder, name)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        hashes = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(hashes), 500):
            chunk = hashes[start : start + 500]
            for digest, blob in self._db.execute(
                "SELECT text_hash, vector FROM queries WHERE model_id = ? AND text_hash IN "
                f"({','.join('?' * len(chunk))})",
                [self.model_id, *chunk],
            ):
                found[digest] = np.frombuffer(blob, dtype=np.float32)
        missing = [i for i, h in enumerate(hashes) if h not in found]
        if missing:
            vectors = self.encoder.embed_queries([texts[i] for i in missing]).astype(np.float32)
            rows = [
                (self.model_id, hashes[i], v.tobytes())
                for i, v in zip(missing, vectors, strict=True)
            ]
            self._db.executemany("INSERT OR IGNORE INTO queries VALUES (?, ?, ?)", rows)
            self._db.commit()
            found.update((hashes[i], v) for i, v in zip(missing, vectors, strict=True))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([found[h] for h in hashes])


@dataclass
class SetResult:
    split: str
    name: str
    passages: int
    queries: int
    r1: float
    r5: float
    mrr: float
    quote: tuple[float, float, float, int] | None = None  # first quote, all quotes, baseline, n
    seconds: float = 0.0


@dataclass
class RefusalResult:
    split: str
    refused: list[bool] = field(default_factory=list)
    answered: list[bool] = field(default_factory=list)
    negative_scores: list[float] = field(default_factory=list)
    positive_scores: list[float] = field(default_factory=list)


def score_run(
    queries: list[dict[str, object]], ranked: list[list[str]]
) -> tuple[float, float, float]:
    """R@1, R@5, MRR@10 exactly as ../shared/bench/score.py computes them."""
    r1 = r5 = mrr = 0.0
    for query, ids in zip(queries, ranked, strict=True):
        gold = {str(g) for g in query["gold_ids"]}  # type: ignore[attr-defined]
        top = ids[:10]
        r1 += any(r in gold for r in top[:1])
        r5 += any(r in gold for r in top[:5])
        for i, r in enumerate(top):
            if r in gold:
                mrr += 1 / (i + 1)
                break
    n = max(1, len(queries))
    return round(r1 / n, 3), round(r5 / n, 3), round(mrr / n, 3)


def answers_of(query: dict) -> list[str]:
    return [a for key in query if key.startswith("answers") for a in query[key]]


def bench_cache(settings: Settings, model_id: str) -> Path:
    """Where the benchmarks keep what they build with this model: one folder per model, so
    an index built with another embedder is never opened (it would be refused)."""
    return settings.cache_dir / "bench" / model_slug(model_id)


def open_set_store(split: str, name: str, embedder: Embedder, settings: Settings) -> IndexStore:
    """The set's index, in the cache (built once; unchanged articles cost nothing). An index
    cached before a change to the chunker is rebuilt with the chunker of now, its stored
    vectors reused: unchanged articles are never re-chunked by an ingest. With
    NEWSBOT_DATABASE_URL set, the index is then copied into PostgreSQL (`database_copy`)
    and searched there."""
    directory = bench_cache(settings, embedder.model_id) / split / name
    articles = load_corpus(BENCH / split / name / "corpus.jsonl")
    store = Store(directory, embedder.model_id, embedder.dim)
    stamp, fingerprint = directory / "chunker.sha256", chunker_fingerprint(embedder)
    checked = stamp.exists() and stamp.read_text() == fingerprint
    if not checked and not same_chunks(store, articles, embedder):
        building = directory.with_name(name + ".rechunk")
        shutil.rmtree(building, ignore_errors=True)
        fresh = Store(building, embedder.model_id, embedder.dim)
        fresh.copy_embeddings_from(store)
        store.close()
        fresh.add_articles(articles, embedder, progress=True)
        fresh.close()
        shutil.rmtree(directory)
        building.rename(directory)
        store = Store(directory, embedder.model_id, embedder.dim)
    store.add_articles(articles, embedder)
    if not checked:
        # Like the product, every quotable sentence is embedded (the best-sentence score and
        # the quotes read them); this pass only completes an index cached by an older bench,
        # so an index stamped with today's fingerprint has had it.
        store.embed_texts(every_sentence(store), embedder)
        stamp.write_text(fingerprint)
    if settings.database_url is not None:
        return database_copy(store, f"{split}_{name}", articles, embedder, settings)
    return store


def database_copy(
    store: Store,
    name: str,
    articles: Sequence[Article],
    embedder: Embedder,
    settings: Settings,
) -> IndexStore:
    """The set's index on PostgreSQL + pgvector, in a schema of its own (named after the
    set, the model and the chunker, so a change to either builds a new one), seeded with
    the SQLite index's vectors (e5 and USE): built once, and nothing is embedded."""
    from index.pg_schema import schema_name
    from index.pg_store import PgStore

    assert settings.database_url is not None
    fingerprint = chunker_fingerprint(embedder)[:8]
    schema = schema_name(name, model_slug(embedder.model_id), fingerprint)
    copy = PgStore(settings.database_url.get_secret_value(), embedder.model_id, embedder.dim,
                   schema=schema)  # fmt: skip
    if copy.stats().articles < len(articles):  # new, or a copy cut short: (re)fill it
        started = time.monotonic()
        secondary = []
        if settings.use_weight > 0:
            from index.usem import get_use_encoder

            secondary.append(get_use_encoder())
        copy.copy_embeddings_from(store, secondary)
        report = copy.add_articles(articles, embedder, progress=True)
        print(
            f"  {name}: copied into PostgreSQL schema {schema} in "
            f"{time.monotonic() - started:.0f} s ({report.added} articles added, "
            f"{report.passages} passages, {report.embedded} texts embedded)",
            flush=True,
        )
    store.close()
    return copy


def chunker_fingerprint(embedder: Embedder) -> str:
    """Changes whenever the code that cuts passages or the model's token budget does: an
    index stamped with today's fingerprint needs no re-chunking check (which tokenises every
    corpus, ~45 s of a warm table)."""
    code = b"".join(Path(str(m.__file__)).read_bytes() for m in (chunking, articles_module))
    budget = f"{embedder.model_id}:{embedder.max_tokens}".encode()
    return hashlib.sha256(code + budget).hexdigest()


def same_chunks(store: Store, articles: Sequence[Article], embedder: Embedder) -> bool:
    """Whether the passages the store holds are those the chunker gives today (an empty
    store holds nothing to redo)."""
    stored = store.passage_bounds()
    return not stored or all(
        stored.get(a.id)
        == [
            (p.start, p.end)
            for p in split_into_passages(a, embedder.count_tokens, embedder.max_tokens)
        ]
        for a in articles
        if a.id in stored
    )


def ask(
    store: IndexStore,
    queries: CachedQueries,
    embedder: Embedder,
    settings: Settings,
    texts: list[str],
) -> list[tuple[Retrieval, Answer]]:
    """The product's answers (bot/engine.py `answer_questions`), with the retrievals used."""
    retriever = build_retriever(settings, store, queries)  # type: ignore[arg-type]
    out: list[tuple[Retrieval, Answer]] = []
    for start in range(0, len(texts), 256):
        out += answer_questions(retriever, store, embedder, settings, texts[start : start + 256])
    return out


def first_sentence(retrieval: Retrieval) -> str:
    if not retrieval.hits:
        return ""
    passage = retrieval.hits[0].passage
    spans = quote_spans(passage.article.text, passage.start, passage.end)
    return passage.article.text[spans[0][0] : spans[0][1]] if spans else passage.text


def run_set(
    split: str,
    name: str,
    embedder: Embedder,
    queries_cache: CachedQueries,
    settings: Settings,
    limit: int | None,
    quote_sample: int,
) -> SetResult:
    started = time.monotonic()
    store = open_set_store(split, name, embedder, settings)
    queries = load_queries(BENCH / split / name / "queries.jsonl")
    if limit:
        queries = queries[:limit]
    texts = [str(q["text"]) for q in queries]
    retrievals = rank_queries(store, queries_cache, embedder, settings, texts)
    ranked = [documents(r) for r in retrievals]
    write_run(OUT / split / f"{name}.run.jsonl", queries, ranked)
    r1, r5, mrr = score_run(queries, ranked)
    result = SetResult(split, name, store.stats().passages, len(queries), r1, r5, mrr)
    with_answers = [i for i, q in enumerate(queries) if answers_of(q)]
    if with_answers and quote_sample > 0:
        sample = sorted(random.Random(7).sample(with_answers, min(quote_sample, len(with_answers))))
        first = every = base = 0
        for i in sample:
            top = dataclasses.replace(retrievals[i], hits=retrievals[i].hits[: settings.top_k])
            answer = compose_answer(
                top,
                store,
                embedder,
                settings.max_citations,
            )
            gold = answers_of(queries[i])
            quotes = [c.quote for c in answer.citations]
            first += bool(quotes) and any(a in quotes[0] for a in gold)
            every += any(a in q for q in quotes for a in gold)
            base += any(a in first_sentence(top) for a in gold)
        n = len(sample)
        result.quote = (round(first / n, 3), round(every / n, 3), round(base / n, 3), n)
    store.close()
    result.seconds = time.monotonic() - started
    return result


def run_refusals(
    split: str,
    embedder: Embedder,
    queries_cache: CachedQueries,
    settings: Settings,
    sample: int,
) -> RefusalResult:
    """Answer rate on answerable questions (gold in top 5) and refusal rate on negatives,
    at the settings' floor, with the product's retriever (top_k, passage floor): a question
    is answered iff its best quote's evidence clears the floor, as in `compose_answer`."""
    result = RefusalResult(split)
    off_topic = json.loads(NEGATIVES.read_text(encoding="utf-8"))
    rng = random.Random(7)
    for name, other in PAIRS[split]:
        store = open_set_store(split, name, embedder, settings)
        own = load_queries(BENCH / split / name / "queries.jsonl")
        own = rng.sample(own, min(sample, len(own)))
        foreign = load_queries(BENCH / split / other / "queries.jsonl")
        negatives = [str(q["text"]) for q in rng.sample(foreign, min(sample, len(foreign)))]
        negatives += off_topic["en"] + off_topic["fr"]
        for retrieval, answer in ask(store, queries_cache, embedder, settings, negatives):
            result.negative_scores.append(best_evidence(score_quotes(retrieval, store, embedder)))
            result.refused.append(not answer.answered)
        texts = [str(q["text"]) for q in own]
        for query, (retrieval, answer) in zip(
            own, ask(store, queries_cache, embedder, settings, texts), strict=True
        ):
            gold = {str(g) for g in query["gold_ids"]}  # type: ignore[attr-defined]
            if not {h.passage.article.id for h in retrieval.hits} & gold:
                continue
            result.positive_scores.append(best_evidence(score_quotes(retrieval, store, embedder)))
            result.answered.append(answer.answered)
        store.close()
    return result


def table(results: list[SetResult], refusals: list[RefusalResult], quote_sample: int) -> str:
    lines = [
        "| split | set | passages | queries | R@1 | R@5 | MRR@10 | quote has answer: "
        "first quote / all quotes shown / first sentence of top passage "
        f"(sample ≤{quote_sample}) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        quote = (
            f"{r.quote[0]:.3f} / {r.quote[1]:.3f} / {r.quote[2]:.3f} (n={r.quote[3]})"
            if r.quote
            else "–"
        )
        lines.append(
            f"| {r.split} | {r.name} | {r.passages} | {r.queries} | {r.r1:.3f} | {r.r5:.3f} | "
            f"{r.mrr:.3f} | {quote} |"
        )
    for ref in refusals:
        refused = float(np.mean(ref.refused)) if ref.refused else float("nan")
        answered = float(np.mean(ref.answered)) if ref.answered else float("nan")
        lines.append(
            f"| {ref.split} | refusals | | {len(ref.refused)} negatives, {len(ref.answered)} "
            f"answerable (gold in top 5) | refused {refused:.3f} | answered {answered:.3f} | | |"
        )
    return "\n".join(lines)


def calibration(refusals: list[RefusalResult]) -> str:
    """Answer and refusal rates over a range of floors (tune on dev only)."""
    lines = ["| split | floor | answered | refused |", "|---|---|---|---|"]
    for ref in refusals:
        pos, neg = np.array(ref.positive_scores), np.array(ref.negative_scores)
        for f in np.round(np.arange(0.40, 0.46, 0.005), 3):
            lines.append(
                f"| {ref.split} | {f:.3f} | {(pos >= f).mean():.3f} | {(neg < f).mean():.3f} |"
            )
    return "\n".join(lines)


def set_names(split: str, wanted: Sequence[str]) -> list[str]:
    names = sorted(p.name for p in (BENCH / split).iterdir() if (p / "queries.jsonl").exists())
    return [n for n in names if not wanted or n in wanted]


def run_quality(args: argparse.Namespace, settings: Settings) -> str:
    started = time.monotonic()
    embedder = embedder_for(settings)
    queries_cache = CachedQueries(embedder, settings.cache_dir / "bench" / "queries.sqlite3")
    splits = [args.split] if args.split else ["dev", "test"]
    results: list[SetResult] = []
    for split in splits:
        for name in set_names(split, args.sets):
            results.append(
                run_set(
                    split, name, embedder, queries_cache, settings, args.limit, args.quote_sample
                )
            )
            print(f"  {split} {name}: {results[-1].seconds:.0f} s", flush=True)
    refusals = []
    if not args.no_refusals:
        for split in splits:
            refusals.append(
                run_refusals(split, embedder, queries_cache, settings, args.refusal_sample)
            )
    elapsed = time.monotonic() - started
    config = (
        f"lexical_weight={settings.lexical_weight} use_weight={settings.use_weight} "
        f"use_cross_only={settings.use_cross_only} "
        f"cross_lexical_share={settings.cross_lexical_share} "
        f"use_question_share={settings.use_question_share} "
        f"sentence_weight={settings.sentence_weight} "
        f"sentence_headline_share={settings.sentence_headline_share} "
        f"score_floor={settings.score_floor}"
    )
    report = f"{config}\n\n{table(results, refusals, args.quote_sample)}\n"
    if args.calibrate and refusals:
        report += "\n" + calibration(refusals) + "\n"
    return report + f"\nTotal run time: {elapsed:.0f} s\n"
