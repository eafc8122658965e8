"""The bot's state, one suite for both backends: a SQLite file and a real PostgreSQL.

Every test runs twice (`backend` is sqlite or postgres); two State objects on one store
stand for two bot processes (replicas) sharing it.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from bot.config import Settings
from bot.state import SqliteState, State, open_state
from bot.state.postgres import MIGRATIONS as postgres_migrations
from bot.state.postgres import DatabaseUnavailable
from bot.state.sqlite import MIGRATIONS as sqlite_migrations
from index.store_base import StoreError
from tests.replica import claim_in_step

OLD_GROUP = -4012345678  # a basic group's id …
SUPERGROUP = -1004012345678  # … and the supergroup it became: past 32 bits

OpenState = Callable[[], State]


@pytest.fixture
def state(open_states: OpenState) -> State:
    return open_states()


def test_the_setting_picks_the_backend(backend_settings: Settings, state: State) -> None:
    expected = "SqliteState" if backend_settings.database_url is None else "PostgresState"
    assert type(state).__name__ == expected
    assert backend_settings.state_path.exists() == (backend_settings.database_url is None)


def test_a_story_is_claimed_once_per_chat_also_after_a_restart(open_states: OpenState) -> None:
    state = open_states()
    before = time.time()
    assert state.claim_alert(SUPERGROUP, "story-1", "article-1", 7, 0.91)
    assert not state.claim_alert(SUPERGROUP, "story-1", "article-2", 8, 0.95)
    assert state.claim_alert(SUPERGROUP, "story-2", "article-3", 7, 0.88)
    assert state.claim_alert(42, "story-1", "article-1", 9, 0.90)
    state.mark_delivered(SUPERGROUP, "story-1")

    (first, second) = state.alerts(SUPERGROUP)
    assert (first.story_id, first.article_id, first.subscription_id) == ("story-1", "article-1", 7)
    assert first.score == pytest.approx(0.91) and first.delivered and not second.delivered
    assert before <= first.sent_at <= time.time()  # seconds, not rounded to minutes
    assert [(a.chat_id, a.story_id) for a in state.alerts()] == [
        (SUPERGROUP, "story-1"),
        (SUPERGROUP, "story-2"),
        (42, "story-1"),
    ]
    state.close()

    restarted = open_states()
    assert not restarted.claim_alert(SUPERGROUP, "story-1", "article-1", 7, 0.91)
    assert restarted.claim_alert(SUPERGROUP, "story-3", "article-4", 7, 0.90)
    assert len(restarted.alerts()) == 4


def test_two_replicas_racing_claim_each_story_once_per_chat(open_states: OpenState) -> None:
    """Two bot processes run the same alert round at the same moment: they try each
    (chat, story) at once, in step; exactly one of them claims it, and neither fails."""
    replicas = [open_states(), open_states()]
    work = [(chat, f"story-{s}") for chat in (SUPERGROUP, 42, 43) for s in range(30)]
    claimed: list[Counter[tuple[int, str]]] = [Counter(), Counter()]
    errors: list[BaseException] = []
    in_step = threading.Barrier(2, timeout=30)

    def alert_round(n: int) -> None:
        try:
            for chat, story in work:
                in_step.wait()
                if replicas[n].claim_alert(chat, story, f"a-{story}-{n}", n, 0.9):
                    claimed[n][chat, story] += 1
        except BaseException as exc:
            errors.append(exc)
            in_step.abort()

    threads = [threading.Thread(target=alert_round, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    both = claimed[0] + claimed[1]
    assert set(both) == set(work) and set(both.values()) == {1}
    sent = replicas[1].alerts()
    assert len(sent) == len(work)
    # Each row is the winner's: the loser's claim wrote nothing.
    assert all(claimed[a.subscription_id or 0][a.chat_id, a.story_id] for a in sent)


def test_two_replica_processes_claim_each_story_once_per_chat(
    backend_settings: Settings, open_states: OpenState
) -> None:
    """The same race between two bot processes (each its own connections and interpreter)."""
    open_states().close()  # the schema, created once before the race
    url = backend_settings.database_url
    where = url.get_secret_value() if url else str(backend_settings.state_path)
    work = [(chat, f"story-{s}") for chat in (SUPERGROUP, 42) for s in range(20)]
    spawn = multiprocessing.get_context("spawn")
    in_step, won = spawn.Barrier(2, timeout=60), spawn.Queue()
    replicas = [
        spawn.Process(target=claim_in_step, args=(where, n, work, in_step, won)) for n in (0, 1)
    ]
    for replica in replicas:
        replica.start()
    results = dict(won.get(timeout=120) for _ in replicas)
    for replica in replicas:
        replica.join(30)
        assert replica.exitcode == 0
    claims = Counter(map(tuple, results[0] + results[1]))
    assert set(claims) == set(work) and set(claims.values()) == {1}
    rows = open_states().alerts()
    assert len(rows) == len(work)
    assert all((a.chat_id, a.story_id) in map(tuple, results[a.subscription_id or 0]) for a in rows)


def test_subscriptions_by_topic_number_and_all(state: State) -> None:
    assert state.subscribe(SUPERGROUP, "supergroup", "Étape du Tour", 5)
    assert state.subscribe(SUPERGROUP, "supergroup", "floods", 5)
    assert state.subscribe(SUPERGROUP, "supergroup", "chess", None)
    assert not state.subscribe(SUPERGROUP, "supergroup", "floods", 6)
    assert state.subscribe(42, "private", "floods", 42)
    listed = state.subscriptions(SUPERGROUP)
    assert [s.topic for s in listed] == ["Étape du Tour", "floods", "chess"]
    assert all(s.chat_id == SUPERGROUP and s.chat_type == "supergroup" for s in listed)
    assert all(not s.paused and s.created_at > 0 for s in listed)

    assert state.unsubscribe(SUPERGROUP, "2") == 1  # floods, by its number in the list
    assert state.unsubscribe(SUPERGROUP, "3") == 0 and state.unsubscribe(SUPERGROUP, "0") == 0
    assert state.unsubscribe(SUPERGROUP, "ÉTAPE DU TOUR") == 1  # case folded, accents too
    assert state.unsubscribe(SUPERGROUP, "floods") == 0
    assert [s.topic for s in state.subscriptions(SUPERGROUP)] == ["chess"]
    assert [(s.chat_id, s.topic) for s in state.subscriptions()] == [
        (SUPERGROUP, "chess"),
        (42, "floods"),
    ]
    assert state.unsubscribe(42, None) == 1 and state.unsubscribe(42, None) == 0
    assert [s.chat_id for s in state.subscriptions()] == [SUPERGROUP]


def test_a_paused_chat_is_resumed_by_resume_or_a_new_subscription(state: State) -> None:
    state.subscribe(42, "private", "floods", 42)
    state.subscribe(43, "private", "floods", 43)
    state.pause_chat(42)
    assert [(s.chat_id, s.paused) for s in state.subscriptions()] == [(42, True), (43, False)]
    state.resume_chat(42)
    assert not any(s.paused for s in state.subscriptions())
    state.pause_chat(42)
    assert not state.subscribe(42, "private", "floods", 42)  # already followed, but …
    assert not state.subscriptions(42)[0].paused  # … the chat is resumed


def test_a_group_migrated_to_a_supergroup_takes_its_topics_and_alerts(state: State) -> None:
    for topic in ("floods", "chess"):
        state.subscribe(OLD_GROUP, "group", topic, 1)
    state.subscribe(SUPERGROUP, "supergroup", "chess", 2)  # the new chat already has one
    state.claim_alert(OLD_GROUP, "story-1", "a-1", 1, 0.9)
    state.claim_alert(OLD_GROUP, "story-2", "a-2", 1, 0.9)
    state.claim_alert(SUPERGROUP, "story-2", "a-2-new", 2, 0.8)

    assert state.migrate_chat(OLD_GROUP, SUPERGROUP) == 1  # floods; chess was there
    assert state.subscriptions(OLD_GROUP) == [] and state.alerts(OLD_GROUP) == []
    moved = state.subscriptions(SUPERGROUP)
    assert sorted(s.topic for s in moved) == ["chess", "floods"]
    assert {s.chat_type for s in moved} == {"supergroup"}
    assert sorted((a.story_id, a.article_id) for a in state.alerts(SUPERGROUP)) == [
        ("story-1", "a-1"),
        ("story-2", "a-2-new"),
    ]
    assert not state.claim_alert(SUPERGROUP, "story-1", "a-1", 1, 0.9)  # not sent twice
    assert state.migrate_chat(OLD_GROUP, SUPERGROUP) == 0  # again: harmless
    assert len(state.subscriptions(SUPERGROUP)) == 2 and len(state.alerts()) == 2


def test_feeds_and_their_polls(state: State) -> None:
    assert state.add_feed("https://wire.test/a.rss", "Wire", "fr", 4242)
    assert not state.add_feed("https://wire.test/a.rss", "Other", None, None)
    assert state.add_feed("https://wire.test/b.rss", None, None, None)
    (a, b) = state.feeds()
    assert (a.url, a.source, a.lang, a.articles) == ("https://wire.test/a.rss", "Wire", "fr", 0)
    assert (a.etag, a.last_polled, a.last_ok, a.last_error) == (None, None, None, None)
    assert b.url == "https://wire.test/b.rss"

    state.record_poll(a.url, etag=None, last_modified=None, error="HTTP 503", new_articles=0)
    failed = state.feeds()[0]
    assert failed.last_error == "HTTP 503" and failed.last_polled and failed.last_ok is None
    state.record_poll(a.url, etag='"v2"', last_modified="Mon", error=None, new_articles=3)
    ok = state.feeds()[0]
    assert (ok.etag, ok.last_modified, ok.last_error, ok.articles) == ('"v2"', "Mon", None, 3)
    assert ok.last_ok == ok.last_polled and abs(ok.last_ok - time.time()) < 60
    state.record_poll(a.url, etag='"v2"', last_modified="Mon", error="timeout", new_articles=2)
    again = state.feeds()[0]
    assert again.last_ok == ok.last_ok and again.last_error == "timeout" and again.articles == 5
    state.record_poll("https://wire.test/unknown", etag=None, last_modified=None, error=None,
                      new_articles=1)  # fmt: skip
    assert len(state.feeds()) == 2 and state.feeds()[1].last_polled is None


def test_watermarks_are_kept(open_states: OpenState) -> None:
    state = open_states()
    assert state.get("alerts_watermark") is None and state.get("x", "default") == "default"
    state.put("alerts_watermark", "1700000000.5")
    state.put("alerts_watermark", "1700000001.25")
    assert open_states().get("alerts_watermark") == "1700000001.25"


def test_a_state_of_a_newer_schema_is_refused(
    backend_settings: Settings, open_states: OpenState
) -> None:
    open_states().close()
    url = backend_settings.database_url
    if url is None:
        db = sqlite3.connect(backend_settings.state_path)
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(sqlite_migrations)
        db.execute("PRAGMA user_version = 99")
        db.close()
    else:
        with psycopg.connect(url.get_secret_value(), autocommit=True) as pg:
            version = pg.execute("SELECT version FROM schema_versions WHERE component = 'state'")
            assert version.fetchone() == (len(postgres_migrations),)
            pg.execute("UPDATE schema_versions SET version = 99 WHERE component = 'state'")
    with pytest.raises(StoreError, match="schema version 99, newer than this newsbot knows"):
        open_states()


def test_a_state_file_from_before_schema_versions_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('alerts_watermark', '12.5');"
    )
    old.close()
    state = SqliteState(path)
    assert state.get("alerts_watermark") == "12.5"
    assert state.subscribe(1, "private", "floods", 1)
    state.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == len(
        sqlite_migrations
    )


def test_an_unreachable_database_is_one_sentence_without_the_password(
    database_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(database_url) as probe:  # a port nobody listens on
        port = probe.info.port
    dead = f"postgresql://newsbot:s3cret@127.0.0.1:{port + 1}/news"
    settings = Settings(_env_file=None, data_dir=tmp_path, database_url=dead)
    with pytest.raises(DatabaseUnavailable) as caught:
        open_state(settings)
    message = str(caught.value)
    assert message.startswith("cannot connect to the database at newsbot@127.0.0.1:")
    assert "s3cret" not in message and "NEWSBOT_DATABASE_URL" in message


def test_the_database_url_must_be_postgresql() -> None:
    with pytest.raises(ValueError, match="must start with postgresql://"):
        Settings(_env_file=None, database_url="mysql://db/news")
    assert Settings(_env_file=None, database_url=" ").database_url is None


def test_connections_the_server_dropped_are_replaced(database_url: str, tmp_path: Path) -> None:
    """A database restart or failover drops every connection: the next operation opens a
    new one instead of failing."""
    state = open_state(Settings(_env_file=None, data_dir=tmp_path, database_url=database_url))
    try:
        state.put("k", "1")
        with psycopg.connect(database_url, autocommit=True) as admin:
            dropped = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'newsbot'"
            ).fetchone()
        assert dropped is not None and dropped[0] >= 1
        assert state.get("k") == "1"
        state.put("k", "2")
        assert state.get("k") == "2"
    finally:
        state.close()


def test_a_daily_digest_is_claimed_once_a_day_also_by_replicas(open_states: OpenState) -> None:
    first, second = open_states(), open_states()
    assert first.digest_schedule(SUPERGROUP) is None
    assert not first.claim_daily_digest(SUPERGROUP, "2026-12-03")  # no daily digest set
    first.set_daily_digest(SUPERGROUP, "supergroup", "08:00", "Europe/Paris", "fr", None)
    assert first.claim_daily_digest(SUPERGROUP, "2026-12-03")
    assert not second.claim_daily_digest(SUPERGROUP, "2026-12-03")
    assert second.claim_daily_digest(SUPERGROUP, "2026-12-04")
    schedule = open_states().digest_schedule(SUPERGROUP)  # a restart
    assert schedule is not None
    assert (schedule.daily_at, schedule.time_zone, schedule.lang) == ("08:00", "Europe/Paris", "fr")
    assert (schedule.last_day, schedule.last_at) == ("2026-12-04", None)
    # A new time keeps the day already posted, unless it says that today is done.
    first.set_daily_digest(SUPERGROUP, "supergroup", "21:30", "UTC", "en", None)
    assert second.digest_schedule(SUPERGROUP).last_day == "2026-12-04"  # type: ignore[union-attr]
    first.set_daily_digest(SUPERGROUP, "supergroup", "07:15", "UTC", None, "2026-12-05")
    assert not second.claim_daily_digest(SUPERGROUP, "2026-12-05")
    assert [s.chat_id for s in second.daily_digests()] == [SUPERGROUP]
    assert first.stop_daily_digest(SUPERGROUP) and not first.stop_daily_digest(SUPERGROUP)
    assert second.daily_digests() == []
    assert not second.claim_daily_digest(SUPERGROUP, "2026-12-06")


def test_the_last_digest_is_recorded_and_moves_with_a_migrated_group(state: State) -> None:
    state.record_digest(OLD_GROUP, "group", 1700000000.25)
    state.record_digest(42, "private", 1700000100.5)
    state.set_daily_digest(OLD_GROUP, "group", "08:00", "UTC", "en", None)
    state.record_digest(OLD_GROUP, "group", 1700000200.75)
    state.subscribe(OLD_GROUP, "group", "floods", 1)
    state.migrate_chat(OLD_GROUP, SUPERGROUP)
    assert state.digest_schedule(OLD_GROUP) is None
    moved = state.digest_schedule(SUPERGROUP)
    assert moved is not None and moved.chat_type == "supergroup"
    assert (moved.last_at, moved.daily_at) == (1700000200.75, "08:00")
    assert state.digest_schedule(42).last_at == 1700000100.5  # type: ignore[union-attr]
