"""The one interface the ranking, answering and bot code read and write the index through.

Two backends implement it: `index.store.Store` (SQLite + FAISS files, the embedded default)
and `index.pg_store.PgStore` (PostgreSQL + pgvector, chosen by NEWSBOT_DATABASE_URL). The
retriever (index/search.py), the answer step (bot/answer.py), the engine, polls and alerts
only call what is listed here, so they never know which one runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import numpy as np

from index.articles import Article
from index.store_base import (
    IngestReport,
    PassageEncoder,
    SecondaryEncoder,
    StoredPassage,
    StoreStats,
)


class IndexStore(Protocol):
    """Articles, passages, their vectors and the lexical index, behind one interface."""

    model_id: str
    dim: int

    # --- searching (index/search.py) ----------------------------------------------------

    def refresh(self) -> bool:
        """Catch up with writes made by other processes; whether anything changed."""
        ...

    def search_vectors(
        self, query: np.ndarray, k: int, among: Sequence[int] | None = None, exact: bool = False
    ) -> list[list[tuple[int, float]]]:
        """Top-k (passage id, e5 cosine) per query row, only among `among` when given."""
        ...

    def passage_ids_matching(
        self, since: str | None, until: str | None, sources: Sequence[str]
    ) -> list[int]:
        """Passages of articles within [since, until] (ISO prefixes) and from `sources`."""
        ...

    def lexical_search(
        self, question: str, k: int, among: Sequence[int] = ()
    ) -> list[tuple[int, float]]:
        """Top-k (passage id, BM25 score, higher is better) for the question's words."""
        ...

    def secondary_search(
        self, encoder: SecondaryEncoder, query: np.ndarray, k: int
    ) -> list[tuple[int, float]]:
        """Passages of the k texts closest to the query under the second model (USE)."""
        ...

    def secondary_scores(
        self, encoder: SecondaryEncoder, ids: Iterable[int], query: np.ndarray
    ) -> dict[int, float]:
        """The second model's cosine of the query with each of these passages."""
        ...

    def secondary_vectors(self, encoder: SecondaryEncoder) -> object:
        """Bring the second model's vectors up to date (embedding texts never seen)."""
        ...

    def passage_languages(self, ids: Sequence[int]) -> dict[int, str | None]: ...

    def passage_vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored e5 vectors of these passages, in order."""
        ...

    def sentence_vectors(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """Each passage's quotable sentences' stored vectors (rows), by passage id."""
        ...

    def passages(self, ids: Sequence[int]) -> dict[int, StoredPassage]: ...

    # --- answering (bot/answer.py) ------------------------------------------------------

    def embed_texts(self, texts: Sequence[str], encoder: PassageEncoder) -> np.ndarray:
        """Passage-side vectors of arbitrary texts through the embedding cache."""
        ...

    # --- alerts, polls, admin -----------------------------------------------------------

    def recent_story_vectors(self, limit: int) -> dict[str, np.ndarray]: ...

    def article_passages(self, article_id: str) -> tuple[list[StoredPassage], np.ndarray]: ...

    def stories_added_since(self, since: float) -> dict[str, float]: ...

    def article_ids(self) -> set[str]: ...

    def article_hashes(self) -> dict[str, str]: ...

    def article(self, article_id: str) -> Article | None: ...

    def all_articles(self) -> list[Article]: ...

    def find_article(self, ref: str) -> Article | None: ...

    def articles_older_than(self, date: str, added_before: float) -> list[str]: ...

    def stats(self) -> StoreStats: ...

    def sources(self) -> list[str]: ...

    # --- writing ------------------------------------------------------------------------

    def add_articles(
        self,
        articles: Sequence[Article],
        encoder: PassageEncoder,
        progress: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> IngestReport: ...

    def remove_articles(self, ids: Sequence[str]) -> int: ...

    # --- lifetime -----------------------------------------------------------------------

    @property
    def retired(self) -> bool:
        """Whether a reindex swapped another store in (its next user must reopen)."""
        ...

    @property
    def location(self) -> str:
        """Where the index lives, for logs and messages (a folder, or a database)."""
        ...

    def close(self) -> None: ...
