"""Lexical search on PostgreSQL: FTS5's tokens in a tsvector, BM25 computed in SQL.

PostgreSQL's own ranking (ts_rank, ts_rank_cd) is not BM25: it has no inverse document
frequency and no length normalisation against the mean, and the product's fusion weights
were tuned on FTS5's bm25(). So each passage keeps a `tsvector` of exactly the tokens FTS5's
unicode61 tokenizer makes (`fts_tokens`: lower case, no diacritics; written as a literal,
not re-parsed by a text search configuration) with their positions, and its token count.
The GIN index finds the passages holding a word; BM25 (FTS5's formula, k1 1.2, b 0.75) is
summed in SQL from each candidate's positions (tf), the word's passage count (df, from the
`lexicon` table that every write keeps in step) and the row count and mean length kept
with the index. Cost: like
FTS5, every row that holds a searched word is scored, so the same row budget applies
(index/lexical.py ROW_BUDGET: common words are left out of the search and added back to
the best rows only).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

from index.lexical import K1, RESCORED, ROW_BUDGET, B, content_words, fts_tokens

# tsvector limits: a lexeme under 2 KB, positions up to 16383, 256 positions per lexeme.
_MAX_LEXEME_BYTES = 2046
_MAX_POSITION = 16383
_MAX_POSITIONS = 256
_MAX_COUNTED = 50_000


def lexemes(text: str) -> tuple[str, int]:
    """A passage body as a tsvector literal of its FTS5 tokens with their positions, and
    its length in tokens (what BM25 normalises by)."""
    tokens = fts_tokens(text)
    positions: dict[str, list[int]] = {}
    for place, token in enumerate(tokens, start=1):
        if len(token.encode("utf-8")) <= _MAX_LEXEME_BYTES:
            positions.setdefault(token, []).append(min(place, _MAX_POSITION))
    literal = " ".join(
        f"'{token}':{','.join(map(str, sorted(set(held))[:_MAX_POSITIONS]))}"
        for token, held in positions.items()
    )
    return literal, len(tokens)


def question_terms(question: str) -> list[str]:
    """The question's content words as index lexemes (a word FTS5 would split in two, as
    "a_b", is left out: it would be a phrase)."""
    terms: list[str] = []
    for word in content_words(question):
        tokens = fts_tokens(word)
        if len(tokens) == 1 and tokens[0] not in terms:
            terms.append(tokens[0])
    return terms


def _tsquery(terms: Sequence[str]) -> str:
    return " | ".join(f"'{t}'" for t in terms)


def idf(rows: int, held: int) -> float:
    """FTS5's bm25() inverse document frequency (floored at 1e-6 for common words)."""
    value = math.log((max(rows, held) - held + 0.5) / (held + 0.5))
    return value if value > 0 else 1e-6


# Only the question's words of each candidate are unnested (setweight marks them, ts_filter
# keeps them, both in C): 2-3 times faster than unnesting every word of the passage.
_SCORE = """
SELECT p.id, SUM(w.idf * cardinality(u.positions) * %(k1p)s
    / (cardinality(u.positions) + %(k1)s * (1 - %(b)s + %(b)s * p.length / %(mean)s))) AS score
FROM passages p CROSS JOIN LATERAL
    unnest(ts_filter(setweight(p.lexemes, 'A', %(terms)s::text[]), '{{a}}'))
    AS u(lexeme, positions, weights)
JOIN unnest(%(terms)s::text[], %(idfs)s::float8[]) AS w(term, idf) ON w.term = u.lexeme
WHERE {where}
GROUP BY p.id ORDER BY score DESC, p.id LIMIT %(limit)s
"""


class PgLexical:
    """Word counts remembered per index generation, and the BM25 search itself."""

    def __init__(self, budget: int = ROW_BUDGET) -> None:
        self.budget = budget
        self._generation: int | None = None
        self._documents: dict[str, int] = {}
        self._lock = threading.Lock()

    def documents(self, cursor: Any, terms: Sequence[str], generation: int) -> dict[str, int]:
        """How many passages hold each word (BM25's df), read in one statement from the
        `lexicon` table the writes keep in step, and remembered for this generation."""
        with self._lock:
            if generation != self._generation or len(self._documents) > _MAX_COUNTED:
                self._documents, self._generation = {}, generation
            known = {t: self._documents[t] for t in terms if t in self._documents}
        lacking = [t for t in terms if t not in known]
        if lacking:
            cursor.execute(
                "SELECT lexeme, documents FROM lexicon WHERE lexeme = ANY(%s)", (lacking,)
            )
            found = {t: 0 for t in lacking}
            found.update({str(t): int(n) for t, n in cursor.fetchall()})
            with self._lock:
                if generation == self._generation:
                    self._documents.update(found)
            known.update(found)
        return known

    def search(
        self,
        cursor: Any,
        question: str,
        k: int,
        generation: int,
        rows: int,
        mean_length: float,
        among: Sequence[int] = (),
    ) -> list[tuple[int, float]]:
        """Top-k (passage id, BM25) as index/lexical.py `lexical_search` gives them: the
        rarest words within the row budget searched, the others added to the best
        RESCORED * k rows; when even the rarest word is over the budget, `among` scored."""
        terms = question_terms(question)
        documents = self.documents(cursor, terms, generation)
        counts = {t: min(documents[t], self.budget + 1) for t in terms}  # as FTS5's are cut
        searched: list[str] = []
        matched = 0
        for term in sorted((t for t in terms if counts[t] > 0), key=lambda t: counts[t]):
            if searched and matched + counts[term] > self.budget:
                break
            searched.append(term)
            matched += counts[term]
        left_out = [t for t in terms if t not in searched and counts[t] > 0]
        if not searched or k <= 0:
            return []
        weights = {t: idf(rows, documents[t]) for t in terms if documents[t]}
        if among and counts[searched[0]] > self.budget:
            found = self._scores(
                cursor, weights, "p.id = ANY(%(ids)s)", list(among), k, mean_length
            )
            return [(pid, score) for pid, score in found if score > 0]
        wanted = {t: weights[t] for t in searched}
        found = self._scores(
            cursor,
            wanted,
            "p.lexemes @@ %(query)s::tsquery",
            None,
            k * RESCORED if left_out else k,
            mean_length,
        )
        if left_out and found:
            ids = [pid for pid, _ in found]
            found = self._scores(cursor, weights, "p.id = ANY(%(ids)s)", ids, k, mean_length)
        return found

    def _scores(
        self,
        cursor: Any,
        weights: dict[str, float],
        where: str,
        ids: list[int] | None,
        limit: int,
        mean_length: float,
    ) -> list[tuple[int, float]]:
        cursor.execute(
            _SCORE.format(where=where),
            {
                "k1p": K1 + 1,
                "k1": K1,
                "b": B,
                "mean": mean_length or 1.0,
                "terms": list(weights),
                "idfs": list(weights.values()),
                "query": _tsquery(list(weights)),
                "ids": ids,
                "limit": limit,
            },
        )
        return [(int(pid), float(score)) for pid, score in cursor.fetchall()]
