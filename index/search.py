"""Retriever: question -> the passages most likely to answer it, with scores."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from index.backend import IndexStore
from index.lexical import question_language
from index.store_base import StoredPassage

# Candidates drawn from each signal before fusion; also the sample each dense signal's
# scores are standardised over.
POOL = 100
# A question's background: the mean e5 cosine of the passages it ranks BACKGROUND_FROM+1 to
# POOL, i.e. how similar this question finds passages that do not answer it (it runs
# higher within a language, for some wordings, on some corpora). Shrunk toward
# BACKGROUND_PRIOR (the dev sets' mean) as if BACKGROUND_PRIOR_WEIGHT passages had it, so a
# tiny index still gets a sensible value.
BACKGROUND_FROM = 10
BACKGROUND_PRIOR = 0.77
BACKGROUND_PRIOR_WEIGHT = 10
# The best-sentence score is read for this many candidates, those ranked first by every
# other signal; the rest count their passage's cosine (as a passage without sentence
# vectors does). A candidate's sentence vectors are a row read of its own (~300 a
# question, random rows: at 1M passages the largest cost of a question left). Dev quality
# table (`newsbot bench quality --split dev --quote-sample 0`, 2026-12-04) against reading
# all: at 150, orangesum R@1 0.907 -> 0.906, piaf R@5 0.947 -> 0.946, refusals answered
# 0.891 -> 0.893, every other figure equal; at 100, R@1 up to -0.003. 100k passages: the
# read calls of a question 856 -> 607 (median).
SENTENCE_CANDIDATES = 150
# When a question's language can't be told (a short headline), BM25 counts for every
# passage at this fraction of its weight (dev sets: 0.3-1.0 all help, none hurt).
UNKNOWN_LANGUAGE_LEXICAL = 0.5


class QueryEncoder(Protocol):
    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


class SecondQueryEncoder(QueryEncoder, Protocol):
    model_id: str
    dim: int

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Fusion:
    """How the signals beside e5 are weighed (0 turns one off). A passage's rank score is
    z(e5) + sentence * z(best sentence) + secondary * z(USE) + lexical * BM25/max BM25,
    where z standardises a cosine over the question's top POOL passages.

    "Best sentence" is the e5 cosine of the passage's sentence closest to the question
    (the sentence vectors embedded at ingest for quotes): a passage is often found by one
    sentence that says what was asked, which the whole passage's vector dilutes (dev:
    newstest sentence→passage R@1 0.926 → 0.979, cross-lingual xquad +2.3 to +2.6 points).
    A headline (no closing punctuation) sums up a whole article rather than one sentence of
    it, so there the best sentence counts at `sentence_headline` of its weight (dev:
    orangesum title→article R@1 0.906 at full weight, 0.915 at a third).

    BM25 counts fully for passages in the question's language and at `cross_lexical` of
    its weight for the others: across languages only names, numbers and cognates match,
    which help a little but hurt at full weight (plain RRF lost 0.2 R@1 on xquad en-de;
    dev sets: a quarter helps every cross-lingual set, a half starts to hurt).
    USE counts, when `secondary_cross_only`, only for passages in another language (it is
    strong on translations, weaker than e5 within a language), and for a question (ending
    in "?") at `secondary_question` of its weight: USE matches a sentence with its
    translation better than a question with its answer."""

    lexical: float = 0.0
    secondary: float = 0.0
    secondary_cross_only: bool = False
    cross_lexical: float = 0.0
    secondary_question: float = 1.0
    sentence: float = 0.0
    sentence_headline: float = 1.0


@dataclass(frozen=True)
class Hit:
    """A retrieved passage and its e5 cosine similarity to the question (what floors and
    evidence are measured in); `rank` is the fused score hits are ordered by."""

    passage: StoredPassage
    score: float
    rank: float = 0.0


@dataclass(frozen=True)
class SearchFilters:
    """Optional restrictions: dates are compared as ISO prefixes (YYYY-MM or YYYY-MM-DD)."""

    since: str | None = None
    until: str | None = None
    sources: tuple[str, ...] = ()
    # Only these articles' passages: a follow-up keeps to the story it replies to.
    articles: tuple[str, ...] = ()

    def accepts(self, passage: StoredPassage) -> bool:
        if self.articles and passage.article.id not in self.articles:
            return False
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
    """One question's results, with its query vector (reused to score quotes) and its
    background similarity (see `background`)."""

    question: str
    vector: np.ndarray
    hits: list[Hit]
    background: float = BACKGROUND_PRIOR


def background(dense: Sequence[tuple[int, float]]) -> float:
    """The question's background similarity from its dense ranking (best first)."""
    tail = [score for _, score in dense[BACKGROUND_FROM:POOL]]
    return (sum(tail) + BACKGROUND_PRIOR * BACKGROUND_PRIOR_WEIGHT) / (
        len(tail) + BACKGROUND_PRIOR_WEIGHT
    )


class Retriever:
    """Dense retrieval over the store's vector index (FAISS or pgvector), fused with lexical
    (BM25) and second-model scores when `fusion` asks for them, with filters and a score
    floor. The same for both backends (index/backend.py)."""

    def __init__(
        self,
        store: IndexStore,
        encoder: QueryEncoder,
        k: int = 5,
        floor: float = 0.0,
        fusion: Fusion | None = None,
        secondary: SecondQueryEncoder | None = None,
    ):
        self.store = store
        self.encoder = encoder
        self.k = k
        self.floor = floor
        self.fusion = fusion or Fusion()
        self.secondary = secondary if self.fusion.secondary > 0 else None

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
        vectors: np.ndarray | None = None,
    ) -> list[Retrieval]:
        """Batch retrieval: the questions are embedded together (unless their e5 `vectors`
        are given, e.g. by a caller searching the same question twice)."""
        if not questions:
            return []
        k = self.k if k is None else k
        floor = self.floor if floor is None else floor
        if vectors is None:
            vectors = self.encoder.embed_queries(list(questions))
        self.store.refresh()
        fused = self.fusion.lexical > 0 or self.fusion.sentence > 0 or self.secondary is not None
        fetch = max(k * 20, 200) if filters else k
        depth = max(fetch, POOL)  # POOL: fusion's candidates and the background
        second = None
        if self.secondary is not None:
            second = self.secondary.embed_queries(list(questions))
        everywhere = self.store.search_vectors(vectors, depth)
        within = self._filtered_dense(vectors, filters, depth) or everywhere
        results = []
        for n, (question, vector, dense) in enumerate(zip(questions, vectors, within, strict=True)):
            if fused:
                extra = None if second is None else second[n]
                ranked = self._fuse(question, vector, dense, extra)[:fetch]
            else:  # dense only: a passage's rank is its cosine
                ranked = [(pid, score, score) for pid, score in dense[:fetch]]
            passages = self.store.passages([pid for pid, _, _ in ranked])
            hits = [
                Hit(passages[pid], score, rank)
                for pid, score, rank in ranked
                if pid in passages
                and score >= floor
                and (filters is None or filters.accepts(passages[pid]))
            ]
            if asks_for_latest(question):
                hits = prefer_recent(hits)
            results.append(Retrieval(question, vector, hits[:k], background(everywhere[n])))
        return results

    def _filtered_dense(
        self, vectors: np.ndarray, filters: SearchFilters | None, depth: int
    ) -> list[list[tuple[int, float]]] | None:
        """Each question's best `depth` passages among those the filters accept (FAISS
        searches only them, exactly, however many there are), or None without filters. A
        dated question thus finds its passages however many better ones other dates have."""
        if filters is None or not (
            filters.since or filters.until or filters.sources or filters.articles
        ):
            return None
        if filters.articles:
            ids = sorted(
                {p.id for a in filters.articles for p in self.store.article_passages(a)[0]}
            )
            if filters.since or filters.until or filters.sources:
                matching = set(
                    self.store.passage_ids_matching(filters.since, filters.until, filters.sources)
                )
                ids = [i for i in ids if i in matching]
        else:
            ids = self.store.passage_ids_matching(filters.since, filters.until, filters.sources)
        if not ids:
            return [[] for _ in range(len(vectors))]
        return self.store.search_vectors(vectors, depth, among=ids)

    def _fuse(
        self,
        question: str,
        vector: np.ndarray,
        dense: list[tuple[int, float]],
        second: np.ndarray | None,
    ) -> list[tuple[int, float, float]]:
        """Re-rank the union of each signal's top POOL passages by the fused score (`second`:
        the question's vector under the second model)."""
        cosine = dict(dense)
        language = question_language(question)
        found = []
        if self.fusion.lexical > 0:
            found = self.store.lexical_search(question, POOL, among=[pid for pid, _ in dense])
        use_found: list[tuple[int, float]] = []
        if second is not None and self.secondary is not None:
            use_found = self.store.secondary_search(self.secondary, second, POOL)
        use_pool = {pid for pid, _ in use_found}
        if use_found:
            top = np.array([score for _, score in use_found])
            use_mean, use_std = float(top.mean()), float(top.std()) or 1.0
        languages = self.store.passage_languages(
            list(set(cosine) | {pid for pid, _ in found} | use_pool)
        )
        lexical: dict[int, float] = {}
        top_lexical = max((score for _, score in found), default=0.0) or 1.0
        for pid, score in found:
            if language is None:  # a short headline: BM25 counts everywhere, a bit less
                share = UNKNOWN_LANGUAGE_LEXICAL
            else:
                share = 1.0 if languages.get(pid) == language else self.fusion.cross_lexical
            if share > 0:
                lexical[pid] = score / top_lexical * share
        candidates = set(cosine) | set(lexical) | use_pool
        z_second: dict[int, float] = {}
        if use_found and second is not None and self.secondary is not None:
            scores = dict(use_found)
            scores.update(
                self.store.secondary_scores(
                    self.secondary, [pid for pid in candidates if pid not in scores], second
                )
            )
            z_second = {pid: (score - use_mean) / use_std for pid, score in scores.items()}
        missing = [pid for pid in candidates if pid not in cosine]
        if missing:
            cosine.update(
                zip(missing, (self.store.passage_vectors(missing) @ vector).tolist(), strict=True)
            )
        values = np.array([s for _, s in dense]) if dense else np.zeros(1)
        mean, std = float(values.mean()), float(values.std()) or 1.0
        sentence = self.fusion.sentence
        if is_headline(question):
            sentence *= self.fusion.sentence_headline
        secondary = self.fusion.secondary
        if is_question(question):
            secondary *= self.fusion.secondary_question
        base: dict[int, float] = {}
        for pid in candidates:
            rank = (cosine[pid] - mean) / std + self.fusion.lexical * lexical.get(pid, 0.0)
            same = language is not None and languages.get(pid) == language
            if pid in z_second and not (self.fusion.secondary_cross_only and same):
                rank += secondary * z_second[pid]
            base[pid] = rank
        z_sentence: dict[int, float] = {}
        if sentence:
            ahead = sorted(base, key=base.__getitem__, reverse=True)[:SENTENCE_CANDIDATES]
            z_sentence = self._sentence_z(vector, ahead, candidates, cosine)
        fused = [
            (pid, cosine[pid], base[pid] + sentence * z_sentence.get(pid, 0.0))
            for pid in candidates
        ]
        fused.sort(key=lambda t: t[2], reverse=True)
        return fused

    def _sentence_z(
        self,
        vector: np.ndarray,
        read: Sequence[int],
        candidates: set[int],
        cosine: dict[int, float],
    ) -> dict[int, float]:
        """Each candidate's best-sentence cosine, standardised over the best POOL of them.
        Only the sentences of the passages `read` are read (the others are too far behind
        to come first: see SENTENCE_CANDIDATES); a passage not read, or whose sentences were
        never embedded, counts its own cosine instead."""
        ids = list(candidates)
        if not ids:
            return {}
        vectors = self.store.sentence_vectors(read)
        best = np.array([cosine[p] for p in ids])
        embedded = [n for n, p in enumerate(ids) if p in vectors and len(vectors[p])]
        if embedded:  # one product for every sentence, then each passage's best
            rows = [vectors[ids[n]] for n in embedded]
            starts = np.cumsum([0] + [len(r) for r in rows[:-1]])
            # einsum, not a BLAS product: one this size (~1,500 x 384) wakes OpenBLAS's
            # threads, which cost more CPU than they save and ~850 MB of buffers (RSS).
            cosines = np.einsum("ij,j->i", np.concatenate(rows), vector)
            best[embedded] = np.maximum.reduceat(cosines, starts)
        top = np.sort(best)[::-1][:POOL]
        mean, std = float(top.mean()), float(top.std()) or 1.0
        return dict(zip(ids, ((best - mean) / std).tolist(), strict=True))


# "What's the latest on …", "dernières nouvelles", "neueste", "últimas": the reader wants
# the most recent of the relevant articles, not a less relevant newer one.
_LATEST = re.compile(
    r"\b(latest|newest|most recent|recent(ly)?|today|this week|right now|"
    r"derni[èe]re?s?|r[ée]cente?s?|aujourd'hui|cette semaine|"
    r"neueste[nrs]?|aktuelle?[nrs]?|heute|[úu]ltim[oa]s?|hoy|recientes?)\b",
    re.IGNORECASE,
)
# Hits whose e5 cosine is this close to the best one count as equally relevant, and only
# among those does the newer article go first.
RECENCY_BAND = 0.02


def is_question(text: str) -> bool:
    """A question mark at the end: a question, not a headline or a sentence to match."""
    return text.rstrip().endswith(("?", "？"))


def is_headline(text: str) -> bool:
    """No closing punctuation (quotes and brackets aside): a headline, not a sentence or a
    question."""
    return not text.rstrip().rstrip("\"'»”’)] ").endswith(("?", "？", ".", "!", "…"))


def asks_for_latest(question: str) -> bool:
    return _LATEST.search(question) is not None


def prefer_recent(hits: list[Hit]) -> list[Hit]:
    """Newest first among the hits as relevant as the best one (within RECENCY_BAND);
    the others keep their order after them. Undated articles sort last in the band."""
    if not hits:
        return hits
    best = max(h.score for h in hits)
    band = [h for h in hits if h.score >= best - RECENCY_BAND]
    rest = [h for h in hits if h.score < best - RECENCY_BAND]
    band.sort(key=lambda h: h.passage.article.date or "", reverse=True)
    return band + rest
