"""Digests end to end: the real Application against the fake Bot API, the real engine and
model over a story told over days (tests/telegram/story_days.py), the state in SQLite and
in PostgreSQL. The daily job is driven by calling its round with an explicit clock."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from bot import digest
from bot.app import RunningBot
from bot.digest import compose_digest, run_digest_round
from bot.engine import Engine
from bot.handlers import ENGINE, SETTINGS, STATE
from bot.state import DigestSchedule, State, Subscription
from index.articles import article_from_record

from .bot_harness import engine_on_backend, replies_to, running_bot, wait_for_replies
from .fake_bot_api import ApiError, FakeBotAPI, SentMessage
from .story_days import ERUPTION, ERUPTION_COPY, ICELAND, LAVA, OTHER_NEWS, SWARM, _record

TOPIC = "volcanic eruption in Iceland"
PARIS = ZoneInfo("Europe/Paris")
# No feed-and-alert round: its alerts would land between the digests these tests count.
NO_ROUNDS = {"poll_interval_minutes": 0}
NO_DAILY = "No daily digest here: /digest daily 08:00 sets one."
NO_TOPICS = "This chat follows no topic, so I have nothing to digest."
FIRST = "📰 Digest: 5 stories on this chat's topics in the last 24 hours (this chat's first"
FIRST_ANY = re.compile(r"📰 Digest: \d+ stories on this chat's topics in the last 24 hours")
# A story of its own: its lead is 0.91 (cosine) from its nearest report, well under
# STORY_SIMILARITY on every backend. (An earlier text was 0.953 from the undated
# "residents return home" report under fp32, i.e. the same story by the store's rule.)
HARBOUR = _record(
    "iceland-harbour",
    "Grindavik harbour reopens after the eruption",
    "2024-07-28",
    "Trawlers landed their first catch of cod in Grindavik on Sunday, weeks after the volcanic "
    "eruption on the Reykjanes peninsula closed the fishing port, Iceland's coast guard said.",
)
ASH = _record(
    "iceland-ash",
    "Ash from the Icelandic eruption grounds flights in Scotland",
    "2024-07-30",
    "A cloud of ash from the volcanic eruption in south-west Iceland drifted over Scotland on "
    "Tuesday, and airlines cancelled dozens of flights from Glasgow and Edinburgh.",
)
CRATER = _record(
    "iceland-crater",
    "Scientists map the new crater near Grindavik",
    "2024-08-02",
    "Volcanologists flew drones over the crater left by the eruption near Grindavik on Friday "
    "and found that the fissure had grown to four kilometres, Iceland's university said.",
)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    cache_dir: Path,
    embedder: Any,
) -> Iterator[Engine]:
    """The Iceland story and other news, indexed now; the state in a file, then PostgreSQL."""
    records = [*ICELAND, ERUPTION_COPY, *OTHER_NEWS]
    root = tmp_path_factory.mktemp(f"digest-{request.param}")
    with engine_on_backend(request, root, cache_dir, embedder, records) as engine:
        yield engine


@pytest.fixture(autouse=True)
def fresh_state(engine: Engine) -> Iterator[None]:
    """Each test starts with no subscriptions or digests (the fake's chat ids repeat)."""
    yield
    url = engine.settings.database_url
    if url is not None:
        # No bot ran in the test: no state tables.
        with (
            psycopg.connect(url.get_secret_value()) as db,
            contextlib.suppress(psycopg.errors.UndefinedTable),
        ):
            db.execute("TRUNCATE meta, subscriptions, digests RESTART IDENTITY")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{engine.settings.state_path}{suffix}").unlink(missing_ok=True)


def quotes(messages: list[SentMessage]) -> list[str]:
    """The blockquoted text of the messages, in order."""
    found = []
    for message in messages:
        for entity in message.entities:
            if entity["type"] == "blockquote":
                units = message.text.encode("utf-16-le")
                start, end = 2 * entity["offset"], 2 * (entity["offset"] + entity["length"])
                found.append(units[start:end].decode("utf-16-le"))
    return found


async def ask(fake: FakeBotAPI, chat: dict[str, Any], user: dict[str, Any], text: str) -> str:
    asked = fake.user_says(chat, user, text)
    replies = await wait_for_replies(fake, chat, asked)
    return "\n\n".join(r.text for r in replies)


def test_digest_posts_one_quote_per_story_since_the_last_digest_and_nothing_twice(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    ann = fake_api.user("Ann")
    chat = fake_api.private_chat(ann)

    async def scenario() -> None:
        async with running_bot(fake_api, engine, **NO_ROUNDS):
            assert (await ask(fake_api, chat, ann, "/digest")).startswith(NO_TOPICS)
            await ask(fake_api, chat, ann, f"/subscribe {TOPIC}")

            asked = fake_api.user_says(chat, ann, "/digest")
            first = await wait_for_replies(fake_api, chat, asked)
            assert first[0].text.startswith(FIRST)
            said = quotes(first)
            # One quote per story: the eruption's copy from a second site is the same story;
            # the chess and bread stories match no topic of the chat.
            assert len(said) == 5 and len(set(said)) == 5
            for opening in (SWARM, ERUPTION, LAVA):
                assert sum(q.startswith(opening) for q in said) == 1
            text = "\n".join(m.text for m in first)
            assert "Atlantic Daily" not in text and "chess" not in text
            assert "— Nordic Wire, 2024-07-09\n" in text  # source and date
            links = [e["url"] for m in first for e in m.entities if e["type"] == "text_link"]
            assert "https://news.example/iceland-eruption" in links and len(links) == 5
            for quote in said:  # verbatim
                assert any(quote in r["text"] for r in [*ICELAND, *OTHER_NEWS])
            assert first[-1].text.endswith(NO_DAILY)

            again = await ask(fake_api, chat, ann, "/digest")
            assert re.match(
                r"Nothing new on this chat's topics since \d{4}-\d\d-\d\d \d\d:\d\d UTC", again
            )

            await asyncio.to_thread(
                engine.add_articles, [article_from_record(HARBOUR), article_from_record(ASH)]
            )
            asked = fake_api.user_says(chat, ann, "/digest")
            later = await wait_for_replies(fake_api, chat, asked)
            assert later[0].text.startswith("📰 Digest: 2 new stories on this chat's topics since")
            assert sorted(q[:30] for q in quotes(later)) == [ASH["text"][:30], HARBOUR["text"][:30]]
            assert all(len(m.text) <= 4096 for m in [*first, *later])

    asyncio.run(scenario())


def state_of(running: RunningBot) -> State:
    state: State = running.application.bot_data[STATE]
    return state


async def daily_round(running: RunningBot, now: datetime) -> int:
    """The daily job's round, as the job queue runs it, at `now`."""
    app = running.application
    engine, state, settings = (app.bot_data[k] for k in (ENGINE, STATE, SETTINGS))
    return await run_digest_round(app.bot, engine, state, settings, now=now)


def test_a_groups_daily_digest_is_set_by_its_admins_and_posted_once_a_day(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    ann, bob = fake_api.user("Ann"), fake_api.user("Bob", language_code="fr")
    group = fake_api.group("Volcano watchers", supergroup=True)
    fake_api.set_admins(group, creator=ann)
    fake_api.user_says(group, bob, "salut")  # Bob is a plain member
    tomorrow = datetime.now(PARIS).date() + timedelta(days=1)

    def at(day: int, hour: int, minute: int) -> datetime:
        """A moment `day` days after tomorrow, Paris time."""
        return datetime.combine(tomorrow + timedelta(days=day), datetime.min.time(), PARIS).replace(
            hour=hour, minute=minute
        )

    def digests() -> list[SentMessage]:
        return [m for m in fake_api.sent_messages(group) if m.text.startswith("📰")]

    async def first_run() -> None:
        async with running_bot(fake_api, engine, **NO_ROUNDS) as running:
            queue = running.application.job_queue
            assert queue is not None and queue.get_jobs_by_name("digests")  # the job is on
            refused = await ask(fake_api, group, bob, "/digest daily 08:00")
            assert refused == (
                "Désolé, seuls les administrateurs de ce groupe peuvent publier ou régler son "
                "résumé."
            )
            assert (await ask(fake_api, group, bob, "/digest")).startswith("Désolé")
            bad_time = await ask(fake_api, group, ann, "/digest daily 25:00")
            assert bad_time.startswith("I can't read 25:00 as a time of day")
            bad_zone = await ask(fake_api, group, ann, "/digest daily 08:00 Mars/Olympus_Mons")
            assert bad_zone.startswith("I don't know the time zone Mars/Olympus_Mons")
            assert (await ask(fake_api, group, ann, "/digest daily")).startswith("/digest posts")
            assert state_of(running).daily_digests() == []

            await ask(fake_api, group, ann, f"/subscribe {TOPIC}")
            set_ = await ask(fake_api, group, ann, "/digest@NewsTestBot daily 8:00 europe/paris")
            assert set_.startswith("Daily digest: every day at 08:00 (Europe/Paris), from ")

            assert await daily_round(running, at(0, 7, 59)) == 0
            assert await daily_round(running, at(0, 8, 0)) == 1
            (posted,) = digests()  # the last 24 hours: the story, and what earlier tests added
            assert FIRST_ANY.match(posted.text)
            assert {q.split(",")[0] for q in quotes([posted])} >= {
                r["text"].split(",")[0] for r in ICELAND
            }
            assert posted.reply_to is None
            assert await daily_round(running, at(0, 8, 30)) == 0
            assert await daily_round(running, at(0, 23, 59)) == 0

    async def after_restart() -> None:
        async with running_bot(fake_api, engine, **NO_ROUNDS) as running:
            assert await daily_round(running, at(0, 9, 0)) == 0  # that day had its digest
            status = await ask(fake_api, group, bob, "/digest status")  # anyone may ask
            assert status.startswith("Résumé quotidien : chaque jour à 08:00 (Europe/Paris).")
            assert "Dernier résumé : " in status
            # The next day has nothing new: claimed, not posted.
            assert await daily_round(running, at(1, 8, 0)) == 0
            await asyncio.to_thread(engine.add_articles, [article_from_record(CRATER)])
            assert await daily_round(running, at(2, 8, 5)) == 1
            newest = digests()[-1]
            assert newest.text.startswith("📰 Digest: 1 new story on this chat's topics since")
            assert quotes([newest])[0].startswith("Volcanologists flew drones over the crater")
            assert await daily_round(running, at(2, 8, 6)) == 0
            off = await ask(fake_api, group, ann, "/digest off")
            assert off.startswith("Daily digest stopped.")
            assert await daily_round(running, at(3, 8, 0)) == 0

    asyncio.run(first_run())
    asyncio.run(after_restart())
    assert len(digests()) == 2


VOLCANOES = [
    ("Etna", "Sicily", "Catania"),
    ("Stromboli", "the Aeolian Islands", "Milazzo"),
    ("Fuego", "Guatemala", "Antigua"),
    ("Merapi", "Java", "Yogyakarta"),
    ("Kilauea", "Hawaii", "Hilo"),
    ("Popocatepetl", "Mexico", "Puebla"),
    ("Sakurajima", "Kyushu", "Kagoshima"),
    ("Piton de la Fournaise", "Reunion", "Saint-Pierre"),
]


VOLCANO_TOPIC = "volcanoes erupting and covering towns in ash"


def long_eruption(n: int, volcano: str, region: str, town: str) -> dict[str, Any]:
    """An eruption report whose lead is one long sentence (months apart: separate stories)."""
    lead = (
        f"The {volcano} volcano in {region} erupted again on Monday night, sending fountains "
        f"of lava hundreds of metres into the air, a column of ash and gas several kilometres "
        f"high over the slopes, rivers of molten rock towards the valleys below and a fine "
        f"grey dust over the streets, cars and rooftops of {town}, where the airport closed "
        f"its runway, schools kept children at home, farmers covered their crops and the "
        f"civil protection agency told residents of the nearest villages to stay indoors with "
        f"their windows shut until the wind turned, while volcanologists flew drones over the "
        f"crater to measure how fast the lava was advancing, and hotels in the region counted "
        f"the cancellations of tourists who had come to see the mountain, the beaches and the "
        f"old town, as the regional government promised help to the families whose houses and "
        f"fields had been damaged by the falling stones and the heavy ash"
    )
    return _record(
        f"eruption-{n}",
        f"{volcano} erupts, covering {town} in ash",
        f"202{n % 5}-{n + 1:02d}-15",
        f"{lead}.\n\nScientists said the eruption could last for weeks.",
    )


def test_a_long_digest_is_split_between_stories_within_telegrams_limit(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    eva = fake_api.user("Eva")
    chat = fake_api.private_chat(eva)
    reports = [long_eruption(n, *names) for n, names in enumerate(VOLCANOES)]

    async def scenario() -> None:
        async with running_bot(fake_api, engine, **NO_ROUNDS):
            # Each report clears the small-index similarity (0.835) for this topic by 0.027 or
            # more on every backend: this test is about splitting, not the threshold.
            await ask(fake_api, chat, eva, f"/subscribe {VOLCANO_TOPIC}")
            await ask(fake_api, chat, eva, "/digest")  # the stories indexed so far
            await asyncio.to_thread(engine.add_articles, [article_from_record(r) for r in reports])
            asked = fake_api.user_says(chat, eva, "/digest")
            # Over 4,096 units in all: split between stories (the fake refuses longer ones).
            digest = await fake_api.wait_for_async(
                lambda: (
                    (found := replies_to(fake_api, chat, asked))
                    and found[-1].text.endswith(NO_DAILY)
                    and found
                ),
                20.0,
                "the whole digest",
            )
            assert len(digest) >= 2
            assert digest[0].text.startswith("📰 Digest: 8 new stories")
            said = quotes(digest)
            assert len(said) == 8
            assert all(len(q) > 800 and any(q in r["text"] for r in reports) for q in said)
            numbers = [int(line.split(".")[0]) for m in digest for line in m.text.split("\n")
                       if line[:1].isdigit()]  # fmt: skip
            assert numbers == list(range(1, 9))
            assert all(m.text.count("🔖") <= 1 for m in digest)

    asyncio.run(scenario())


def test_a_daily_digest_a_chat_cannot_receive_pauses_it_and_keeps_its_stories(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    zoe = fake_api.user("Zoe")
    chat = fake_api.private_chat(zoe)
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    eight = datetime.combine(tomorrow, datetime.min.time(), UTC).replace(hour=8)

    async def scenario() -> None:
        async with running_bot(fake_api, engine, **NO_ROUNDS) as running:
            state = state_of(running)
            await ask(fake_api, chat, zoe, f"/subscribe {TOPIC}")
            await ask(fake_api, chat, zoe, "/digest daily 08:00")
            # Telegram refuses the send (as when the user blocked the bot unseen).
            blocked = ApiError(403, "Forbidden: bot was blocked by the user")
            fake_api.fail_sends_to(chat, blocked)
            assert await daily_round(running, eight) == 0
            assert sends_to(fake_api, chat) == 3  # 2 replies, then the refused digest
            assert all(s.paused for s in state.subscriptions(chat["id"]))
            assert state.digest_schedule(chat["id"]).last_at is None  # type: ignore[union-attr]
            # Subscribing again resumes the chat: the next day's digest has the stories the
            # refused one had.
            await ask(fake_api, chat, zoe, f"/subscribe {TOPIC}")
            assert await daily_round(running, eight + timedelta(days=1)) == 1
            (digest,) = [m for m in fake_api.sent_messages(chat) if m.text.startswith("📰")]
            assert FIRST_ANY.match(digest.text) and len(quotes([digest])) >= 5

    asyncio.run(scenario())


def sends_to(fake: FakeBotAPI, chat: dict[str, Any]) -> int:
    """sendMessage requests for `chat`, refused ones included."""
    return sum(str(c.params.get("chat_id")) == str(chat["id"]) for c in fake.calls("sendMessage"))


AIRPORT = _record(
    "iceland-airport",
    "Keflavik airport stays open despite the eruption",
    "2024-07-10",
    "Keflavik international airport remained open on Wednesday as lava flowed from the "
    "volcanic eruption near Grindavik, and flights to Reykjavik ran on time, Isavia said.",
)
BLUE_LAGOON = _record(
    "iceland-lagoon",
    "The Blue Lagoon closes as the eruption nears",
    "2024-07-11",
    "The Blue Lagoon spa near Grindavik closed its doors on Thursday and sent guests away, "
    "as the volcanic eruption on the Reykjanes peninsula sent lava towards the resort.",
)


def test_a_story_indexed_while_a_digest_is_composed_waits_for_the_next_one(
    engine: Engine,
) -> None:
    # A digest covers the stories indexed until it was asked for (`until`), and the next one
    # starts there: a story indexed in between is in the next digest only, not in both.
    subscription = Subscription(1, 1, "private", TOPIC, False)
    started = time.time()
    engine.add_articles([article_from_record(AIRPORT)])
    asked = time.time()
    engine.add_articles([article_from_record(BLUE_LAGOON)])  # while that digest is composed

    def urls(since: float, until: float) -> list[str | None]:
        items, _ = compose_digest(
            engine.store, engine.embedder, engine.settings, [subscription], since, until
        )
        return [item.citation.url for item in items]

    assert urls(started, asked) == [AIRPORT["url"]]
    assert urls(asked, time.time()) == [BLUE_LAGOON["url"]]


def test_a_digest_with_more_stories_than_it_shows_says_how_many_there_were(
    fake_api: FakeBotAPI, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The window moves past every story it covers, shown or not: the reader is told that
    # only the best were shown (at most MAX_STORIES; 3 here, for the 5+ of the topic).
    monkeypatch.setattr(digest, "MAX_STORIES", 3)
    kim, marc = fake_api.user("Kim"), fake_api.user("Marc", language_code="fr")
    english, french_chat = fake_api.private_chat(kim), fake_api.private_chat(marc)

    async def scenario() -> None:
        async with running_bot(fake_api, engine, **NO_ROUNDS):
            await ask(fake_api, english, kim, f"/subscribe {TOPIC}")
            await ask(fake_api, french_chat, marc, f"/subscribe {TOPIC}")
            asked = fake_api.user_says(english, kim, "/digest")
            shown = await wait_for_replies(fake_api, english, asked)
            header = re.match(
                r"📰 Digest: (\d+) stories on this chat's topics in the last 24 hours \(this "
                r"chat's first digest\)\. Here are the best 3\.",
                shown[0].text,
            )
            assert header is not None and int(header.group(1)) >= 5
            assert len(quotes(shown)) == 3
            french = await ask(fake_api, french_chat, marc, "/digest")
            assert re.match(r"📰 Résumé : \d+ histoires .*\. Voici les 3 meilleures\.", french)

    asyncio.run(scenario())


def test_a_daily_digest_set_in_a_chat_without_topics_says_it_needs_one(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    # A daily digest of no topic is never posted: the chat is told at once, not left waiting.
    lea, luc = fake_api.user("Lea"), fake_api.user("Luc", language_code="fr")
    english, french = fake_api.private_chat(lea), fake_api.private_chat(luc)

    async def scenario() -> None:
        async with running_bot(fake_api, engine, **NO_ROUNDS):
            set_en = await ask(fake_api, english, lea, "/digest daily 08:00")
            assert set_en.startswith("Daily digest: every day at 08:00 (UTC)")
            assert set_en.endswith(
                "I will post it once this chat follows a topic: /subscribe floods in Europe"
            )
            set_fr = await ask(fake_api, french, luc, "/digest daily 08:00")
            assert set_fr.endswith(
                "Je le publierai dès que ce chat suivra un sujet : /subscribe inondations en Europe"
            )
            await ask(fake_api, english, lea, f"/subscribe {TOPIC}")
            again = await ask(fake_api, english, lea, "/digest daily 09:00")
            assert "/subscribe" not in again

    asyncio.run(scenario())


GUESTHOUSE = _record(
    "iceland-guesthouse",
    "Guesthouses near Grindavik empty as the eruption goes on",
    "2024-08-05",
    "Guesthouses around Grindavik stood empty in August as the volcanic eruption on the "
    "Reykjanes peninsula kept tourists away, Iceland's tourist board said on Monday.",
)
ROAD = _record(
    "iceland-road",
    "Lava cuts the road to Grindavik again",
    "2024-08-07",
    "Lava from the volcanic eruption in south-west Iceland crossed the main road to Grindavik "
    "on Wednesday for the third time, and the civil protection agency closed it.",
)


def test_an_article_stamped_before_a_digest_but_written_after_it_is_in_the_next_one(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A write stamps its articles' index time before it commits. A digest read in between
    # does not see the article; if it ended at the clock, the next digest (starting there)
    # would skip the article's earlier time too, and no digest would ever tell it. It ends
    # at the index time of the last story it read instead.
    subscription = Subscription(1, 1, "private", TOPIC, False)
    started = time.time()
    engine.add_articles([article_from_record(GUESTHOUSE)])
    (guesthouse_at,) = engine.store.stories_added_since(started).values()
    first_read = time.time()

    def digest_urls(last_at: float | None) -> tuple[list[str], float]:
        schedule = None
        if last_at is not None:
            schedule = DigestSchedule(1, "private", None, "UTC", "en", last_at, None)
        messages, end, _ = asyncio.run(
            digest.digest_messages(engine, engine.settings, [subscription], schedule, "en")
        )
        return re.findall(r'href="([^"]+)"', "\n".join(messages)), end

    first, end = digest_urls(started)
    assert GUESTHOUSE["url"] in first and end == guesthouse_at
    # The next write was stamped after the guesthouse's and before that digest read, and
    # committed after it.
    stamp = (guesthouse_at + first_read) / 2
    with monkeypatch.context() as patched:
        patched.setattr(time, "time", lambda: stamp)
        engine.add_articles([article_from_record(ROAD)])
    second, _ = digest_urls(end)
    assert ROAD["url"] in second and GUESTHOUSE["url"] not in second
