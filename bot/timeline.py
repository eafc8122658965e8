"""Timelines: how a story developed, told by its articles' own dated sentences, oldest first.

`/timeline <topic>`, "what happened since …" and "que s'est-il passé depuis …" find the
articles on the topic by the normal retrieval and keep those about as relevant as the best
one (as an answer chooses the articles it cites): its story, as the reports that followed
it. Each gives one quote, the sentence most relevant to the topic; a copy of one dispatch
that gives the same sentence is left out.
Articles without a date come last, under their own heading; with a date asked ("since July
2024") they are skipped, as they cannot be placed after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.answer import CITATION_MARGIN, Citation, QuoteCandidate, SentenceEmbedder, score_quotes
from bot.config import Settings
from bot.engine import Engine, build_retriever
from bot.render import MAX_MESSAGE_UNITS, message_units, pack_blocks, render_citation
from bot.texts import say
from index.backend import IndexStore
from index.dates import MONTHS, question_period
from index.embedding import Embedder
from index.search import Retrieval, SearchFilters
from index.store_base import PassageEncoder

# Passages retrieved for a topic: a story told over days has many articles.
TIMELINE_PASSAGES = 60
# An article is part of the timeline when its best sentence clears the answer floor and is
# within this margin of the best article's (the evidence of bot/answer.py): the rule by
# which an answer cites several articles, with the same margin.
TIMELINE_MARGIN = CITATION_MARGIN
MAX_ENTRIES = 15
MAX_TOPIC_CHARS = 200

_END = r"[\s?!.…]*$"
_SINCE = [
    # what happened (to|in|with|on|about X) since Y / what has happened since Y
    re.compile(
        r"^\s*what(?:'s|’s| has| have)?\s+happened\s+"
        r"(?:(?:to|in|with|on|about|at|for)\s+(?P<topic>.+?)\s+)?(?:since|after)\s+(?P<since>.+?)"
        + _END,
        re.IGNORECASE,
    ),
    # que s'est-il passé (à|en|au|avec|pour… X) depuis Y / qu'est-ce qui s'est passé depuis Y
    re.compile(
        r"^\s*(?:que\s+s['’]est[- ]il|qu['’]est[- ]ce\s+qui\s+s['’]est)\s+pass[ée]e?s?\s+"
        r"(?:(?:à|a|en|au|aux|avec|pour|dans|sur|chez)\s+(?P<topic>.+?)\s+)?depuis\s+"
        r"(?P<since>.+?)" + _END,
        re.IGNORECASE,
    ),
]
# Words around a date after "since" that are no topic: "since the 5th of March", "depuis le".
_FILLER = re.compile(
    r"the|on|in|of|to|at|for|with|about|early|late|mid|"
    r"le|la|les|l['’]|du|de|des|début|fin|mi|en|à|au|aux|avec|pour|dans|sur|chez"
)
# A day's number, alone or with its ordinal ending: "10th", "1er", "3/7".
_DAY_NUMBER = re.compile(r"[\d/-]+(?:st|nd|rd|th|er|e)?")
# Words after "since" that place nothing the index can date and name no story: "since
# then", "since yesterday", "depuis la semaine dernière". A timeline of "then" tells nothing.
_NO_TOPIC = re.compile(
    r"then|that|this|it|now|yesterday|today|tonight|morning|afternoon|evening|night|"
    r"week|weekend|month|year|last|past|(?:mon|tues|wednes|thurs|fri|satur|sun)day|"
    r"lors|alors|ça|cela|ceci|là|hier|aujourd['’]hui|matin|soir|soirée|nuit|semaine|"
    r"mois|an|année|dernier|dernière|passé|passée|ce|cet|cette|lundi|mardi|mercredi|"
    r"jeudi|vendredi|samedi|dimanche"
)


@dataclass(frozen=True)
class TimelineRequest:
    """What a timeline is asked for: a topic, and the first publication date wanted."""

    topic: str
    since: str | None  # an ISO date prefix (YYYY-MM or YYYY-MM-DD)


@dataclass(frozen=True)
class Timeline:
    topic: str
    since: str | None
    dated: list[Citation]  # oldest first
    undated: list[Citation]


def timeline_request(text: str) -> TimelineRequest | None:
    """The timeline a question asks for ("what happened in Iceland since July 2024?"), or
    None when it asks something else. A date after "since" is the first date shown; words
    that are not a date ("since the eruption") are the topic."""
    for pattern in _SINCE:
        match = pattern.match(text)
        if match is None:
            continue
        since_words = match.group("since")
        period = question_period(since_words)
        topic = match.group("topic") or ""
        if period is None:
            if _names_something(since_words):  # "since the eruption", not "since then"
                topic = f"{topic} {since_words}".strip()
        elif not topic:
            topic = _without_dates(since_words).strip(" ,;")
        if not topic:
            return None
        return TimelineRequest(" ".join(topic.split()), period.since if period else None)
    return None


def _names_something(words: str) -> bool:
    """Whether the words after "since" name a story ("the eruption"), not only a time no
    date places ("then", "last week", "hier") or no word at all ("?", an emoji)."""
    for word in words.split():
        bare = word.strip(".,;:!?()…").lower()
        if re.search(r"\w", bare) and not (
            _FILLER.fullmatch(bare) or _NO_TOPIC.fullmatch(bare) or _DAY_NUMBER.fullmatch(bare)
        ):
            return True
    return False


def _without_dates(text: str) -> str:
    """The words of `text` that are no part of a date (months, days, years, "le", "the")."""
    kept = []
    for word in text.split():
        bare = word.strip(".,;:()").lower()
        if bare in MONTHS or _FILLER.fullmatch(bare) or _DAY_NUMBER.fullmatch(bare):
            continue
        kept.append(word)
    return " ".join(kept)


def best_quote_per_article(
    retrieval: Retrieval, sentences: SentenceEmbedder, encoder: PassageEncoder
) -> dict[str, QuoteCandidate]:
    """For each retrieved article, its sentence most relevant to the retrieval's text (the
    highest evidence of bot/answer.py), best article first."""
    best: dict[str, QuoteCandidate] = {}
    for candidate in score_quotes(retrieval, sentences, encoder):
        article_id = candidate.hit.passage.article.id
        if article_id not in best or best[article_id].evidence < candidate.evidence:
            best[article_id] = candidate
    return dict(sorted(best.items(), key=lambda item: -item[1].evidence))


def citation_of(candidate: QuoteCandidate, n: int = 1) -> Citation:
    article = candidate.hit.passage.article
    return Citation(
        n=n,
        article_id=article.id,
        title=article.title,
        source=article.source,
        date=article.date,
        url=article.url,
        quote=candidate.quote,
        score=round(candidate.evidence, 4),
    )


def build_timeline(
    store: IndexStore, embedder: Embedder, settings: Settings, request: TimelineRequest
) -> Timeline:
    """The articles on the request's topic (published since its date, if any), one quote
    each, dated ones oldest first; empty when nothing on the topic clears the answer floor."""
    retriever = build_retriever(settings, store, embedder)
    filters = SearchFilters(since=request.since) if request.since else None
    (retrieval,) = retriever.retrieve_many([request.topic], k=TIMELINE_PASSAGES, filters=filters)
    if filters is not None:  # undated articles cannot be placed after a date: skipped
        hits = [h for h in retrieval.hits if filters.accepts(h.passage)]
        retrieval = Retrieval(retrieval.question, retrieval.vector, hits, retrieval.background)
    best = best_quote_per_article(retrieval, store, embedder)
    if not best:
        return Timeline(request.topic, request.since, [], [])
    top = next(iter(best.values()))
    if top.evidence < settings.score_floor:
        return Timeline(request.topic, request.since, [], [])
    kept: list[QuoteCandidate] = []
    said: set[tuple[str, str]] = set()  # (story, quote): copies of a dispatch say it once
    for candidate in best.values():
        passage = candidate.hit.passage
        same_story = passage.story_id == top.hit.passage.story_id
        relevant = candidate.evidence >= max(settings.score_floor, top.evidence - TIMELINE_MARGIN)
        if not same_story and not relevant:
            continue
        key = (passage.story_id, " ".join(candidate.quote.split()))
        if key not in said:
            said.add(key)
            kept.append(candidate)
    kept = kept[:MAX_ENTRIES]
    dated = sorted((c for c in kept if c.hit.passage.article.date), key=_chronological)
    undated = [c for c in kept if not c.hit.passage.article.date]
    return Timeline(
        request.topic,
        request.since,
        [citation_of(c, n) for n, c in enumerate(dated, 1)],
        [citation_of(c, n) for n, c in enumerate(undated, len(dated) + 1)],
    )


def _chronological(candidate: QuoteCandidate) -> tuple[str, str]:
    article = candidate.hit.passage.article
    return article.date or "", article.id


def render_timeline(timeline: Timeline, lang: str) -> list[str]:
    """The timeline as Telegram HTML messages within the limits, split between entries."""
    if not timeline.dated and not timeline.undated:
        if timeline.since:
            return [say(lang, "timeline_nothing_since", topic=timeline.topic, since=timeline.since)]
        return [say(lang, "timeline_nothing", topic=timeline.topic)]
    topic = timeline.topic[:MAX_TOPIC_CHARS]
    if timeline.since:
        header = say(lang, "timeline_header_since", topic=topic, since=timeline.since)
    else:
        header = say(lang, "timeline_header", topic=topic)
    blocks: list[str] = [header, *(render_citation(c) for c in timeline.dated)]
    if timeline.undated:  # the heading goes with the first undated entry, never alone
        heading = say(lang, "timeline_undated") + "\n\n"
        first, *rest = timeline.undated
        blocks.append(heading + render_citation(first, MAX_MESSAGE_UNITS - message_units(heading)))
        blocks += [render_citation(c) for c in rest]
    return pack_blocks(blocks)


def engine_timeline(engine: Engine, request: TimelineRequest) -> Timeline:
    """`build_timeline` over the engine's current store and model."""
    return build_timeline(engine.store, engine.embedder, engine.settings, request)
