"""Question answering benchmark: questions over whole articles, answered by verbatim quotes.

    newsbot bench qa DIR [--out FILE]

DIR holds `articles/` (article files in any shape `newsbot ingest` reads; an `index.jsonl`
there is the set's metadata, not articles) and `questions.jsonl`, one object per line with
`id`, `question`, `answerable`, `gold_file` and `answer_keys` (the format of
../shared/bench/newsqa-dev). The articles are indexed with the product's pipeline into
CACHE_DIR/bench/qa/<DIR name>, and every question is asked through `Engine.ask`, the code
behind `newsbot ask --json`. An answerable question counts as answered with the key when
one of its keys is a substring of a quote of the first three citations; an unanswerable
one counts as refused when the answer is "no source" with no quote.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.quality import bench_cache
from bot.answer import Answer
from bot.config import Settings
from index.articles import Article, iter_article_files, load_articles
from index.chunking import sentence_spans
from index.embedding import embedder_for

METADATA = "index.jsonl"
CITATIONS_SCORED = 3


@dataclass
class QAScore:
    """What one set of answers achieved; rates are over the questions of each kind."""

    answerable: int = 0
    with_key: int = 0  # a key in the quotes of the first CITATIONS_SCORED citations
    key_first: int = 0  # a key in the first quote
    gold_first: int = 0  # the first citation is from the gold article
    unanswerable: int = 0
    refused: int = 0
    quoted_chars: list[int] = field(default_factory=list)  # per answered question
    max_sentences: int = 0  # the most sentences one citation quoted
    by_category: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))

    def rate(self, part: int, whole: int) -> float:
        return part / whole if whole else float("nan")


def question_category(question: dict[str, object]) -> str:
    """en-fr, fr, en-en, fr-en, hard (from the id), near-miss or off-topic (from the notes)."""
    if not question["answerable"]:
        notes = str(question.get("notes") or "")
        return "near-miss" if notes.startswith("near-miss") else "off-topic"
    prefix = str(question["id"]).rsplit("-", 1)[0]
    return prefix


def quote_has_key(quote: str, keys: Sequence[str]) -> bool:
    return any(key in quote for key in keys)


def score_answers(
    questions: Sequence[dict[str, object]],
    answers: Sequence[Answer],
    file_of_article: dict[str, str],
) -> QAScore:
    """Score each answer against its question (see the module docstring)."""
    score = QAScore()
    for question, answer in zip(questions, answers, strict=True):
        category = score.by_category[question_category(question)]
        category[1] += 1
        quotes = [c.quote for c in answer.citations] if answer.answered else []
        if quotes:
            score.quoted_chars.append(sum(len(q) for q in quotes[:CITATIONS_SCORED]))
            score.max_sentences = max(
                score.max_sentences, *(len(sentence_spans(q)) for q in quotes)
            )
        if not question["answerable"]:
            score.unanswerable += 1
            refused = not answer.answered and not quotes
            score.refused += refused
            category[0] += refused
            continue
        keys = [str(k) for k in question["answer_keys"]]  # type: ignore[attr-defined]
        score.answerable += 1
        hit = any(quote_has_key(q, keys) for q in quotes[:CITATIONS_SCORED])
        score.with_key += hit
        score.key_first += bool(quotes) and quote_has_key(quotes[0], keys)
        score.gold_first += bool(quotes) and (
            file_of_article.get(answer.citations[0].article_id) == question["gold_file"]
        )
        category[0] += hit
    return score


def format_score(name: str, score: QAScore, seconds: float) -> str:
    chars = score.quoted_chars
    lines = [
        f"| set | answered with a key (first {CITATIONS_SCORED} citations) | key in the first "
        "quote | first citation from the gold article | unanswerable refused | quoted chars "
        "per answer: mean / median | most sentences in one citation |",
        "|---|---|---|---|---|---|---|",
        f"| {name} | {score.with_key}/{score.answerable} = "
        f"{score.rate(score.with_key, score.answerable):.2f} | {score.key_first}/"
        f"{score.answerable} = {score.rate(score.key_first, score.answerable):.2f} | "
        f"{score.gold_first}/{score.answerable} = "
        f"{score.rate(score.gold_first, score.answerable):.2f} | {score.refused}/"
        f"{score.unanswerable} = {score.rate(score.refused, score.unanswerable):.2f} | "
        f"{statistics.mean(chars) if chars else 0:.0f} / "
        f"{statistics.median(chars) if chars else 0:.0f} | {score.max_sentences} |",
        "",
        "| category | correct | questions | rate |",
        "|---|---|---|---|",
    ]
    for category, (correct, total) in sorted(score.by_category.items()):
        lines.append(f"| {category} | {correct} | {total} | {correct / total:.2f} |")
    return "\n".join(lines) + f"\n\nRun time: {seconds:.0f} s\n"


def article_files(directory: Path) -> list[Path]:
    return [p for p in iter_article_files([directory / "articles"]) if p.name != METADATA]


def load_questions(directory: Path) -> list[dict[str, object]]:
    path = directory / "questions.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def articles_by_file(directory: Path) -> tuple[list[Article], dict[str, str]]:
    """DIR's articles, and the file each one came from (by article id)."""
    articles: list[Article] = []
    file_of_article: dict[str, str] = {}
    for path in article_files(directory.resolve()):  # one file at a time: which is whose
        loaded = load_articles([path])
        for error in loaded.errors:
            print(f"  not indexed: {error}")
        articles += loaded.articles
        file_of_article.update((a.id, path.name) for a in loaded.articles)
    return articles, file_of_article


def run_qa(directory: Path, settings: Settings, out: Path | None = None) -> str:
    """Index DIR's articles, ask its questions as `newsbot ask` does, print the scores."""
    from bot.engine import Engine

    started = time.monotonic()
    directory = directory.resolve()
    articles, file_of_article = articles_by_file(directory)
    data_dir = bench_cache(settings, embedder_for(settings).model_id) / "qa" / directory.name
    engine = Engine(settings.model_copy(update={"data_dir": data_dir, "llm_base_url": None}))
    try:
        engine.add_articles(articles)
        questions = load_questions(directory)
        answers = engine.ask([str(q["question"]) for q in questions])
    finally:
        engine.close()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            "".join(
                json.dumps({"id": q["id"], **a.to_json()}, ensure_ascii=False) + "\n"
                for q, a in zip(questions, answers, strict=True)
            ),
            encoding="utf-8",
        )
    score = score_answers(questions, answers, file_of_article)
    return format_score(directory.name, score, time.monotonic() - started)
