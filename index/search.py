"""Retriever: question -> the passages most likely to answer it, with scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from index.store import Store, StoredPassage


class QueryEncoder(Protocol):
    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Hit:
    """A retrieved passage and its cosine similarity to the question."""

    passage: StoredPassage
    score: float


@dataclass(frozen=True)
class SearchFilters:
    """Optional restrictions: dates are compared as ISO prefixes (YYYY-MM or YYYY-MM-DD)."""

    since: str | None = None
    until: str | None = None
    sources: tuple[str, ...] = ()

    def accepts(self, passage: StoredPassage) -> bool:
        date = passage.article.date
        if self.since and (date is None or date[: len(self.since)] < self.since):
            return False
        if self.until and (date is None or date[: len(self.until)] > self.until):
            return False
        return not self.sources or passage.article.source.lower() in {
            s.lower() for s in self.sources
        }


@dataclass(frozen=True)
class Retrieval:
    """One question's results, with its query vector (reused to score quotes)."""

    question: str
    vector: np.ndarray
    hits: list[Hit]


class Retriever:
    """Dense retrieval over the store's FAISS index, with filters and a score floor."""

    def __init__(self, store: Store, encoder: QueryEncoder, k: int = 5, floor: float = 0.0):
        self.store = store
        self.encoder = encoder
        self.k = k
        self.floor = floor

    def search(
        self,
        question: str,
        k: int | None = None,
        filters: SearchFilters | None = None,
        floor: float | None = None,
    ) -> list[Hit]:
        """The top passages for one question, best first, none under the floor."""
        return self.retrieve_many([question], k, filters, floor)[0].hits

    def retrieve_many(
        self,
        questions: Sequence[str],
        k: int | None = None,
        filters: SearchFilters | None = None,
        floor: float | None = None,
    ) -> list[Retrieval]:
        """Batch retrieval: the questions are embedded together."""
        if not questions:
            return []
        k = self.k if k is None else k
        floor = self.floor if floor is None else floor
        vectors = self.encoder.embed_queries(list(questions))
        self.store.refresh()
        fetch = max(k * 20, 200) if filters else k
        results = []
        for question, vector, ranked in zip(
            questions, vectors, self.store.search_vectors(vectors, fetch), strict=True
        ):
            passages = self.store.passages([pid for pid, _ in ranked])
            hits = [
                Hit(passages[pid], score)
                for pid, score in ranked
                if pid in passages
                and score >= floor
                and (filters is None or filters.accepts(passages[pid]))
            ]
            results.append(Retrieval(question, vector, hits[:k]))
        return results
