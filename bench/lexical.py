"""BM25 micro benchmark: the cost of `lexical_search` as the full-text index grows.

    python -m bench.lexical [--sizes 10000 100000 1000000] [--questions 200]

Builds FTS5 tables (the product's tokenizer) of synthetic passages made of real sentences
(sampled from the retrieval sets' corpora; no embedding) and times the product's
`lexical_search` (k = the fusion pool) for real questions of those sets: exact BM25 (every
word of the question scored) against the row budget (index/lexical.py, ROW_BUDGET: common
words left out of the search, then added back to the scores of the best RESCORED * k rows),
with the words' counts cold (none counted yet), warm, warm again with FTS5's bm25() scoring
the rows instead of the words' places (index/lexical.py, `_bm25_of_instances`; the results
must be identical), and after a write (each question right after one passage is added and
committed). Agreement with exact BM25:
top-10 and top-100 overlap. Then, on every real retrieval set (index built from its corpus),
whether the bounded search returns exactly the exact top-100. Prints Markdown tables.
Built tables are kept in .cache/bench/lexical/.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sqlite3
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

from index import lexical
from index.embedding import default_cache_dir
from index.lexical import FTS_SCHEMA, TermCounts, lexical_search
from index.search import POOL

SETS = Path(__file__).resolve().parents[2] / "shared" / "bench" / "retrieval"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Only the full-text table of the product's schema: the passages it mirrors are not needed.
_FTS_ONLY = FTS_SCHEMA.split(";")[0] + ";"


def set_dirs() -> list[Path]:
    return sorted(p.parent for p in SETS.glob("*/*/corpus.jsonl"))


def read_jsonl(path: Path) -> Iterator[dict[str, str]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def real_sentences() -> list[str]:
    seen: set[str] = set()
    for directory in set_dirs():
        for row in read_jsonl(directory / "corpus.jsonl"):
            for sentence in _SENTENCE_END.split(row["text"]):
                if len(sentence) > 20:
                    seen.add(sentence.strip())
    return sorted(seen)


def real_questions(count: int, seed: int = 7) -> list[str]:
    questions = sorted(
        {
            row["text"]
            for d in set_dirs()
            if d.parent.name == "dev"
            for row in read_jsonl(d / "queries.jsonl")
        }
    )
    return random.Random(seed).sample(questions, min(count, len(questions)))


def synthetic_table(size: int, sentences: list[str]) -> sqlite3.Connection:
    """An FTS5 table of `size` passages of 3 to 7 random real sentences (built once)."""
    directory = default_cache_dir() / "bench" / "lexical"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"fts-{size}.sqlite3"
    if not path.exists():
        building = path.with_suffix(".building")
        building.unlink(missing_ok=True)
        db = sqlite3.connect(building)
        db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + _FTS_ONLY)
        rng = random.Random(size)
        for start in range(0, size, 10_000):
            db.executemany(
                "INSERT INTO passages_fts(rowid, body) VALUES (?, ?)",
                (
                    (i, " ".join(rng.choices(sentences, k=rng.randint(3, 7))))
                    for i in range(start + 1, min(size, start + 10_000) + 1)
                ),
            )
        db.execute("INSERT INTO passages_fts(passages_fts) VALUES ('optimize')")
        db.commit()
        db.close()
        building.rename(path)
    return sqlite3.connect(path)


def overlap(a: list[tuple[int, float]], b: list[tuple[int, float]], depth: int) -> float:
    top_a, top_b = {p for p, _ in a[:depth]}, {p for p, _ in b[:depth]}
    return len(top_a & top_b) / max(1, len(top_b))


def timed(
    db: sqlite3.Connection,
    questions: list[str],
    counts: TermCounts | None,
    generation: int = 1,
) -> tuple[list[list[tuple[int, float]]], list[float]]:
    results, times = [], []
    for question in questions:
        t0 = time.perf_counter()
        results.append(lexical_search(db, question, POOL, counts, generation))
        times.append((time.perf_counter() - t0) * 1000)
    return results, times


def after_writes(
    db: sqlite3.Connection, questions: list[str], counts: TermCounts, sentences: list[str]
) -> list[float]:
    """Each question asked right after a write: one passage added and committed (a new
    generation, as the store writes), then deleted after the question, so the table holds
    what it was built with."""
    times = []
    rng = random.Random(11)
    top = int(db.execute("SELECT max(rowid) FROM passages_fts").fetchone()[0])
    for generation, question in enumerate(questions, start=2):
        # A new id each time, as the store gives (a row's length is remembered by its id).
        rowid = top + generation
        db.execute(
            "INSERT INTO passages_fts(rowid, body) VALUES (?, ?)",
            (rowid, " ".join(rng.choices(sentences, k=5))),
        )
        db.commit()
        _, [took] = timed(db, [question], counts, generation)
        times.append(took)
        db.execute("DELETE FROM passages_fts WHERE rowid = ?", (rowid,))
        db.commit()
    return times


def ms(times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"{statistics.mean(times):.1f} / {p95:.1f} / {ordered[-1]:.0f}"


def scale_table(sizes: list[int], questions: list[str]) -> None:
    sentences = real_sentences()
    print(f"{len(questions)} real questions (dev sets), k = {POOL}, {len(sentences)} sentences")
    print()
    print(
        "| passages | exact BM25 ms (mean / p95 / max) | bounded, cold | bounded, warm "
        "| bounded, warm, scored by bm25() | bounded, each question after a write "
        "| top-10 overlap | top-100 overlap | identical top-100 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for size in sizes:
        db = synthetic_table(size, sentences)
        exact, exact_ms = timed(db, questions, None)
        counts = TermCounts()
        bounded, cold_ms = timed(db, questions, counts)
        _, warm_ms = timed(db, questions, counts)
        # The same search with FTS5's bm25() scoring the rows (before 2026-12-03 evening).
        with mock.patch.object(lexical, "_bm25_of_instances", lambda *_: None):
            by_fts5, fts5_ms = timed(db, questions, counts)
        assert by_fts5 == bounded, "bm25() and the words' places disagree"
        after_ms = after_writes(db, questions, counts, sentences)
        top10 = statistics.mean(overlap(b, e, 10) for b, e in zip(bounded, exact, strict=True))
        top100 = statistics.mean(overlap(b, e, 100) for b, e in zip(bounded, exact, strict=True))
        same = sum(b == e for b, e in zip(bounded, exact, strict=True))
        print(
            f"| {size:,} | {ms(exact_ms)} | {ms(cold_ms)} | {ms(warm_ms)} | {ms(fts5_ms)} "
            f"| {ms(after_ms)} "
            f"| {top10:.3f} "
            f"| {top100:.3f} | {same}/{len(questions)} |"
        )
        db.close()


def real_sets_table() -> None:
    print()
    print("| set | passages | questions | bounded top-100 = exact top-100 |")
    print("|---|---|---|---|")
    for directory in set_dirs():
        db = sqlite3.connect(":memory:")
        db.executescript(_FTS_ONLY)
        rows = list(read_jsonl(directory / "corpus.jsonl"))
        db.executemany(
            "INSERT INTO passages_fts(rowid, body) VALUES (?, ?)",
            ((i, f"{r.get('title', '')} {r['text']}") for i, r in enumerate(rows, 1)),
        )
        db.commit()  # as the store does: FTS5 writes its averages (what BM25 reads) at commit
        questions = [q["text"] for q in read_jsonl(directory / "queries.jsonl")]
        counts = TermCounts()
        same = sum(
            lexical_search(db, q, POOL) == lexical_search(db, q, POOL, counts, 1) for q in questions
        )
        name = f"{directory.parent.name}/{directory.name}"
        print(f"| {name} | {len(rows)} | {len(questions)} | {same}/{len(questions)} |")
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--skip-real", action="store_true", help="skip the real sets' check")
    args = parser.parse_args()
    scale_table(args.sizes, real_questions(args.questions))
    if not args.skip_real:
        real_sets_table()


if __name__ == "__main__":
    main()
