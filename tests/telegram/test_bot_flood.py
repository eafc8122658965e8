"""Flood control end to end: Telegram answers 429 with retry_after, and every answer still
arrives, once, in order."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.engine import Engine

from .bot_harness import (
    SEED_QUESTION,
    SEED_QUOTE,
    running_bot,
    wait_for_replies,
)
from .fake_bot_api import FakeBotAPI


def test_a_429_storm_is_survived_with_every_answer_delivered_once(
    fake_api: FakeBotAPI, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    users = [fake_api.user(name) for name in ("Ann", "Bob", "Cleo")]
    chats = [fake_api.private_chat(user) for user in users]
    group = fake_api.group("Readers")
    fake_api.fail_next("sendMessage", count=5, retry_after=1)

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            asked = [
                fake_api.user_says(c, u, SEED_QUESTION) for c, u in zip(chats, users, strict=True)
            ]
            in_group = fake_api.user_says(group, users[0], f"/ask {SEED_QUESTION}")
            for chat, question in [*zip(chats, asked, strict=True), (group, in_group)]:
                (answer,) = await wait_for_replies(fake_api, chat, question, timeout=40)
                assert SEED_QUOTE in answer.text

    asyncio.run(scenario())
    statuses = [call.status for call in fake_api.calls("sendMessage")]
    assert statuses.count(429) == 5 and statuses.count(200) == 4
    for chat in [*chats, group]:
        assert len(fake_api.sent_messages(chat)) == 1
    assert fake_api.token not in caplog.text  # the token never reaches the logs


def test_a_flood_limited_chat_gets_every_part_in_order(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    ann = fake_api.user("Ann")
    chat = fake_api.private_chat(ann)
    fake_api.set_flood_limit(per_chat_per_second=1, retry_after=1)

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            questions = [
                fake_api.user_says(chat, ann, text)
                for text in (SEED_QUESTION, "/help", "/start", SEED_QUESTION)
            ]
            await wait_for_replies(fake_api, chat, questions[-1], timeout=40)
            replies = fake_api.sent_messages(chat)
            assert [m.reply_to for m in replies] == [q["message_id"] for q in questions]

    asyncio.run(scenario())
    assert 429 in [call.status for call in fake_api.calls("sendMessage")]
