"""Follow-ups: a question replying to one of the bot's answers keeps that answer's story.

"And how many were hurt?" means nothing alone; as a reply to an answer about a flood it
asks about that flood. The answer it replies to left a `Thread` (its question and the
articles of its story); the follow-up is searched among those articles only, with a
query that carries the earlier question, and quoted as any answer is. When the story
holds nothing that answers it, the follow-up is answered from all the news, and the
answer says so (`Answer.in_story` False). No model writes anything here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.answer import Answer, SentenceEmbedder, best_evidence, compose_answer, score_quotes
from bot.config import Settings
from index.backend import IndexStore
from index.embedding import Embedder
from index.search import Hit, Retrieval, Retriever, SearchFilters
from index.store import PassageEncoder

# A story's articles a thread keeps, at most (cited ones first, then their copies and
# corroborating reports): enough for any story, and a bounded row in the state.
MAX_THREAD_ARTICLES = 20
# The follow-up's query vector: its own vector plus this share of the earlier question's
# (then normalised). Its own words choose the sentence within the story; the earlier
# question keeps the story's subject in the similarity the floor is measured in.
EARLIER_QUESTION_SHARE = 0.5
# A reply asks about something else (a new question, not a follow-up) when a passage
# outside the story is this much closer to it (its own e5 cosine) than any of the story's.
# newsqa-dev follow-ups (bench/followups): the outside passage is ahead by at most 0.05 for
# the follow-ups, by 0.04-0.10 (median 0.10, 0.07 at the 10th percentile) for another
# conversation's first question asked as a reply.
SWITCH_MARGIN = 0.05
# The story answers a follow-up only if one of its sentences has at least this evidence
# (bot/answer.py's, with the follow-up's own vector): the earlier question in the query
# vector lifts every sentence of the story, so a reply the story has nothing on would
# otherwise be "answered" with its lead. newsqa-dev (bench/followups), evidence of the
# story's best sentence: follow-ups 0.39-0.51 (10th percentile 0.403, median 0.426);
# another conversation's first question 0.35-0.42 (90th percentile 0.396); newsqa-dev's
# unanswerable questions 0.35-0.48 (median 0.385, 90th percentile 0.415).
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


def followup_vector(own: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """The follow-up's query vector (see EARLIER_QUESTION_SHARE), unit length."""
    mixed = own + EARLIER_QUESTION_SHARE * earlier
    norm = float(np.linalg.norm(mixed))
    return mixed / norm if norm else own


def answer_followup(
    retriever: Retriever,
    store: IndexStore,
    embedder: Embedder,
    settings: Settings,
    question: str,
    thread: Thread,
) -> Answer:
    """`question` answered within `thread`'s story; when the reply asks about something
    else or nothing in the story answers it (see `story_answers`), from all the news
    (`in_story` False), or "no source"."""
    own, earlier = retriever.encoder.embed_queries([question, thread.question])
    story = SearchFilters(articles=thread.article_ids)
    (everywhere,) = retriever.retrieve_many([question], vectors=own[None, :])
    (inside,) = retriever.retrieve_many([question], filters=story, vectors=own[None, :])
    if story_answers(inside, everywhere.hits, story, store, embedder):
        vector = followup_vector(own, earlier)
        (within,) = retriever.retrieve_many([question], filters=story, vectors=vector[None, :])
        answer = compose_answer(
            within, store, embedder, settings.max_citations, settings.score_floor
        )
        if answer.answered:
            return dataclasses.replace(answer, followup=thread.question)
    answer = compose_answer(
        everywhere, store, embedder, settings.max_citations, settings.score_floor
    )
    return dataclasses.replace(answer, followup=thread.question, in_story=False)


def story_answers(
    inside: Retrieval,
    everywhere: Sequence[Hit],
    story: SearchFilters,
    sentences: SentenceEmbedder,
    encoder: PassageEncoder,
) -> bool:
    """Whether the story may answer the reply (`inside`: the story's passages found with
    the reply's own vector): no passage outside it is clearly closer (SWITCH_MARGIN: a new
    question asked as a reply), and one of its sentences has the evidence of an answer
    (FOLLOWUP_FLOOR)."""
    if not inside.hits:
        return False
    outside = [h.score for h in everywhere if not story.accepts(h.passage)]
    if outside and max(outside) - max(h.score for h in inside.hits) > SWITCH_MARGIN:
        return False
    return best_evidence(score_quotes(inside, sentences, encoder)) >= FOLLOWUP_FLOOR
