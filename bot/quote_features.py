"""The features a quote is chosen by, and the linear model that weighs them.

Each quotable sentence of the retrieved passages is described by how close it is to the
question (its own e5 cosine, its passage's, its neighbours'), how much of the question it
repeats, what it says beyond the question, and whether it holds the kind of answer the
question asks for (bot/answer_type.py). A linear model fitted on public dev sets by
`python -m bench.train_quotes` (listwise logistic regression: the answering sentence
against the others of the same question) weighs them; its weights are quote_model.json.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from bot.answer_type import ANSWER_TYPES, OTHER, expected_answer_type, sentence_facts, specifics
from index.lexical import content_words, question_language, word_overlap
from index.search import Hit

MODEL_PATH = Path(__file__).with_name("quote_model.json")
# A neighbour that is not among the candidates counts as this far under the best cosine.
MISSING_NEIGHBOUR = -0.3

FEATURES = (
    "cosine",  # the sentence's e5 cosine to the question, less the best candidate's
    "cross",  # the same, when the question's language is not the article's (else 0)
    "passage",  # its passage's cosine, less the best passage's
    "previous",  # the previous sentence's cosine, less the best (answers follow restatements)
    "next",  # the next sentence's cosine, less the best
    "overlap",  # share of the question's words it repeats (same language only)
    "restates",  # share of its own words the question already holds (same language only)
    "covered",  # share of the question's names and numbers it repeats (any language)
    "novel",  # log(1 + names and numbers it holds that the question does not)
    *(f"type_{t}" for t in ANSWER_TYPES),  # it holds the type the question asks for
    "type_missing",  # the question asks for a type it does not hold
    "lead",  # the article's first sentence
    "words",  # log of its length in words
    "rank",  # its article's place among the retrieved ones (0 = first)
)


@dataclass(frozen=True)
class Candidate:
    """A quotable span of a retrieved passage, as (hit, start, end) in its article."""

    hit: Hit
    start: int
    end: int

    @property
    def text(self) -> str:
        return self.hit.passage.article.text[self.start : self.end]


def unique_candidates(
    hits: Sequence[Hit], spans: Sequence[list[tuple[int, int]]]
) -> list[Candidate]:
    """One candidate per distinct span (overlapping passages share sentences): the one of the
    best-ranked hit."""
    seen: set[tuple[str, int, int]] = set()
    out = []
    for hit, hit_spans in zip(hits, spans, strict=True):
        for start, end in hit_spans:
            key = (hit.passage.article.id, start, end)
            if key not in seen:
                seen.add(key)
                out.append(Candidate(hit, start, end))
    return out


def candidate_features(
    question: str, candidates: Sequence[Candidate], cosines: np.ndarray, hits: Sequence[Hit]
) -> tuple[np.ndarray, list[frozenset[str]]]:
    """The FEATURES of each candidate, one row each (`cosines`: each one's e5 cosine), and
    the answer types each one holds."""
    n = len(candidates)
    x = np.zeros((n, len(FEATURES)), dtype=np.float32)
    types: list[frozenset[str]] = []
    if not n:
        return x, types
    best = float(cosines.max())
    best_passage = max(c.hit.score for c in candidates)
    rank = article_ranks(hits)
    kind = expected_answer_type(question)
    words_lang = question_language(question)
    words = content_words(question)
    question_words = set(words)
    wanted = specifics(question)
    neighbours = _neighbours(candidates)
    column = {name: j for j, name in enumerate(FEATURES)}
    for i, c in enumerate(candidates):
        text = c.text
        row = x[i]
        row[column["cosine"]] = cosines[i] - best
        # Cosines across languages run lower and closer together: their own weight.
        if words_lang is not None and words_lang != c.hit.passage.article.lang:
            row[column["cross"]] = cosines[i] - best
        row[column["passage"]] = c.hit.score - best_passage
        prev, nxt = neighbours[i]
        row[column["previous"]] = MISSING_NEIGHBOUR if prev is None else cosines[prev] - best
        row[column["next"]] = MISSING_NEIGHBOUR if nxt is None else cosines[nxt] - best
        if words_lang is not None and words_lang == c.hit.passage.article.lang and words:
            row[column["overlap"]] = word_overlap(words, text)
            own = content_words(text)
            row[column["restates"]] = sum(w in question_words for w in own) / max(1, len(own))
        facts = sentence_facts(text, wanted)
        types.append(facts.types)
        row[column["covered"]] = facts.covered
        row[column["novel"]] = math.log1p(facts.novel)
        if kind != OTHER:
            if kind in facts.types:
                row[column[f"type_{kind}"]] = 1.0
            else:
                row[column["type_missing"]] = 1.0
        # The first candidate of an article whose passage opens it: the article's lead.
        row[column["lead"]] = float(prev is None and c.hit.passage.start == 0)
        row[column["words"]] = math.log(max(1, len(text.split())))
        row[column["rank"]] = rank.get(id(c.hit), len(hits))
    return x, types


def article_ranks(hits: Sequence[Hit]) -> dict[int, int]:
    """For each hit (by id), its article's place among the retrieved articles. Not the
    passage's place: a news answer is often in a later passage of the best article (the
    first one restates the question), which a rank over passages would count against it."""
    articles: dict[str, int] = {}
    return {id(h): articles.setdefault(h.passage.article.id, len(articles)) for h in hits}


def _neighbours(candidates: Sequence[Candidate]) -> list[tuple[int | None, int | None]]:
    """For each candidate, the candidates just before and after it in its article."""
    by_article: dict[str, list[int]] = {}
    for i, c in enumerate(candidates):
        by_article.setdefault(c.hit.passage.article.id, []).append(i)
    out: list[tuple[int | None, int | None]] = [(None, None)] * len(candidates)
    for indices in by_article.values():
        indices.sort(key=lambda i: (candidates[i].start, candidates[i].end))
        for pos, i in enumerate(indices):
            prev = indices[pos - 1] if pos > 0 else None
            nxt = indices[pos + 1] if pos + 1 < len(indices) else None
            out[i] = (prev, nxt)
    return out


@lru_cache(maxsize=1)
def quote_weights() -> np.ndarray:
    """The fitted weights, in FEATURES order (a feature the file lacks weighs nothing)."""
    model = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    weights = model["weights"]
    return np.array([float(weights.get(name, 0.0)) for name in FEATURES], dtype=np.float32)
