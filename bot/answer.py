"""Question + retrieved passages -> an Answer made of verbatim quotes with citations.

Nothing here writes prose: the answer is the sentence of the indexed news that best
answers the question, and every quote is a slice of its article's text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

from index.chunking import sentence_spans
from index.search import Hit, Retrieval
from index.store import PassageEncoder

NO_SOURCE = "The indexed news has nothing on this."

# How much the passage's own score counts when ranking its sentences: a sentence is read
# in the context of the passage that was retrieved for the question.
PASSAGE_WEIGHT = 0.5
# A further article is cited only if its best sentence is this close to the best one.
CITATION_MARGIN = 0.06
# Sentences shorter than this are quoted together with the next one of their passage.
MIN_QUOTE_WORDS = 6


class SentenceEmbedder(Protocol):
    def embed_texts(self, texts: Sequence[str], encoder: PassageEncoder) -> np.ndarray: ...


@dataclass(frozen=True)
class Citation:
    n: int
    article_id: str
    title: str
    source: str
    date: str | None
    url: str | None
    quote: str
    score: float


@dataclass(frozen=True)
class Answer:
    question: str
    answered: bool
    answer: str
    citations: list[Citation] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "question": self.question,
            "answered": self.answered,
            "answer": self.answer,
            "citations": [asdict(c) for c in self.citations],
        }


@dataclass(frozen=True)
class _Candidate:
    hit: Hit
    start: int
    end: int
    similarity: float  # the sentence's own cosine to the question
    score: float  # what candidates are ranked by

    @property
    def quote(self) -> str:
        return self.hit.passage.article.text[self.start : self.end]


def quote_candidates(hits: Sequence[Hit]) -> list[tuple[Hit, int, int]]:
    """Every sentence of the retrieved passages as (hit, start, end) in its article; a very
    short sentence is joined to the next so a quote can stand alone."""
    out: list[tuple[Hit, int, int]] = []
    for hit in hits:
        p = hit.passage
        spans = sentence_spans(p.article.text, p.start, p.end)
        for i, span in enumerate(spans):
            end = span.end
            words = len(p.article.text[span.start : span.end].split())
            if words < MIN_QUOTE_WORDS and i + 1 < len(spans):
                end = spans[i + 1].end
            out.append((hit, span.start, end))
    return out


def compose_answer(
    retrieval: Retrieval,
    sentences: SentenceEmbedder,
    encoder: PassageEncoder,
    max_citations: int = 3,
    quote_floor: float = 0.0,
) -> Answer:
    """Pick the best-answering sentence of each retrieved article and cite it. When no
    sentence is at least `quote_floor` similar to the question, say the news has nothing
    on it: a sentence that close is the evidence, not a passage that is vaguely related."""
    if not retrieval.hits:
        return Answer(retrieval.question, False, NO_SOURCE)
    candidates = quote_candidates(retrieval.hits)
    vectors = sentences.embed_texts(
        [c[0].passage.article.text[c[1] : c[2]] for c in candidates], encoder
    )
    sentence_scores = vectors @ retrieval.vector
    scored = [
        _Candidate(hit, start, end, float(s), float(s) + PASSAGE_WEIGHT * hit.score)
        for (hit, start, end), s in zip(candidates, sentence_scores, strict=True)
        if s >= quote_floor
    ]
    if not scored:
        return Answer(retrieval.question, False, NO_SOURCE)
    scored.sort(key=lambda c: c.score, reverse=True)
    best_per_article: dict[str, _Candidate] = {}
    for cand in scored:
        best_per_article.setdefault(cand.hit.passage.article.id, cand)
    chosen = [c for c in best_per_article.values() if c.score >= scored[0].score - CITATION_MARGIN][
        :max_citations
    ]
    citations = [
        Citation(
            n=i,
            article_id=c.hit.passage.article.id,
            title=c.hit.passage.article.title,
            source=c.hit.passage.article.source,
            date=c.hit.passage.article.date,
            url=c.hit.passage.article.url,
            quote=c.quote,
            score=round(c.similarity, 4),
        )
        for i, c in enumerate(chosen, start=1)
    ]
    return Answer(retrieval.question, True, citations[0].quote, citations)
