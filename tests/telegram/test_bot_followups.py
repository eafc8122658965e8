"""Follow-ups and corroboration through the fake Bot API: a reply to one of the bot's
answers is answered within that answer's story, in private chats and groups, also after a
restart; every cited source says how many sources, languages and days its story spans."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.engine import Engine
from tests.story_news import (
    FERRY_HURT,
    FERRY_HURT_FR,
    FERRY_QUESTION,
    HURT_QUESTION,
    STORIES,
    TRAIN_HURT,
)

from .bot_harness import SEED_QUOTE, engine_for, make_data_dir, running_bot, wait_for_replies
from .fake_bot_api import FakeBotAPI, SentMessage

FERRY_STORY_EN = (
    "Story: 2 sources, 2 languages, 10–11 July 2024 · Coast Wire, Harbour Daily: copies of "
    "one dispatch, counted once"
)
FERRY_STORY_FR = (
    "Sujet : 2 sources, 2 langues, 10–11 juil. 2024 · Coast Wire, Harbour Daily : copies "
    "d'une même dépêche, comptées une fois"
)


@pytest.fixture(scope="module")
def engine(
    tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, embedder: Any
) -> Iterator[Engine]:
    data = make_data_dir(tmp_path_factory.mktemp("followups"), STORIES)
    engine = engine_for(data, cache_dir, embedder)
    yield engine
    engine.close()


def run(scenario: Any) -> None:
    asyncio.run(scenario())


def about_the_ferry_injuries(answer: SentMessage) -> bool:
    return FERRY_HURT in answer.text or FERRY_HURT_FR in answer.text


def test_a_private_reply_to_an_answer_keeps_its_story(fake_api: FakeBotAPI, engine: Engine) -> None:
    ann = fake_api.user("Ann")
    chat = fake_api.private_chat(ann)

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            asked = fake_api.user_says(chat, ann, FERRY_QUESTION)
            (answer,) = await wait_for_replies(fake_api, chat, asked)
            assert "Marseille" in answer.text
            alone = fake_api.user_says(chat, ann, HURT_QUESTION)
            (unrelated,) = await wait_for_replies(fake_api, chat, alone)
            reply = fake_api.user_says(chat, ann, HURT_QUESTION, reply_to=answer.message_id)
            (followed,) = await wait_for_replies(fake_api, chat, reply)
            # Alone, the question finds the train's injuries first; as a reply, the ferry's.
            assert unrelated.text.startswith("1. Regional train derails")
            assert about_the_ferry_injuries(followed) and TRAIN_HURT not in followed.text
            assert "Nothing in the story" not in followed.text

    run(scenario)


def test_a_group_reply_and_an_ask_in_reply_keep_the_story(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    ann, bob = fake_api.user("Ann"), fake_api.user("Bob")
    group = fake_api.group("Readers", supergroup=True)  # privacy mode: replies reach the bot

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            asked = fake_api.user_says(group, ann, f"/ask {FERRY_QUESTION}")
            (answer,) = await wait_for_replies(fake_api, group, asked)
            replied = fake_api.user_says(group, bob, HURT_QUESTION, reply_to=answer.message_id)
            ask_in_reply = fake_api.user_says(
                group, ann, f"/ask {HURT_QUESTION}", reply_to=answer.message_id
            )
            fresh = fake_api.user_says(group, bob, f"/ask {HURT_QUESTION}")
            (first,) = await wait_for_replies(fake_api, group, replied)
            (second,) = await wait_for_replies(fake_api, group, ask_in_reply)
            (third,) = await wait_for_replies(fake_api, group, fresh)
            for followed in (first, second):
                assert about_the_ferry_injuries(followed) and TRAIN_HURT not in followed.text
            assert third.text.startswith("1. Regional train derails") and TRAIN_HURT in third.text

    run(scenario)


def test_a_reply_asking_about_something_else_is_answered_from_all_the_news_and_says_so(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    ann = fake_api.user("Anne", language_code="fr")
    chat = fake_api.private_chat(ann)

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            asked = fake_api.user_says(chat, ann, FERRY_QUESTION)
            (answer,) = await wait_for_replies(fake_api, chat, asked)
            other = fake_api.user_says(
                chat, ann, "Qui a nié la signature d'un accord ?", reply_to=answer.message_id
            )
            (reply,) = await wait_for_replies(fake_api, chat, other)
            assert reply.text.startswith("Rien dans le sujet auquel vous répondez n'y répond.")
            assert SEED_QUOTE in reply.text and "Marseille" not in reply.text

    run(scenario)


def test_help_tells_how_to_follow_up(fake_api: FakeBotAPI, engine: Engine) -> None:
    ann, anne = fake_api.user("Ann"), fake_api.user("Anne", language_code="fr")
    english, french = fake_api.private_chat(ann), fake_api.private_chat(anne)

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            asked_en = fake_api.user_says(english, ann, "/help")
            asked_fr = fake_api.user_says(french, anne, "/help")
            (help_en,) = await wait_for_replies(fake_api, english, asked_en)
            (help_fr,) = await wait_for_replies(fake_api, french, asked_fr)
            assert "Reply to one of my answers to ask more about its story" in help_en.text
            assert "copies of one wire dispatch count as one source" in help_en.text
            assert "Répondez à l'une de mes réponses" in help_fr.text

    run(scenario)


def test_a_follow_up_survives_a_restart_of_the_bot(fake_api: FakeBotAPI, engine: Engine) -> None:
    ann = fake_api.user("Ann")
    chat = fake_api.private_chat(ann)

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            asked = fake_api.user_says(chat, ann, FERRY_QUESTION)
            (answer,) = await wait_for_replies(fake_api, chat, asked)
        async with running_bot(fake_api, engine):  # the answers sent are in the state
            reply = fake_api.user_says(chat, ann, HURT_QUESTION, reply_to=answer.message_id)
            (followed,) = await wait_for_replies(fake_api, chat, reply)
            assert about_the_ferry_injuries(followed) and TRAIN_HURT not in followed.text

    run(scenario)


def test_each_source_says_how_many_sources_languages_and_days_its_story_spans(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    ann, anne = fake_api.user("Ann"), fake_api.user("Anne", language_code="fr")
    english, french = fake_api.private_chat(ann), fake_api.private_chat(anne)

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            asked_en = fake_api.user_says(english, ann, FERRY_QUESTION)
            asked_fr = fake_api.user_says(french, anne, FERRY_QUESTION)
            asked_train = fake_api.user_says(english, ann, "Why did the train derail near Lyon?")
            (answer_en,) = await wait_for_replies(fake_api, english, asked_en)
            (answer_fr,) = await wait_for_replies(fake_api, french, asked_fr)
            (train,) = await wait_for_replies(fake_api, english, asked_train)
            # The two outlets that ran one dispatch count once, and are named.
            assert FERRY_STORY_EN in answer_en.text
            assert FERRY_STORY_FR in answer_fr.text
            assert "Story: 1 source, 1 language, 10 July 2024" in train.text
            assert "copies" not in train.text
            # The story line follows the quote, set apart in italics.
            (story,) = [e for e in answer_en.entities if e["type"] == "italic"][:1]
            start = len(
                answer_en.text.encode("utf-16-le")[: 2 * story["offset"]].decode("utf-16-le")
            )
            assert answer_en.text[start:].startswith("Story: 2 sources")
            quote = next(e for e in answer_en.entities if e["type"] == "blockquote")
            assert quote["offset"] < story["offset"]

    run(scenario)


def test_a_reply_to_a_message_that_is_not_an_answer_is_a_new_question(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    # A chat of its own: the module's tests share one state, and the fake server numbers
    # chats and messages from the start in every test (Telegram never reuses an id).
    ann = fake_api.user("Zed", user_id=777001)
    chat = fake_api.private_chat(ann)

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            asked = fake_api.user_says(chat, ann, "/help")
            (help_text,) = await wait_for_replies(fake_api, chat, asked)
            reply = fake_api.user_says(chat, ann, HURT_QUESTION, reply_to=help_text.message_id)
            (answer,) = await wait_for_replies(fake_api, chat, reply)
            assert answer.text.startswith("1. Regional train derails")

    run(scenario)


def test_a_reply_to_an_answer_whose_articles_were_removed_says_so(
    fake_api: FakeBotAPI, tmp_path: Path, cache_dir: Path, embedder: Any
) -> None:
    # An engine of its own: the story's articles are taken out of the index (`newsbot
    # remove`, or retention) after the answer quoted them.
    engine = engine_for(make_data_dir(tmp_path / "removed", STORIES), cache_dir, embedder)
    ann, anne = fake_api.user("Ann"), fake_api.user("Anne", language_code="fr")
    english, french = fake_api.private_chat(ann), fake_api.private_chat(anne)

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            asked_en = fake_api.user_says(english, ann, FERRY_QUESTION)
            asked_fr = fake_api.user_says(french, anne, FERRY_QUESTION)
            (answer_en,) = await wait_for_replies(fake_api, english, asked_en)
            (answer_fr,) = await wait_for_replies(fake_api, french, asked_fr)
            for record in STORIES[:3]:  # the ferry: its dispatch, the copy, the French report
                assert await asyncio.to_thread(engine.remove, record["url"]) is not None
            reply_en = fake_api.user_says(
                english, ann, HURT_QUESTION, reply_to=answer_en.message_id
            )
            reply_fr = fake_api.user_says(
                french, anne, "Et combien de blessés ?", reply_to=answer_fr.message_id
            )
            (gone_en,) = await wait_for_replies(fake_api, english, reply_en)
            (gone_fr,) = await wait_for_replies(fake_api, french, reply_fr)
            assert gone_en.text.startswith(
                "The articles of the answer you replied to are no longer in my index."
            )
            assert gone_fr.text.startswith(
                "Les articles de la réponse à laquelle vous répondez ne sont plus dans mon index."
            )
            assert "Nothing in the story" not in gone_en.text
            assert "Marseille" not in gone_en.text  # nothing of the removed story is quoted

    try:
        run(scenario)
    finally:
        engine.close()
