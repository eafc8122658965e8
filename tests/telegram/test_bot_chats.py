"""The bot in private chats and groups, end to end: fake Bot API server, real Application,
real engine and embedding model on a temporary data dir."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.engine import Engine

from .bot_harness import (
    ADMIN_ID,
    OFF_TOPIC_QUESTION,
    SEED_QUESTION,
    SEED_QUOTE,
    engine_for,
    make_data_dir,
    replies_to,
    running_bot,
    wait_for_replies,
)
from .fake_bot_api import FakeBotAPI, bad_request, utf16_len

SCRIPT_ARTICLE = {
    "title": "<script>alert('x')</script> Fish & Chips prices",
    "text": "The price of fish & chips at the <script> kiosk on Brighton pier rose by "
    "twenty percent in 2024, the city council said on Saturday.\n\n"
    "Local anglers blamed the cost of fuel.",
    "source": "Coast & Co <News>",
    "date": "2024-03-02",
    "url": "https://example.org/news?id=7&lang=en",
}
SCRIPT_QUESTION = "How much did the price of fish and chips rise on Brighton pier?"


@pytest.fixture(scope="module")
def engine(
    tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, embedder: Any
) -> Iterator[Engine]:
    data = make_data_dir(tmp_path_factory.mktemp("chats"), [SCRIPT_ARTICLE])
    engine = engine_for(data, cache_dir, embedder)
    yield engine
    engine.close()


def run(scenario: Any) -> None:
    asyncio.run(scenario())


def test_private_question_is_answered_with_quote_source_and_typing(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    ann = fake_api.user("Ann")
    chat = fake_api.private_chat(ann)

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            question = fake_api.user_says(chat, ann, SEED_QUESTION)
            (answer,) = await wait_for_replies(fake_api, chat, question)
            assert SEED_QUOTE in answer.text and "Dmitri Peskov" in answer.text
            assert answer.text.startswith("1. ")
            assert "— ATS, 2023-09" in answer.text
            quote = next(e for e in answer.entities if e["type"] == "blockquote")
            quoted = answer.text.encode("utf-16-le")[2 * quote["offset"] :][: 2 * quote["length"]]
            assert SEED_QUOTE in quoted.decode("utf-16-le")
            assert answer.parse_mode == "HTML"
            assert answer.link_preview_options == {"is_disabled": True}
            assert (chat["id"], "typing", None) in fake_api.chat_actions(chat)

    run(scenario)


def test_no_source_answer_is_said_plainly_in_the_users_language(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    ann, marc = fake_api.user("Ann"), fake_api.user("Marc", language_code="fr")
    ann_chat, marc_chat = fake_api.private_chat(ann), fake_api.private_chat(marc)

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            english = fake_api.user_says(ann_chat, ann, OFF_TOPIC_QUESTION)
            french = fake_api.user_says(marc_chat, marc, OFF_TOPIC_QUESTION)
            (in_english,) = await wait_for_replies(fake_api, ann_chat, english)
            (in_french,) = await wait_for_replies(fake_api, marc_chat, french)
            assert in_english.text.startswith("I found nothing on this in the news")
            assert in_french.text.startswith("Je n'ai rien trouvé à ce sujet")
            assert "«" not in in_english.text and not in_english.entities

    run(scenario)


def test_start_and_help_tell_what_the_bot_knows_in_french_and_english(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    marc, ann = fake_api.user("Marc", language_code="fr-CA"), fake_api.user("Ann")
    marc_chat, ann_chat = fake_api.private_chat(marc), fake_api.private_chat(ann)

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            start = fake_api.user_says(marc_chat, marc, "/start")
            help_ = fake_api.user_says(ann_chat, ann, "/help")
            (french,) = await wait_for_replies(fake_api, marc_chat, start)
            (english,) = await wait_for_replies(fake_api, ann_chat, help_)
            assert "Je connais 2 articles (sources : " in french.text
            assert "; du 2023-09 au 2024-03-02)." in french.text
            assert "Coast & Co <News>" in french.text and "ATS" in french.text
            assert "en septembre 2023" in french.text and "in September 2023" in english.text
            assert "mentionnez @NewsTestBot" in french.text
            assert "I know 2 articles from " in english.text
            assert "/ask your question" in english.text and "/help" in english.text

    run(scenario)


def test_group_ask_ask_at_bot_reply_mention_and_ask_in_reply_are_answered(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    ann, bob = fake_api.user("Ann"), fake_api.user("Bob")
    group = fake_api.group("Readers", supergroup=True)  # privacy mode: the bot sees little

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            ask = fake_api.user_says(group, ann, f"/ask {SEED_QUESTION}")
            ask_at = fake_api.user_says(group, bob, f"/ask@NewsTestBot {SEED_QUESTION}")
            (first,) = await wait_for_replies(fake_api, group, ask)
            (second,) = await wait_for_replies(fake_api, group, ask_at)
            follow_up = fake_api.user_says(
                group, bob, "Qui a nié la signature d'un accord ?", reply_to=first.message_id
            )
            mention = fake_api.user_says(group, ann, f"@NewsTestBot, {SEED_QUESTION}")
            wondering = fake_api.user_says(group, bob, SEED_QUESTION)  # not for the bot
            ask_that = fake_api.user_says(group, ann, "/ask", reply_to=wondering)
            (third,) = await wait_for_replies(fake_api, group, follow_up)
            (fourth,) = await wait_for_replies(fake_api, group, mention)
            (fifth,) = await wait_for_replies(fake_api, group, ask_that)
            for answer in (first, second, third, fourth, fifth):
                assert SEED_QUOTE in answer.text and "ATS, 2023-09" in answer.text
            assert len(fake_api.sent_messages(group)) == 5

    run(scenario)


def test_group_chatter_is_ignored_when_the_bot_reads_everything(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    ann, bob = fake_api.user("Ann"), fake_api.user("Bob")
    group = fake_api.group("Newsroom", supergroup=True)
    fake_api.set_admins(group, [], bot_is_admin=True)  # an admin bot gets every message

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            said = fake_api.user_says(group, ann, f"I wonder {SEED_QUESTION}")
            fake_api.user_says(group, bob, "no idea", reply_to=said)
            fake_api.user_says(group, bob, f"/ask@OtherBot {SEED_QUESTION}")
            fake_api.user_says(group, ann, "/start@OtherBot")
            fake_api.user_says(group, ann, "/unknown")
            asked = fake_api.user_says(group, ann, f"/ask {SEED_QUESTION}")
            # One chat's updates are handled in order: the chatter was seen before this.
            (answer,) = await wait_for_replies(fake_api, group, asked)
            assert SEED_QUOTE in answer.text
            assert fake_api.sent_messages(group) == [answer]
            assert len(fake_api.chat_actions(group)) == 1

    run(scenario)


def test_answers_go_to_the_forum_topic_of_the_question(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    ann = fake_api.user("Ann")
    forum = fake_api.group("Desk", forum=True)
    topic = fake_api.create_topic(forum, "Korea", by=ann)

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            asked = fake_api.user_says(forum, ann, f"/ask {SEED_QUESTION}", thread_id=topic)
            (answer,) = await wait_for_replies(fake_api, forum, asked)
            assert answer.thread_id == topic and SEED_QUOTE in answer.text
            assert (forum["id"], "typing", topic) in fake_api.chat_actions(forum)

    run(scenario)


def test_one_chats_questions_are_answered_in_order(fake_api: FakeBotAPI, engine: Engine) -> None:
    ann = fake_api.user("Ann")
    chat = fake_api.private_chat(ann)

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            slow = fake_api.user_says(chat, ann, SEED_QUESTION)  # embeds and searches
            fast = fake_api.user_says(chat, ann, "/help")  # reads two counts
            await wait_for_replies(fake_api, chat, fast)
            assert [m.reply_to for m in fake_api.sent_messages(chat)] == [
                slow["message_id"], fast["message_id"],
            ]  # fmt: skip

    run(scenario)


def test_a_user_over_the_question_quota_is_told_once_and_others_are_served(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    ann, bob = fake_api.user("Ann"), fake_api.user("Bob")
    admin = fake_api.user("Admin", user_id=ADMIN_ID)
    group = fake_api.group("Quiz night")

    async def scenario() -> None:
        async with running_bot(fake_api, engine, questions_per_minute=2):
            asked = [fake_api.user_says(group, ann, f"/ask {SEED_QUESTION}") for _ in range(4)]
            bob_asks = fake_api.user_says(group, bob, f"/ask {SEED_QUESTION}")
            admin_asks = [
                fake_api.user_says(group, admin, f"/ask {SEED_QUESTION}") for _ in range(3)
            ]
            await wait_for_replies(fake_api, group, admin_asks[-1])
            await wait_for_replies(fake_api, group, bob_asks)
            for question in asked[:2]:  # within the quota: answered
                (answer,) = replies_to(fake_api, group, question)
                assert SEED_QUOTE in answer.text
            (told,) = replies_to(fake_api, group, asked[2])  # the first one over: told
            assert told.text.startswith("You are asking faster than I can read (2 questions")
            assert "ask again in " in told.text
            assert replies_to(fake_api, group, asked[3]) == []  # then skipped quietly
            for question in admin_asks:  # administrators have no quota
                (answer,) = replies_to(fake_api, group, question)
                assert SEED_QUOTE in answer.text

    run(scenario)


def test_questions_that_cannot_be_answered_get_a_clear_reply(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    ann = fake_api.user("Ann")
    chat = fake_api.private_chat(ann)
    group = fake_api.group("Readers")

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            empty = fake_api.user_says(group, ann, "/ask")
            bare_mention = fake_api.user_says(group, ann, "@NewsTestBot")
            too_long = fake_api.user_says(chat, ann, "why? " * 200 + "really?")
            unknown = fake_api.user_says(chat, ann, "/weather")
            fake_api.inject_update(
                "message",
                {
                    "message_id": 999, "date": int(time.time()), "chat": chat, "from": ann,
                    "location": {"latitude": 46.2, "longitude": 6.1},
                },
            )  # fmt: skip
            (empty_reply,) = await wait_for_replies(fake_api, group, empty)
            (mention_reply,) = await wait_for_replies(fake_api, group, bare_mention)
            (long_reply,) = await wait_for_replies(fake_api, chat, too_long)
            (unknown_reply,) = await wait_for_replies(fake_api, chat, unknown)
            location_reply = (await fake_api.wait_for_messages_async(chat, 3))[-1]
            assert empty_reply.text.startswith("Ask me a question after the command")
            assert mention_reply.text == empty_reply.text
            assert long_reply.text == ("Your question is 1007 characters long; the limit is 1000.")
            assert unknown_reply.text.startswith("I don't know that command.")
            assert location_reply.text == "I can only read text: please write your question."
            assert fake_api.chat_actions() == []  # nothing was searched

    run(scenario)


def test_script_tags_and_ampersands_in_articles_are_shown_as_text(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    ann = fake_api.user("Ann")
    chat = fake_api.private_chat(ann)

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            question = fake_api.user_says(chat, ann, SCRIPT_QUESTION)
            (answer,) = await wait_for_replies(fake_api, chat, question)
            assert answer.parse_mode == "HTML"
            assert answer.text.startswith(
                "1. <script>alert('x')</script> Fish & Chips prices — Coast & Co <News>, "
                "2024-03-02\nThe price of fish & chips at the <script> kiosk"
            )
            assert "<script>" not in answer.raw_text and "&lt;script&gt;" in answer.raw_text
            (link,) = [e for e in answer.entities if e["type"] == "text_link"]
            assert link["url"] == "https://example.org/news?id=7&lang=en"

    run(scenario)


def test_refused_html_is_resent_as_plain_text(fake_api: FakeBotAPI, engine: Engine) -> None:
    ann = fake_api.user("Ann")
    chat = fake_api.private_chat(ann)
    fake_api.fail_next_with(
        "sendMessage", bad_request('can\'t parse entities: Unsupported start tag "x"')
    )

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            question = fake_api.user_says(chat, ann, SCRIPT_QUESTION)
            (answer,) = await wait_for_replies(fake_api, chat, question)
            assert answer.parse_mode is None and answer.entities[0]["type"] == "url"
            assert answer.text.startswith(
                "1. <script>alert('x')</script> Fish & Chips prices "
                "(https://example.org/news?id=7&lang=en) — Coast & Co <News>, 2024-03-02\n"
                "The price of fish & chips"
            )
            assert [c.status for c in fake_api.calls("sendMessage")] == [400, 200]

    run(scenario)


def test_a_failure_is_logged_and_the_user_gets_an_apology(
    fake_api: FakeBotAPI,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ann = fake_api.user("Ann", language_code="fr")
    chat = fake_api.private_chat(ann)

    def broken(questions: list[str], filters: object = None) -> list[object]:
        raise OSError("disk on fire")

    monkeypatch.setattr(engine, "ask", broken)

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            question = fake_api.user_says(chat, ann, SEED_QUESTION)
            (apology,) = await wait_for_replies(fake_api, chat, question)
            assert apology.text == "Désolé, une erreur s'est produite. Réessayez dans un instant."

    run(scenario)
    (record,) = [r for r in caplog.records if r.name == "bot.handlers" and r.exc_info]
    assert f"(chat {chat['id']}, user {ann['id']})" in record.getMessage()
    assert "disk on fire" in caplog.text


# --------------------------------------------------------------------------- long answers

TRAM_QUESTION = "What happened with the new tram line in Lyon?"


def tram_article(n: int) -> dict[str, str]:
    """One long sentence on one subject, so all ten are quoted for one question."""
    sentence = (
        f"The new tram line in Lyon opened to passengers on Monday morning after {n + 3} years "
        "of works, delays and disputes between the metropolis, the operator and the "
        "residents of the districts it crosses, and the city council said that the line, "
        "which links the Part-Dieu station to the eastern suburbs through the university "
        "campus, the hospitals and the new business district, should carry about "
        f"{40 + n} thousand passengers every working day once the timetable is complete, "
        "with a tram every four minutes at rush hour, a night service on weekends, "
        "free park-and-ride car parks at both ends of the line and new cycle lanes along "
        "most of its length, while opponents of the project, who had taken the metropolis "
        "to court twice over the felling of old plane trees and the cost of the works, "
        f"promised to keep watching the final bill, estimated at {300 + n} million euros"
    )
    return {
        "title": f"Lyon tram line opens ({n})",
        "text": sentence + ".",
        "source": f"Source {n}",
        "date": f"2024-{n + 1:02d}-15",  # months apart: ten stories, not one
        "url": f"https://example.org/tram/{n}",
    }


@pytest.fixture(scope="module")
def tram_engine(
    tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, embedder: Any
) -> Iterator[Engine]:
    data = make_data_dir(
        tmp_path_factory.mktemp("tram"), [tram_article(n) for n in range(10)], seed=False
    )
    engine = engine_for(
        data, cache_dir, embedder, max_citations=10, top_k=10, score_floor=0.2,
        passage_floor=0.5,
    )  # fmt: skip
    yield engine
    engine.close()


def test_an_answer_over_4096_units_is_split_between_citations(
    fake_api: FakeBotAPI, tram_engine: Engine
) -> None:
    ann = fake_api.user("Ann")
    chat = fake_api.private_chat(ann)

    async def scenario() -> None:
        async with running_bot(fake_api, tram_engine):
            question = fake_api.user_says(chat, ann, TRAM_QUESTION)
            answers = await wait_for_replies(fake_api, chat, question, count=2)
            await asyncio.sleep(0.3)  # any further part
            answers = replies_to(fake_api, chat, question)
            numbers = [
                int(line.split(".", 1)[0])
                for m in answers
                for line in m.text.split("\n")
                if line[:1].isdigit()
            ]
            assert numbers == list(range(1, 11))  # every citation once, in order
            total = sum(utf16_len(m.text) for m in answers)
            assert total > 4096
            for message in answers:
                assert utf16_len(message.text) <= 4096 and message.parse_mode == "HTML"
                assert message.text[:1].isdigit()  # each part starts with a citation
                kinds = [e["type"] for e in message.entities]
                assert kinds.count("blockquote") == kinds.count("text_link") >= 1
            assert all(c.status == 200 for c in fake_api.calls("sendMessage"))

    run(scenario)
