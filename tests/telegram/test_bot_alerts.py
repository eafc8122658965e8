"""Feeds, subscriptions and alerts end to end: the real Application against the fake Bot
API, the real engine and model on a temporary data dir, news served by a local HTTP server.

The index stays under 30 stories here, so alerts use the plain similarity threshold
(alert_small_index_similarity, 0.835). The topics and stories are written so that matching
pairs score 0.87-0.92 and unrelated ones at most 0.82 (measured with the bundled model).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from bot.alerts import WATERMARK, DeliveryReport
from bot.app import RunningBot
from bot.engine import Engine
from bot.handlers import ENGINE, SETTINGS, STATE
from bot.poll import PollReport, poll_feeds
from bot.rounds import run_alert_round
from bot.state import State
from index.feeds import FeedSource
from tests.feed_server import FeedServer, serve

from .bot_harness import (
    ADMIN_ID,
    engine_on_backend,
    running_bot,
    wait_for_replies,
)
from .fake_bot_api import ApiError, FakeBotAPI, SentMessage
from .news_wire import (
    BAKERY,
    CHERRIES,
    CHESS,
    DATE,
    FLOODS,
    MUSEUM,
    SOURCE,
    TOUR,
    VOLCANO,
    WIND,
    Story,
    Wire,
    article_page,
)

T = TypeVar("T")
GROUP_TOPIC = "floods in southern Germany"
CHANNEL_TOPIC = "étape du Tour de France"
PRIVATE_TOPIC = "volcanic eruption in Iceland"
NOT_ADMIN = "Sorry, this command is for the bot's administrators."
NOT_CHAT_ADMIN = "Sorry, only this group's administrators can change its subscriptions."
QUICK_ROUNDS = 0.02  # minutes: a round every 1.2 s, for the tests that watch the job


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    cache_dir: Path,
    embedder: Any,
) -> Iterator[Engine]:
    """Every test here runs twice: the bot's state in a SQLite file, then in PostgreSQL."""
    root = tmp_path_factory.mktemp(f"alerts-{request.param}")
    with engine_on_backend(request, root, cache_dir, embedder) as engine:
        yield engine


@pytest.fixture(autouse=True)
def fresh_state(engine: Engine) -> Iterator[None]:
    """Each test starts with no feeds, subscriptions or alerts (the fake's chat ids repeat)."""
    yield
    url = engine.settings.database_url
    if url is not None:
        with psycopg.connect(url.get_secret_value()) as db:
            db.execute("TRUNCATE meta, feeds, subscriptions, alerts_sent RESTART IDENTITY")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{engine.settings.state_path}{suffix}").unlink(missing_ok=True)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with serve() as running:
        yield running


def feed_settings(*urls: str, **overrides: Any) -> dict[str, Any]:
    """Bot settings for feeds on the local server (127.0.0.1 needs allow_private_feeds)."""
    return {
        "feeds": [FeedSource(url, source=SOURCE) for url in urls],
        "allow_private_feeds": True,
        "fetch_timeout": 5.0,
        "poll_interval_minutes": 0,
        **overrides,
    }


def state_of(running: RunningBot) -> State:
    state: State = running.application.bot_data[STATE]
    return state


async def poll_and_alert(running: RunningBot) -> tuple[PollReport, DeliveryReport]:
    """One round as the job runs it: poll every feed, then alert."""
    app = running.application
    engine, state, settings = (app.bot_data[k] for k in (ENGINE, STATE, SETTINGS))
    polled = await asyncio.to_thread(poll_feeds, engine, state, settings)
    return polled, await run_alert_round(app.bot, engine, state, settings)


async def eventually(predicate: Callable[[], T], what: str, timeout: float = 20.0) -> T:
    """Wait for something the bot does on its own (not a message the fake can wait for)."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
    return value


def alerts_in(fake: FakeBotAPI, chat: dict[str, Any]) -> list[SentMessage]:
    return [m for m in fake.sent_messages(chat) if m.text.startswith("🔔")]


def sends_to(fake: FakeBotAPI, chat: dict[str, Any]) -> int:
    """sendMessage requests for `chat`, refused ones included."""
    return sum(str(c.params.get("chat_id")) == str(chat["id"]) for c in fake.calls("sendMessage"))


def assert_alert_for(alert: SentMessage, topic: str, title: str, url: str) -> None:
    """The alert names the topic, links the title, gives source and date, quotes the text."""
    assert alert.text.startswith(f"🔔 {topic}\n1. {title} — {SOURCE}, {DATE}\n")
    assert alert.reply_to is None and alert.parse_mode == "HTML"
    (link,) = [e for e in alert.entities if e["type"] == "text_link"]
    assert link["url"] == url
    assert any(e["type"] == "blockquote" for e in alert.entities)


def test_a_group_gets_one_alert_per_matching_story_across_rounds_restarts_and_copies(
    fake_api: FakeBotAPI, engine: Engine, server: FeedServer
) -> None:
    wire = Wire(server)
    ann, bob = fake_api.user("Ann"), fake_api.user("Bob")
    group = fake_api.group("Newsroom")
    fake_api.set_admins(group, creator=ann)
    fake_api.user_says(group, bob, "hello")  # Bob is a plain member

    async def first_run() -> None:
        async with running_bot(fake_api, engine, **feed_settings(wire.url)) as running:
            asked = fake_api.user_says(group, ann, f"/subscribe@NewsTestBot {GROUP_TOPIC}")
            (ok,) = await wait_for_replies(fake_api, group, asked)
            assert ok.text.startswith(f"Subscribed: {GROUP_TOPIC}.")

            floods = wire.publish("floods-1", FLOODS)
            wire.publish("chess-1", CHESS)
            polled, delivered = await poll_and_alert(running)
            assert polled.ingest.added == 2 and delivered.sent == 1
            (alert,) = alerts_in(fake_api, group)
            assert_alert_for(alert, GROUP_TOPIC, FLOODS.title, floods)
            assert "Danube" in alert.text and "chess" not in alert.text.lower()
            # A reply to the alert is a follow-up within its story.
            anchor = state_of(running).sent_answer(group["id"], alert.message_id)
            assert anchor is not None and anchor.question == GROUP_TOPIC
            assert len(anchor.article_ids) == 1
            asked = fake_api.user_says(
                group, bob, "How many people died?", reply_to=alert.message_id
            )
            (followed,) = await wait_for_replies(fake_api, group, asked)
            assert "two people had drowned" in followed.text
            assert "Nothing in the story" not in followed.text

            _, again = await poll_and_alert(running)
            assert again.sent == 0

            wire.publish("floods-copy", FLOODS)  # republished: new GUID and link, same text
            polled, copy = await poll_and_alert(running)
            assert polled.ingest.added == 1 and copy.sent == 0

    async def after_restart() -> None:
        async with running_bot(fake_api, engine, **feed_settings(wire.url)) as running:
            _, delivered = await poll_and_alert(running)
            assert delivered.sent == 0
            # As if the bot had crashed after posting, before moving the watermark: the
            # stories are matched again, and the alerts already claimed are not sent twice.
            state_of(running).put(WATERMARK, "0")
            _, replayed = await poll_and_alert(running)
            assert replayed.sent == 0 and replayed.skipped == 1
            asked = fake_api.user_says(group, bob, "/subscriptions")
            (listed,) = await wait_for_replies(fake_api, group, asked)
            assert listed.text == f"Topics followed here\n1. {GROUP_TOPIC}"

    asyncio.run(first_run())
    asyncio.run(after_restart())
    assert len(alerts_in(fake_api, group)) == 1


def test_only_a_groups_administrators_change_its_subscriptions(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    ann, bob = fake_api.user("Ann"), fake_api.user("Bob", language_code="fr")
    group = fake_api.group("Club", supergroup=True)
    fake_api.set_admins(group, [ann])

    async def scenario() -> None:
        async with running_bot(fake_api, engine) as running:
            for command in (f"/subscribe {GROUP_TOPIC}", "/unsubscribe all"):
                asked = fake_api.user_says(group, bob, command)
                (refused,) = await wait_for_replies(fake_api, group, asked)
                assert refused.text == (
                    "Désolé, seuls les administrateurs de ce groupe peuvent modifier ses "
                    "abonnements."
                )
            assert state_of(running).subscriptions() == []

            for command, expected in [
                ("/subscribe", "Tell me the topic after the command"),
                ("/subscribe " + "word " * 50, "A topic is at most 200 characters long"),
                (f"/subscribe {GROUP_TOPIC}", f"Subscribed: {GROUP_TOPIC}."),
                (f"/subscribe {GROUP_TOPIC.upper()}", "This chat already follows floods"),
                ("/subscribe chess", "Subscribed: chess."),
                ("/unsubscribe 2", "Unsubscribed: chess."),
                ("/unsubscribe chess", "This chat does not follow chess."),
            ]:
                asked = fake_api.user_says(group, ann, command)
                (reply,) = await wait_for_replies(fake_api, group, asked)
                assert reply.text.startswith(expected), (command, reply.text)

            # An anonymous administrator writes as the group itself.
            before = len(fake_api.sent_messages(group))
            fake_api.inject_update("message", anonymous_admin_says(group, "/subscribe volcanoes"))
            (reply,) = (await fake_api.wait_for_messages_async(group, before + 1))[before:]
            assert reply.text.startswith("Subscribed: volcanoes.")

            asked = fake_api.user_says(group, bob, "/subscriptions")
            (listed,) = await wait_for_replies(fake_api, group, asked)
            assert listed.text == f"Sujets suivis ici\n1. {GROUP_TOPIC}\n2. volcanoes"

    asyncio.run(scenario())
    asked_about = {c.params["user_id"] for c in fake_api.calls("getChatMember")}
    assert asked_about == {ann["id"], bob["id"]}


def anonymous_admin_says(group: dict[str, Any], text: str) -> dict[str, Any]:
    """A message from an anonymous group admin: sent by GroupAnonymousBot as the group."""
    command = text.split()[0]
    return {
        "message_id": 9000,
        "date": int(time.time()),
        "chat": group,
        "from": {
            "id": 1087968824, "is_bot": True, "first_name": "Group",
            "username": "GroupAnonymousBot",
        },
        "sender_chat": group,
        "text": text,
        "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}],
    }  # fmt: skip


def test_a_channel_subscribes_with_a_post_and_the_job_delivers_its_alert(
    fake_api: FakeBotAPI, engine: Engine, server: FeedServer
) -> None:
    wire = Wire(server)
    channel = fake_api.channel("Vélo Info")

    async def scenario() -> None:
        settings = feed_settings(wire.url, poll_interval_minutes=QUICK_ROUNDS)
        async with running_bot(fake_api, engine, **settings) as running:
            post = fake_api.channel_post(channel, f"/subscribe {CHANNEL_TOPIC}")
            (ok,) = await wait_for_replies(fake_api, channel, post)
            assert ok.text.startswith(f"Subscribed: {CHANNEL_TOPIC}.")

            tour = wire.publish("tour-14", TOUR)
            wire.publish("bakery-1", BAKERY)
            (alert,) = await eventually(lambda: alerts_in(fake_api, channel), "the alert")
            assert_alert_for(alert, CHANNEL_TOPIC, TOUR.title, tour)
            assert "col du Tourmalet" in alert.text
            assert alert.message["sender_chat"]["id"] == channel["id"]
            await eventually(
                lambda: indexed(engine, BAKERY.title) and caught_up(engine, state_of(running)),
                "a round past both stories",
            )
            assert len(alerts_in(fake_api, channel)) == 1  # none for the bread

    asyncio.run(scenario())


def indexed(engine: Engine, title: str) -> bool:
    return any(a.title == title for a in engine.store.all_articles())


def caught_up(engine: Engine, state: State) -> bool:
    """Whether the rounds have looked at every story indexed (the watermark is past them)."""
    watermark = state.get(WATERMARK)
    return watermark is not None and not engine.store.stories_added_since(float(watermark))


NECKAR = Story(
    "Flooding in Heidelberg as the Neckar bursts its banks",
    (
        "Storms over southern Germany flooded the old town of Heidelberg on Tuesday, as the "
        "Neckar rose two metres above its usual level. Emergency services in "
        "Baden-Württemberg moved hundreds of residents out of riverside streets.",
        "The city closed its bridges over the river and schools stayed shut; forecasters "
        "expect more heavy rain in the Black Forest before the water falls again.",
    ),
)


def test_a_group_upgraded_to_a_supergroup_keeps_its_subscriptions_and_alerts(
    fake_api: FakeBotAPI, engine: Engine, server: FeedServer
) -> None:
    wire = Wire(server)
    ann, dan = fake_api.user("Ann"), fake_api.user("Dan")
    told, silent = fake_api.group("Flood watch"), fake_api.group("River club")
    fake_api.set_admins(told, creator=ann)
    fake_api.set_admins(silent, creator=dan)

    async def scenario() -> None:
        async with running_bot(fake_api, engine, **feed_settings(wire.url)) as running:
            state = state_of(running)
            for group, admin in ((told, ann), (silent, dan)):
                asked = fake_api.user_says(group, admin, f"/subscribe {GROUP_TOPIC}")
                await wait_for_replies(fake_api, group, asked)
            # One upgrade the bot hears of (service messages), one it does not.
            told_super = fake_api.upgrade_to_supergroup(told, by=ann)
            silent_super = fake_api.upgrade_to_supergroup(silent, by=dan, notify=False)
            await eventually(
                lambda: [s.chat_id for s in state.subscriptions(told_super["id"])],
                "the subscription moved to the supergroup",
            )
            assert state.subscriptions(told["id"]) == []
            (moved,) = state.subscriptions(told_super["id"])
            assert moved.chat_type == "supergroup" and moved.topic == GROUP_TOPIC

            wire.publish("neckar-1", NECKAR)
            _, delivered = await poll_and_alert(running)
            # The silent group's send fails with migrate_to_chat_id: moved, then sent there.
            assert delivered.sent == 2 and delivered.failed == 0
            for old, new in ((told, told_super), (silent, silent_super)):
                assert alerts_in(fake_api, old) == []
                (alert,) = alerts_in(fake_api, new)
                assert alert.text.startswith(f"🔔 {GROUP_TOPIC}\n1. {NECKAR.title}")
            assert [s.chat_id for s in state.subscriptions()] == [
                told_super["id"],
                silent_super["id"],
            ]

            state.put(WATERMARK, "0")  # the story is pending again: no second alert
            _, replayed = await poll_and_alert(running)
            assert replayed.sent == 0
            asked = fake_api.user_says(silent_super, dan, "/subscriptions")
            (listed,) = await wait_for_replies(fake_api, silent_super, asked)
            assert listed.text == f"Topics followed here\n1. {GROUP_TOPIC}"

    asyncio.run(scenario())


def test_chats_that_blocked_or_removed_the_bot_are_paused_and_not_retried(
    fake_api: FakeBotAPI, engine: Engine, server: FeedServer
) -> None:
    wire = Wire(server)
    bea, carl, dan = fake_api.user("Bea"), fake_api.user("Carl"), fake_api.user("Dan")
    bea_chat, carl_chat = fake_api.private_chat(bea), fake_api.private_chat(carl)
    group = fake_api.group("Geology club")
    fake_api.set_admins(group, creator=dan)

    async def scenario() -> None:
        async with running_bot(fake_api, engine, **feed_settings(wire.url)) as running:
            state = state_of(running)
            for chat, user in ((bea_chat, bea), (carl_chat, carl), (group, dan)):
                asked = fake_api.user_says(chat, user, f"/subscribe {PRIVATE_TOPIC}")
                await wait_for_replies(fake_api, chat, asked)

            fake_api.block(bea_chat)  # Telegram tells the bot with a my_chat_member update
            fake_api.my_chat_member(group, "kicked", by=dan)
            await eventually(
                lambda: (
                    [s.chat_id for s in state.subscriptions() if s.paused]
                    == [bea_chat["id"], group["id"]]
                ),
                "Bea's chat and the group paused",
            )
            sent_before = {c["id"]: sends_to(fake_api, c) for c in (bea_chat, carl_chat, group)}

            # Carl blocked the bot too, but the update has not arrived: the send fails.
            fake_api.fail_next_with("sendMessage", ApiError(403, "Forbidden: bot was blocked"))
            wire.publish("volcano-1", VOLCANO)
            _, delivered = await poll_and_alert(running)
            assert (delivered.sent, delivered.paused_chats) == (0, 1)
            assert all(s.paused for s in state.subscriptions())

            state.put(WATERMARK, "0")  # every story is pending again
            _, replayed = await poll_and_alert(running)
            assert replayed.sent == replayed.failed == 0
            sent_after = {c["id"]: sends_to(fake_api, c) for c in (bea_chat, carl_chat, group)}
            assert sent_after == {
                bea_chat["id"]: sent_before[bea_chat["id"]],
                carl_chat["id"]: sent_before[carl_chat["id"]] + 1,  # the one refused
                group["id"]: sent_before[group["id"]],
            }

            asked = fake_api.user_says(carl_chat, carl, "/subscriptions")
            (listed,) = await wait_for_replies(fake_api, carl_chat, asked)
            assert listed.text.endswith("Alerts are paused: I could not post here. "
                                        "Subscribing again resumes them.")  # fmt: skip

    asyncio.run(scenario())


def test_feeds_lists_every_feed_with_its_last_error_while_the_good_one_is_ingested(
    fake_api: FakeBotAPI, engine: Engine, server: FeedServer
) -> None:
    wire = Wire(server)
    wire.publish("cherries", CHERRIES)
    not_a_feed = server.add("/index.html", "<html><body><p>Welcome</p></body></html>")
    missing = server.url("/gone.rss")
    root = fake_api.user("Root", user_id=ADMIN_ID)
    admin_chat = fake_api.private_chat(root)
    ann = fake_api.user("Ann")
    ann_chat = fake_api.private_chat(ann)

    async def scenario() -> None:
        settings = feed_settings(wire.url, not_a_feed, missing, poll_interval_minutes=QUICK_ROUNDS)
        async with running_bot(fake_api, engine, **settings) as running:
            state = state_of(running)
            polled = lambda: [f for f in state.feeds() if f.last_polled]  # noqa: E731
            await eventually(lambda: len(polled()) == 3, "the job's first poll")
            asked = fake_api.user_says(admin_chat, root, "/feeds")
            (listed,) = await wait_for_replies(fake_api, admin_chat, asked)
            entries = listed.text.split("\n\n")
            assert entries[0] == "Feeds (3)"
            good, html, gone = entries[1:]
            assert good.startswith(f"1. {wire.url}\nSource: {SOURCE} · last poll: 20")
            assert good.endswith("· 1 article(s)") and "error" not in good
            assert html.startswith(f"2. {not_a_feed}\n") and html.endswith(
                "Last error: not a feed: an HTML page, not RSS or Atom"
            )
            assert gone.startswith(f"3. {missing}\n") and "Last error: " in gone
            assert "404" in gone

            asked = fake_api.user_says(ann_chat, ann, "/feeds")
            (refused,) = await wait_for_replies(fake_api, ann_chat, asked)
            assert refused.text == NOT_ADMIN

    asyncio.run(scenario())
    assert indexed(engine, CHERRIES.title)


def test_addfeed_and_ingest_work_for_admins_and_are_refused_to_others(
    fake_api: FakeBotAPI, engine: Engine, server: FeedServer
) -> None:
    wire = Wire(server, "/museums.rss")
    wire.publish("gdansk", MUSEUM)
    page = server.add("/wind.html", article_page(WIND))
    root = fake_api.user("Root", user_id=ADMIN_ID)
    admin_chat = fake_api.private_chat(root)
    ann = fake_api.user("Ann")
    ann_chat = fake_api.private_chat(ann)

    async def ask(chat: dict[str, Any], user: dict[str, Any], text: str, count: int = 1) -> str:
        asked = fake_api.user_says(chat, user, text)
        return (await wait_for_replies(fake_api, chat, asked, count))[-1].text

    async def allowed() -> None:
        async with running_bot(fake_api, engine, **feed_settings()) as running:
            for command in (f"/addfeed {wire.url}", f"/ingest {page}", "/feeds"):
                assert await ask(ann_chat, ann, command) == NOT_ADMIN
            assert state_of(running).feeds() == []

            added = fake_api.user_says(admin_chat, root, f"/addfeed {wire.url}")
            (progress,) = await wait_for_replies(fake_api, admin_chat, added)
            await fake_api.wait_for_async(
                lambda: "polled" in replies_text(fake_api, admin_chat, added), 20, "the poll"
            )
            assert replies_text(fake_api, admin_chat, added) == (
                f"Feed added and polled: {wire.url}. 1 new article(s) indexed."
            )
            assert progress.text == f"Feed added: {wire.url}. Polling it now…"
            assert await ask(admin_chat, root, f"/addfeed {wire.url}") == (
                f"I already follow {wire.url}."
            )
            refused = await ask(admin_chat, root, "/addfeed ftp://example.org/rss")
            assert refused.startswith("I can't follow ftp://example.org/rss: ")
            (feed,) = state_of(running).feeds()
            assert (feed.url, feed.articles, feed.last_error) == (wire.url, 1, None)

            assert await ask(admin_chat, root, f"/ingest {page}") == (
                f"Indexed: {WIND.title} ({SOURCE}, —)."
            )
            assert await ask(admin_chat, root, f"/ingest {server.url('/nope.html')}") == (
                f"Nothing indexed: could not fetch {server.url('/nope.html')}: HTTP 404 Not Found"
            )

    async def private_addresses_refused() -> None:
        async with running_bot(fake_api, engine, poll_interval_minutes=0) as running:
            other = server.url("/other.rss")
            assert await ask(admin_chat, root, f"/addfeed {other}") == (
                f"I can't follow {other}: refusing loopback address 127.0.0.1"
            )
            assert len(state_of(running).feeds()) == 1
            reply = await ask(admin_chat, root, f"/ingest {page}")
            assert reply.startswith("Nothing indexed: could not fetch") and "refusing" in reply

    asyncio.run(allowed())
    asyncio.run(private_addresses_refused())
    titles = {a.title for a in engine.store.all_articles()}
    assert {MUSEUM.title, WIND.title} <= titles


def replies_text(fake: FakeBotAPI, chat: dict[str, Any], message: dict[str, Any]) -> str:
    """The text of the bot's (latest edited) reply to `message`."""
    found = [m for m in fake.sent_messages(chat) if m.reply_to == message["message_id"]]
    return found[-1].text if found else ""


def test_a_reindex_does_not_alert_the_stories_it_reindexed(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    """The seed article (Kim Jong Un in Russia) matches the topic at 0.87, but it was indexed
    before the subscription; a rebuilt index dates it from now, and still it is not new."""
    ann = fake_api.user("Ann")
    chat = fake_api.private_chat(ann)
    root = fake_api.user("Root", user_id=ADMIN_ID)
    admin_chat = fake_api.private_chat(root)

    async def scenario() -> None:
        async with running_bot(fake_api, engine) as running:
            asked = fake_api.user_says(chat, ann, "/subscribe Kim Jong Un's visit to Russia")
            await wait_for_replies(fake_api, chat, asked)
            asked = fake_api.user_says(admin_chat, root, "/reindex")
            await fake_api.wait_for_async(
                lambda: "Reindex done" in replies_text(fake_api, admin_chat, asked), 30, "reindex"
            )
            app = running.application
            state, settings = state_of(running), app.bot_data[SETTINGS]
            delivered = await run_alert_round(app.bot, engine, state, settings)
            assert delivered.sent == 0 and alerts_in(fake_api, chat) == []

    asyncio.run(scenario())


def test_a_slow_state_database_holds_only_its_own_chat(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    """State calls run off the event loop: while one group's /subscriptions waits on a
    database that takes 3 s to answer, a reader in another chat gets an answer."""
    ann = fake_api.user("Ann")
    group = fake_api.group("Club", supergroup=True)
    fake_api.set_admins(group, [ann])
    reader = fake_api.user("Rita")
    private = fake_api.private_chat(reader)

    async def scenario() -> None:
        async with running_bot(fake_api, engine) as running:
            state = state_of(running)
            answer_subscriptions = state.subscriptions

            def slow_subscriptions(*args: Any, **kwargs: Any) -> Any:
                time.sleep(3.0)
                return answer_subscriptions(*args, **kwargs)

            state.subscriptions = slow_subscriptions  # type: ignore[method-assign]
            try:
                listed = fake_api.user_says(group, ann, "/subscriptions")
                await asyncio.sleep(0.2)  # the group's command is being handled
                asked = fake_api.user_says(private, reader, "who denied signing an accord?")
                (answer,) = await wait_for_replies(fake_api, private, asked)
                assert "Peskov" in answer.text
                # The reader was answered while the group's command still waited on the state.
                assert fake_api.sent_messages(group) == []
                (reply,) = await wait_for_replies(fake_api, group, listed)
                assert "subscri" in reply.text.lower()
            finally:
                state.subscriptions = answer_subscriptions  # type: ignore[method-assign]

    asyncio.run(scenario())
