"""Question + retrieved passages -> an Answer made of verbatim quotes with citations.

Nothing here writes prose: the answer is the sentence of the indexed news that best
answers the question, and every quote is a slice of its article's text.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

from bot.answer_type import (
    DATE,
    MONEY,
    OTHER,
    QUANTITY,
    expected_answer_type,
)
from bot.corroboration import Corroboration
from bot.quote_features import (
    FEATURES,
    Candidate,
    candidate_features,
    quote_weights,
    unique_candidates,
)
from index.articles import Article, guess_language
from index.chunking import quote_spans, sentence_spans
from index.dates import Period, question_period
from index.search import Hit, Retrieval
from index.store_base import PassageEncoder

NO_SOURCE = "The indexed news has nothing on this."

# Cosines between texts in the same language run higher than across languages; the floor
# is calibrated for cross-lingual pairs and same-language quotes must clear it by this much
# (fitted on the dev sets with `newsbot bench quality --calibrate`).
SAME_LANGUAGE_PENALTY = 0.02
# Evidence is measured against the question's background similarity (index/search.py): a
# quote must stand out from what the question finds similar anyway. This share of the
# background is subtracted (0.5 fitted on the dev sets: refusals 0.86 -> 0.94 at the same
# answer rate; the whole background over-corrects).
BACKGROUND_WEIGHT = 0.5
# A further article is cited only if its evidence is this close to the best article's.
CITATION_MARGIN = 0.06
# A question asking for one of these must find it in one of its TYPE_CHECKED best quotes.
CHECKED_TYPES = frozenset({QUANTITY, MONEY, DATE})
TYPE_CHECKED = 3
# A quote takes in its neighbour sentence when the quote model scores that one at most this
# much lower (log-odds; newsqa-dev: 57 -> 59 of 85 with the key for 1 to 2, median quote
# 195 -> 213 characters).
NEIGHBOUR_MARGIN = 1.0
MAX_QUOTE_SENTENCES = 2
# When the quote model cannot tell the best sentence of the best story from others of that
# article (scored at most this much lower, log-odds), up to MORE_QUOTES of them are quoted
# too, as the next citations: the reader sees them rather than a coin toss between them.
# newsqa-dev, articles left out (`python -m bench.train_quotes --cached`): one within 1.0 ->
# two within 1.5: answered with a key 61 -> 65 of 85, median quoted 270 -> 398 characters.
SECOND_QUOTE_MARGIN = 1.5
MORE_QUOTES = 2
_YEAR = re.compile(r"\b(1[5-9]\d\d|20\d\d)\b")


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
    # How many sources, languages and days the cited article's story spans (set by the
    # engine, bot/corroboration.py; None where not computed).
    story: Corroboration | None = None


@dataclass(frozen=True)
class Answer:
    question: str
    answered: bool
    answer: str
    citations: list[Citation] = field(default_factory=list)
    # Publication dates the question named: the citations are all of that date, or, when
    # `dated` is False, none of that date answered and the citations are of other dates.
    period: Period | None = None
    dated: bool = True
    phrased: bool = False  # `answer` was phrased by the configured model (bot/phrasing.py)
    # A follow-up (bot/followup.py): the question of the answer it replied to, and whether
    # its citations are from that answer's story (False: the story had nothing on it).
    followup: str | None = None
    in_story: bool = True

    def to_json(self) -> dict[str, object]:
        return {
            "question": self.question,
            "answered": self.answered,
            "answer": self.answer,
            "phrased": self.phrased,
            "period": None
            if self.period is None
            else {"since": self.period.since, "until": self.period.until, "found": self.dated},
            "citations": [asdict(c) for c in self.citations],
            "followup": None
            if self.followup is None
            else {"of": self.followup, "in_story": self.in_story},
        }


@dataclass(frozen=True)
class QuoteCandidate(Candidate):
    evidence: float  # compared with the floor (same-language penalty applied)
    score: float  # what candidates are ranked by: the quote model's log-odds
    types: frozenset[str]  # the answer types it holds (bot/answer_type.py)

    @property
    def quote(self) -> str:
        return self.text


def quote_candidates(hits: Sequence[Hit]) -> list[Candidate]:
    """Every distinct quotable span of the retrieved passages."""
    spans = [quote_spans(h.passage.article.text, h.passage.start, h.passage.end) for h in hits]
    return unique_candidates(hits, spans)


def described_candidates(
    retrieval: Retrieval, sentences: SentenceEmbedder, encoder: PassageEncoder
) -> tuple[list[Candidate], np.ndarray, np.ndarray, list[frozenset[str]]]:
    """The quotable spans of the retrieved passages, their e5 cosines to the question,
    their features and the answer types they hold (bot/quote_features.py)."""
    candidates = quote_candidates(retrieval.hits)
    if not candidates:
        return [], np.zeros(0, dtype=np.float32), np.zeros((0, len(FEATURES)), np.float32), []
    vectors = sentences.embed_texts([c.text for c in candidates], encoder)
    cosines = vectors @ retrieval.vector
    features, types = candidate_features(retrieval.question, candidates, cosines, retrieval.hits)
    return candidates, cosines, features, types


def score_quotes(
    retrieval: Retrieval, sentences: SentenceEmbedder, encoder: PassageEncoder
) -> list[QuoteCandidate]:
    """Every quotable sentence of the retrieved passages with its evidence (the mean of its
    own and its passage's similarity to the question, less the same-language penalty and
    BACKGROUND_WEIGHT times the question's background similarity: what the floor is
    compared with) and its score (how likely it is to answer, by the fitted quote model)."""
    candidates, cosines, features, types = described_candidates(retrieval, sentences, encoder)
    if not candidates:
        return []
    question_lang = guess_language(retrieval.question)
    baseline = BACKGROUND_WEIGHT * retrieval.background
    scores = features @ quote_weights()
    scored = []
    for c, similarity, score, held in zip(candidates, cosines, scores, types, strict=True):
        evidence = (float(similarity) + c.hit.score) / 2
        penalty = SAME_LANGUAGE_PENALTY if question_lang == c.hit.passage.article.lang else 0.0
        scored.append(
            QuoteCandidate(c.hit, c.start, c.end, evidence - penalty - baseline, float(score), held)
        )
    return scored


def question_years(question: str) -> set[str]:
    """The years a question names ("the 2019 prize"), unless it names a publication period
    ("in May 2025", "in 2012"): that one is searched as a date first and, when nothing of
    that date answers, answered from other dates with a notice (bot/engine.py)."""
    if question_period(question) is not None:
        return set()
    return set(_YEAR.findall(question))


def names_every_year(article: Article, years: set[str]) -> bool:
    """Whether the article mentions every year the question names (in its text, title or
    date): one that never does cannot hold a fact of that year."""
    said = f"{article.date or ''} {article.title} {article.text}"
    return all(year in said for year in years)


def holds_answer_type(best: Sequence[QuoteCandidate], kind: str) -> bool:
    """A question asking for a number, a sum or a date is answered only if one of its best
    quotes holds one: an article on the topic that never gives the figure asked for is not
    an answer (the near-miss: "how much did it cost?" over an article with no price)."""
    return kind not in CHECKED_TYPES or any(kind in c.types for c in best)


def adjacent(
    chosen: QuoteCandidate, scored: Sequence[QuoteCandidate], after: bool
) -> QuoteCandidate | None:
    """The candidate right after (or before) the chosen one in its paragraph, if any."""
    text = chosen.hit.passage.article.text
    for c in scored:
        if c.hit.passage.article.id != chosen.hit.passage.article.id:
            continue
        gap = text[chosen.end : c.start] if after else text[c.end : chosen.start]
        touching = c.start >= chosen.end if after else c.end <= chosen.start
        if touching and not gap.strip() and "\n\n" not in gap:
            return c
    return None


def joined(chosen: QuoteCandidate, other: QuoteCandidate | None) -> QuoteCandidate | None:
    """The chosen quote and an adjacent candidate as one quote, if that is at most
    MAX_QUOTE_SENTENCES sentences (a short sentence is already joined to its neighbour)."""
    if other is None:
        return None
    start, end = min(chosen.start, other.start), max(chosen.end, other.end)
    if len(sentence_spans(chosen.hit.passage.article.text, start, end)) > MAX_QUOTE_SENTENCES:
        return None
    return dataclasses.replace(chosen, start=start, end=end, types=chosen.types | other.types)


def with_neighbour(
    chosen: QuoteCandidate, scored: Sequence[QuoteCandidate], kind: str
) -> QuoteCandidate:
    """The chosen quote, extended by an adjacent sentence of its paragraph: the next one
    when only that one holds what the question asks for ("Le bateau a percuté un quai." +
    "Quatre personnes ont été blessées."), else the next or the previous one when the quote
    model finds it nearly as likely to answer (within NEIGHBOUR_MARGIN): two sentences
    that answer together, or an answer the model cannot tell from its neighbour."""
    following = adjacent(chosen, scored, after=True)
    if following is not None and (
        (kind != OTHER and kind not in chosen.types and kind in following.types)
        or following.score >= chosen.score - NEIGHBOUR_MARGIN
    ):
        return joined(chosen, following) or chosen
    preceding = adjacent(chosen, scored, after=False)
    text = chosen.hit.passage.article.text
    if (
        preceding is not None
        and text[: preceding.start].strip()  # not the lead: it restates the story
        and preceding.score >= chosen.score - NEIGHBOUR_MARGIN
    ):
        return joined(chosen, preceding) or chosen
    return chosen


def runners_up(
    chosen: QuoteCandidate, scored: Sequence[QuoteCandidate], margin: float, count: int
) -> list[QuoteCandidate]:
    """Up to `count` other sentences of the chosen quote's article, best first, that the
    quote model scores within `margin` of it and that no quote taken already holds. Only
    the same article: another article of the story is often a copy or a translation of
    the same sentence."""
    article = chosen.hit.passage.article.id
    taken = [(chosen.start, chosen.end)]
    out: list[QuoteCandidate] = []
    for c in scored:  # best first
        if len(out) >= count or c.score < chosen.score - margin:
            break
        if c.hit.passage.article.id == article and all(
            c.end < start or c.start > end for start, end in taken
        ):
            out.append(c)
            taken.append((c.start, c.end))
    return out


def side_by_side(quotes: Sequence[QuoteCandidate]) -> list[QuoteCandidate]:
    """The quotes in their order, two that are adjacent sentences of a paragraph joined
    into one quote (read as the article reads, not as two citations)."""
    out: list[QuoteCandidate] = []
    for c in quotes:
        for i, taken in enumerate(out):
            both = joined(taken, adjacent(taken, [c], True) or adjacent(taken, [c], False))
            if both is not None:
                out[i] = both
                break
        else:
            out.append(c)
    return out


def best_evidence(candidates: Sequence[QuoteCandidate]) -> float:
    """What the floor is compared with: the question is answered iff this clears it."""
    return max((c.evidence for c in candidates), default=-1.0)


def compose_answer(
    retrieval: Retrieval,
    sentences: SentenceEmbedder,
    encoder: PassageEncoder,
    max_citations: int = 3,
    floor: float = -1.0,
    scored: Sequence[QuoteCandidate] | None = None,
) -> Answer:
    """Quote the best-answering sentence of each retrieved article (see `score_quotes`;
    pass `scored` to reuse them); with no quote's evidence at or above `floor`, the answer
    is "no source" rather than a loosely related sentence."""
    if not retrieval.hits:
        return Answer(retrieval.question, False, NO_SOURCE)
    if scored is None:
        scored = score_quotes(retrieval, sentences, encoder)
    years = question_years(retrieval.question)
    if years:
        articles = {c.hit.passage.article.id: c.hit.passage.article for c in scored}
        named = {a for a, article in articles.items() if names_every_year(article, years)}
        scored = [c for c in scored if c.hit.passage.article.id in named]
    # An article is cited when one of its sentences clears the floor; the sentence quoted
    # is then its best-scored one, which may be less similar to the question than the one
    # that cleared it (the answer is often the sentence after the one restating it).
    stories = {c.hit.passage.story_id for c in scored if c.evidence >= floor}
    scored = sorted(
        (c for c in scored if c.hit.passage.story_id in stories), key=lambda c: -c.score
    )
    if not scored:
        return Answer(retrieval.question, False, NO_SOURCE)
    best_per_story: dict[str, QuoteCandidate] = {}
    relevance: dict[str, float] = {}
    for cand in scored:
        story = cand.hit.passage.story_id
        best_per_story.setdefault(story, cand)
        relevance[story] = max(relevance.get(story, -1.0), cand.evidence)
    # Which articles are cited is a matter of relevance (evidence); which of their
    # sentences is quoted, of the quote model.
    top = max(relevance.values())
    # What the question asks for must be held by the stories that would be cited: a sum in
    # an unrelated story that merely made the candidates does not make an answer.
    cited = [c for c in scored if relevance[c.hit.passage.story_id] >= top - CITATION_MARGIN]
    kind = expected_answer_type(retrieval.question)
    if not holds_answer_type(cited[:TYPE_CHECKED], kind):
        return Answer(retrieval.question, False, NO_SOURCE)
    chosen = [
        with_neighbour(c, scored, kind)
        for story, c in best_per_story.items()
        if relevance[story] >= top - CITATION_MARGIN
    ]
    chosen[1:1] = side_by_side(runners_up(chosen[0], scored, SECOND_QUOTE_MARGIN, MORE_QUOTES))
    citations = [
        Citation(
            n=i,
            article_id=c.hit.passage.article.id,
            title=c.hit.passage.article.title,
            source=c.hit.passage.article.source,
            date=c.hit.passage.article.date,
            url=c.hit.passage.article.url,
            quote=c.quote,
            score=round(c.evidence, 4),
        )
        for i, c in enumerate(chosen[:max_citations], start=1)
    ]
    return Answer(retrieval.question, True, citations[0].quote, citations)
