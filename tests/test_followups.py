"""Follow-ups: a question replying to an answer is answered within its story (real index,
real model), and the state keeps what each answer sent was about (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.engine import Engine
from bot.followup import MAX_THREAD_ARTICLES, Thread, thread_of
from bot.render import render_answer
from bot.state import open_state
from bot.state.base import ANSWERS_KEPT_S
from tests.story_news import (
    FERRY,
    FERRY_COPY,
    FERRY_FR,
    FERRY_HURT,
    FERRY_HURT_FR,
    FERRY_QUESTION,
    HURT_QUESTION,
    STORIES,
    TRAIN,
    TRAIN_HURT,
)
from tests.telegram.bot_harness import SEED_QUOTE, engine_on_backend


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    cache_dir: Path,
    embedder: Any,
) -> Iterator[Engine]:
    """The stories indexed in each backend: SQLite + FAISS files, or PostgreSQL."""
    root = tmp_path_factory.mktemp("followups")
    with engine_on_backend(request, root, cache_dir, embedder, STORIES) as engine:
        yield engine


def ids(engine: Engine, *records: dict[str, str]) -> set[str]:
    found = [engine.store.find_article(r["url"]) for r in records]
    return {a.id for a in found if a is not None}


def ferry_thread(engine: Engine) -> Thread:
    (first,) = engine.ask([FERRY_QUESTION])
    thread = thread_of(first)
    assert thread is not None and thread.question == FERRY_QUESTION
    return thread


def test_an_answer_leaves_a_thread_of_its_whole_story(engine: Engine) -> None:
    thread = ferry_thread(engine)
    # The cited articles first, then the rest of their story (the wire copy).
    assert set(thread.article_ids) == ids(engine, FERRY, FERRY_COPY, FERRY_FR)
    (nothing,) = engine.ask(["Who won the chess olympiad in Budapest?"])
    assert thread_of(nothing) is None
    assert len(Thread("q", tuple(f"a{i}" for i in range(99))).article_ids) == MAX_THREAD_ARTICLES


def test_a_follow_up_is_answered_within_the_story_not_from_the_best_match_elsewhere(
    engine: Engine,
) -> None:
    (alone,) = engine.ask([HURT_QUESTION])
    assert alone.citations[0].article_id in ids(engine, TRAIN)  # alone: the train
    assert TRAIN_HURT in alone.citations[0].quote
    followed = engine.ask_followup(HURT_QUESTION, ferry_thread(engine))
    assert followed.answered and followed.in_story and followed.followup == FERRY_QUESTION
    story = ids(engine, FERRY, FERRY_COPY, FERRY_FR)
    assert all(c.article_id in story for c in followed.citations)
    assert any(FERRY_HURT in c.quote or FERRY_HURT_FR in c.quote for c in followed.citations)
    # A follow-up of the follow-up keeps the same story.
    again = thread_of(followed)
    assert again is not None and again.question == FERRY_QUESTION


def test_a_reply_asking_something_else_is_answered_from_all_the_news(engine: Engine) -> None:
    other = engine.ask_followup("Who denied signing an accord?", ferry_thread(engine))
    assert other.answered and not other.in_story
    assert SEED_QUOTE in other.citations[0].quote
    (message,) = render_answer(other, "en")
    assert message.startswith("Nothing in the story you replied to answers this.")
    moved = thread_of(other)  # the conversation moved on: a reply to this is about it
    assert moved is not None and moved.question == "Who denied signing an accord?"


def test_a_follow_up_nothing_answers_says_so(engine: Engine) -> None:
    nothing = engine.ask_followup(
        "What was the score of the cricket final in Mumbai?", ferry_thread(engine)
    )
    assert not nothing.answered and nothing.followup == FERRY_QUESTION
    assert render_answer(nothing, "fr") == [
        "Rien dans le sujet auquel vous répondez n'y répond, ni ailleurs dans les articles indexés."
    ]


@pytest.fixture(params=["sqlite", "postgres"])
def state_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = request.getfixturevalue("database_url") if request.param == "postgres" else None
    return Settings(_env_file=None, data_dir=tmp_path / "data", database_url=url)


def test_the_state_remembers_each_message_of_an_answer_until_it_is_old(
    state_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = open_state(state_settings)
    chat = -1004012345678  # a supergroup: past 32 bits
    state.remember_answer(chat, [41, 42], "why did the ferry crash?", ["a1", "a2"])
    state.close()
    state = open_state(state_settings)  # another process, or after a restart
    first, second = state.sent_answer(chat, 41), state.sent_answer(chat, 42)
    assert first is not None and second is not None
    assert (first.question, first.article_ids) == ("why did the ferry crash?", ("a1", "a2"))
    assert second.article_ids == ("a1", "a2")
    assert state.sent_answer(chat, 43) is None and state.sent_answer(7, 41) is None
    # An answer's message id sent again (ids restart in a new chat) keeps the latest answer.
    state.remember_answer(chat, [42], "and the train?", ["t1"])
    latest = state.sent_answer(chat, 42)
    assert latest is not None and latest.article_ids == ("t1",)
    # A month later, the next answer sent forgets the old ones.
    later = latest.sent_at + ANSWERS_KEPT_S + 60
    monkeypatch.setattr("bot.state.base.time.time", lambda: later)
    state.remember_answer(chat, [50], "what about the flood?", ["f1"])
    assert state.sent_answer(chat, 41) is None and state.sent_answer(chat, 50) is not None
    state.close()
