"""Follow-ups: a question replying to one of the bot's answers keeps that answer's story.

"And how many were hurt?" means nothing alone; as a reply to an answer about a flood it
asks about that flood. The answer it replies to left a `Thread` (its question and the
articles of its story); the follow-up is searched among those articles only and quoted
as any answer is. When it asks about something else, or the story holds nothing that
answers it, it is answered from all the news, and the answer says so (`Answer.in_story`
False). No model writes anything here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from bot.answer import Answer, best_evidence, compose_answer, score_quotes
from bot.config import Settings
from index.backend import IndexStore
from index.embedding import Embedder
from index.search import Hit, Retriever, SearchFilters

# A story's articles a thread keeps, at most (cited ones first, then their copies and
# corroborating reports): enough for any story, and a bounded row in the state.
MAX_THREAD_ARTICLES = 20
# A reply asks about something else (a new question, not a follow-up) when a passage
# outside the story is this much closer to it (its own e5 cosine) than any of the story's.
# newsqa-dev follow-ups (bench/followups): the outside passage is ahead by at most 0.05 for
# the follow-ups, by 0.04-0.10 (median 0.10, 0.07 at the 10th percentile) for another
# conversation's first question asked as a reply.
SWITCH_MARGIN = 0.05
# The story answers a follow-up when one of its sentences has at least this evidence
# (bot/answer.py's), lower than a question alone needs: a follow-up is short and elliptic
# ("and when?"), and within one story there is no unrelated news to quote by mistake.
# newsqa-dev (bench/followups), the evidence of the story's best sentence: follow-ups
# 0.39-0.51 (10th percentile 0.403, median 0.426); another conversation's first question
# asked as a reply 0.35-0.42 (90th percentile 0.396); newsqa-dev's unanswerable questions
# 0.35-0.48 (median 0.385, 90th percentile 0.415).
FOLLOWUP_FLOOR = 0.40


@dataclass(frozen=True)
class Thread:
    """What a follow-up keeps of the answer it replies to."""

    question: str
    article_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "article_ids", tuple(self.article_ids[:MAX_THREAD_ARTICLES]))


def thread_of(answer: Answer) -> Thread | None:
    """The thread an answer leaves (None for "no source": there is no story to keep): the
    articles it cites, then the other articles of their stories (`Citation.story`)."""
    if not answer.answered or not answer.citations:
        return None
    cited = [c.article_id for c in answer.citations]
    stories = [a for c in answer.citations if c.story is not None for a in c.story.article_ids]
    ids = list(dict.fromkeys(cited + stories))
    # A follow-up answered within its story keeps the story's first question.
    question = answer.followup if answer.followup and answer.in_story else answer.question
    return Thread(question, tuple(ids))


def story_remains(store: IndexStore, thread: Thread) -> bool:
    """Whether any article of the thread's story is still in the index: `newsbot remove` or
    retention may have taken them all out since the answer quoted them."""
    return any(store.article(article_id) is not None for article_id in thread.article_ids)


def answer_followup(
    retriever: Retriever,
    store: IndexStore,
    embedder: Embedder,
    settings: Settings,
    question: str,
    thread: Thread,
) -> Answer:
    """`question` answered within `thread`'s story (its best sentence by the quote model,
    once one clears FOLLOWUP_FLOOR); when the reply asks about something else
    (`asks_elsewhere`) or nothing in the story answers it, from all the news (`in_story`
    False; a date named in it is not searched first, as `answer_questions` does), or "no
    source"."""
    (vector,) = retriever.encoder.embed_queries([question])
    story = SearchFilters(articles=thread.article_ids)
    (everywhere,) = retriever.retrieve_many([question], vectors=vector[None, :])
    (inside,) = retriever.retrieve_many([question], filters=story, vectors=vector[None, :])
    if inside.hits and not asks_elsewhere(inside.hits, everywhere.hits, story):
        scored = score_quotes(inside, store, embedder)
        if best_evidence(scored) >= FOLLOWUP_FLOOR:
            answer = compose_answer(inside, store, embedder, settings.max_citations, scored=scored)
            if answer.answered:  # not when it asks for a number the story never gives
                return dataclasses.replace(answer, followup=thread.question)
    answer = compose_answer(
        everywhere, store, embedder, settings.max_citations, settings.score_floor
    )
    return dataclasses.replace(answer, followup=thread.question, in_story=False)


def asks_elsewhere(inside: Sequence[Hit], everywhere: Sequence[Hit], story: SearchFilters) -> bool:
    """Whether a passage outside the story is clearly closer to the reply than any of the
    story's (SWITCH_MARGIN): a new question asked as a reply."""
    outside = [h.score for h in everywhere if not story.accepts(h.passage)]
    best_inside = max((h.score for h in inside), default=-1.0)
    return bool(outside) and max(outside) - best_inside > SWITCH_MARGIN
