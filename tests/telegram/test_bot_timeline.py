"""Timelines end to end: `/timeline` and "what happened since …" through the real
Application, the fake Bot API, the real engine and model over a story told over days
(tests/telegram/story_days.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.engine import Engine

from .bot_harness import engine_on_backend, running_bot, wait_for_replies
from .fake_bot_api import FakeBotAPI, SentMessage
from .story_days import ENDED, ERUPTION, ERUPTION_COPY, ICELAND, LAVA, OTHER_NEWS, RETURN, SWARM


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    cache_dir: Path,
    embedder: Any,
) -> Iterator[Engine]:
    """The Iceland story and other news: the index in SQLite + FAISS, then in PostgreSQL +
    pgvector (NEWSBOT_DATABASE_URL)."""
    records = [*ICELAND, ERUPTION_COPY, *OTHER_NEWS]
    root = tmp_path_factory.mktemp(f"timeline-{request.param}")
    with engine_on_backend(request, root, cache_dir, embedder, records) as engine:
        yield engine


def entries(messages: list[SentMessage]) -> list[tuple[str, str]]:
    """(heading line, quote) of each numbered entry, in order."""
    found = []
    for message in messages:
        lines = message.text.split("\n")
        for i, line in enumerate(lines[:-1]):
            if line[:1].isdigit() and ". " in line:
                found.append((line, lines[i + 1]))
    return found


async def timeline(
    fake: FakeBotAPI, chat: dict[str, Any], user: dict[str, Any], text: str
) -> list[SentMessage]:
    asked = fake.user_says(chat, user, text)
    return await wait_for_replies(fake, chat, asked)


def test_a_timeline_lists_dated_quotes_oldest_first_one_per_article(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    ann = fake_api.user("Ann")
    chat = fake_api.private_chat(ann)

    async def scenario() -> None:
        async with running_bot(fake_api, engine, poll_interval_minutes=0):
            replies = await timeline(fake_api, chat, ann, "/timeline eruption near Grindavik")
            text = "\n".join(m.text for m in replies)
            assert text.startswith("🕰 eruption near Grindavik: how it developed, oldest first.")
            listed = entries(replies)
            dates = [line.rsplit(", ", 1)[-1] for line, _ in listed[:4]]
            assert dates == ["2024-07-02", "2024-07-09", "2024-07-12", "2024-07-20"]
            openings = [quote for _, quote in listed]
            for n, opening in enumerate((SWARM, ERUPTION, LAVA, ENDED)):
                assert openings[n].startswith(opening)
            # The dispatch a second site copied is told once; the undated report comes last.
            assert sum(q.startswith(ERUPTION) for q in openings) == 1
            assert "Atlantic Daily" not in text
            assert "\n\nUndated articles:\n\n5. Grindavik residents return home" in text
            assert openings[-1].startswith(RETURN) and len(listed) == 5
            assert "chess" not in text and "baguette" not in text
            assert all(any(q in r["text"] for r in ICELAND) for q in openings)  # verbatim
            links = [e["url"] for m in replies for e in m.entities if e["type"] == "text_link"]
            assert links[0] == "https://news.example/iceland-swarm"

            usage = await timeline(fake_api, chat, ann, "/timeline")
            assert usage[0].text.startswith("Tell me the story after the command")

    asyncio.run(scenario())


def test_what_happened_since_a_date_starts_the_timeline_there_in_english_and_french(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    ann, marc = fake_api.user("Ann"), fake_api.user("Marc", language_code="fr")
    ann_chat, marc_chat = fake_api.private_chat(ann), fake_api.private_chat(marc)
    group = fake_api.group("Newsroom")

    async def scenario() -> None:
        async with running_bot(fake_api, engine, poll_interval_minutes=0):
            english = await timeline(
                fake_api, ann_chat, ann, "What happened in Iceland since July 10, 2024?"
            )
            assert english[0].text.startswith("🕰 Iceland since 2024-07-10, oldest first.")
            listed = entries(english)
            assert len(listed) == 2
            assert listed[0][1].startswith(LAVA) and listed[1][1].startswith(ENDED)
            assert "Undated" not in english[0].text  # undated reports cannot follow a date

            french = await timeline(
                fake_api,
                marc_chat,
                marc,
                "Que s'est-il passé avec l'éruption en Islande depuis le 10 juillet 2024 ?",
            )
            assert french[0].text.startswith(
                "🕰 l'éruption en Islande depuis le 2024-07-10, du plus ancien au plus récent."
            )
            assert [line.rsplit(", ", 1)[-1] for line, _ in entries(french)] == [
                "2024-07-12",
                "2024-07-20",
            ]

            in_group = await timeline(
                fake_api, group, ann, "/ask what has happened since the eruption near Grindavik?"
            )
            assert in_group[0].text.startswith("🕰 the eruption near Grindavik: how it developed")

            nothing = await timeline(
                fake_api, ann_chat, ann, "what happened in Iceland since August 2024?"
            )
            assert nothing[0].text == (
                "I found nothing on Iceland dated 2024-08 or later in the news I have indexed."
            )

    asyncio.run(scenario())
