"""Feed polling end to end: a local HTTP server with real feed files, the real store."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import pytest

from bot.config import Settings
from bot.engine import Engine
from bot.poll import PageError, ingest_url, poll_feeds
from bot.state import open_state
from index.articles import Article
from index.feeds import FeedSource
from index.store import DB_NAME
from tests.feed_server import FeedServer, serve

GUARDIAN = "rss-parser-js/guardian.rss"
UOL = "rss-parser-js/uolNoticias.rss"
MALFORMED = "prof18-RSS-Parser/feed-test-malformed.xml"

PAGE = """<html lang="en"><head><title>Tidal power plant opens in Brittany</title>
<meta property="og:site_name" content="Local Wire"></head><body><article>
<h1>Tidal power plant opens in Brittany</h1>
<p>A tidal power plant on the Rance estuary in Brittany started delivering electricity on
Monday, the operator said, after three years of works on the turbines and the dam.</p>
<p>The plant is expected to cover the needs of two hundred thousand homes, according to the
regional council, which financed a third of the project.</p>
<p>Fishermen's associations said they would monitor the effect of the turbines on the
estuary's fish during the first year of operation.</p></article></body></html>"""


def rss(items: list[tuple[str, str, str, str]]) -> str:
    """A small RSS 2.0 feed: (guid, link, title, description) per item."""
    body = "".join(
        f"<item><guid>{g}</guid><link>{link}</link><title>{t}</title>"
        f"<description>{d}</description><pubDate>Mon, 02 Sep 2024 10:00:00 +0000</pubDate></item>"
        for g, link, t, d in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>Local Wire</title><link>https://wire.test/</link>{body}</channel></rss>"
    )


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with serve() as running:
        yield running


@pytest.fixture
def engine(settings: Settings, embedder) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    engine = Engine(settings, embedder=embedder)
    yield engine
    engine.close()


def _settings(settings: Settings, feeds: list[str], **extra: object) -> Settings:
    return settings.model_copy(
        update={
            "feeds": [FeedSource(url=u) for u in feeds],
            "allow_private_feeds": True,
            "fetch_pages": False,
            "fetch_timeout": 3.0,
            **extra,
        }
    )


def test_poll_ingests_the_guardian_and_reports_broken_feeds(
    server: FeedServer, settings: Settings, engine: Engine
) -> None:
    not_xml = server.add("/news.html", "<html><body><p>Hello, not a feed</p></body></html>")
    config = _settings(
        settings,
        [
            server.url(f"/feeds/{GUARDIAN}"),
            server.url(f"/feeds/{MALFORMED}"),
            not_xml,
            server.url("/missing.rss"),
        ],
    )
    state = open_state(config)
    report = poll_feeds(engine, state, config)
    assert report.feeds == 4 and report.ingest.added == 55 + 1
    assert set(report.failed) == {not_xml, server.url("/missing.rss")}
    guardian = [a for a in engine.store.all_articles() if a.source == "The Guardian"]
    assert len(guardian) == 55
    assert all(a.date and a.date.startswith(("2017-12", "2018-01")) for a in guardian)
    assert all(a.url and a.url.startswith("https://www.theguardian.com/") for a in guardian)
    records = {f.url: f for f in state.feeds()}
    assert records[not_xml].last_error and "not a feed" in records[not_xml].last_error
    assert "404" in (records[server.url("/missing.rss")].last_error or "")
    assert (records[server.url(f"/feeds/{MALFORMED}")].last_error or "").startswith("warning:")
    assert records[server.url(f"/feeds/{GUARDIAN}")].last_error is None
    assert records[server.url(f"/feeds/{GUARDIAN}")].articles == 55
    # The second model's vectors are computed with the poll, not by the first question.
    db = sqlite3.connect(config.store_dir / DB_NAME)
    waiting = db.execute(
        "SELECT count(*) FROM passages p LEFT JOIN secondary_embeddings s "
        "ON s.text_hash = p.text_hash WHERE s.vector IS NULL"
    ).fetchone()[0]
    db.close()
    assert waiting == 0 and engine.stats().passages > 55

    again = poll_feeds(engine, state, config)
    assert again.items == 0 and again.ingest.added == 0 and again.ingest.embedded == 0
    assert engine.stats().articles == 56


def test_a_republished_item_with_a_new_guid_is_not_a_new_story(
    server: FeedServer, settings: Settings, engine: Engine
) -> None:
    text = (
        "The regional council of Brittany approved on Monday a plan to rebuild the sea walls "
        "of Saint-Malo after the winter storms, at a cost of forty million euros."
    )
    first = [("guid-1", server.url("/story-1"), "Saint-Malo sea walls to be rebuilt", text)]
    feed = server.add("/wire.rss", rss(first), "application/rss+xml")
    config = _settings(settings, [feed])
    state = open_state(config)
    poll_feeds(engine, state, config)
    before = engine.store.stories_added_since(0.0)
    republished = [
        ("guid-99", server.url("/story-1-update"), "Saint-Malo walls: plan approved", text)
    ]
    server.add("/wire.rss", rss(first + republished), "application/rss+xml")
    report = poll_feeds(engine, state, config)
    assert report.ingest.added == 1  # a new article, with its own id …
    assert engine.store.stories_added_since(0.0) == before  # … but the same story


def test_a_single_page_is_ingested_by_url(
    server: FeedServer, settings: Settings, engine: Engine
) -> None:
    config = _settings(settings, [])
    url = server.add("/tidal.html", PAGE)
    article, report = ingest_url(engine, config, url)
    assert report.added == 1
    assert article.title == "Tidal power plant opens in Brittany"
    assert "two hundred thousand homes" in article.text and article.url == url
    answer = engine.ask(["Where did a tidal power plant open?"])[0]
    assert answer.answered and answer.citations[0].article_id == article.id
    assert answer.citations[0].quote in article.text
    with pytest.raises(PageError, match="could not fetch"):
        ingest_url(engine, config, server.url("/nothing-here"))
    with pytest.raises(PageError, match="refusing"):
        ingest_url(engine, settings, url)  # private addresses are refused by default


def test_retention_forgets_old_articles_and_skips_old_feed_items(
    server: FeedServer, settings: Settings, engine: Engine
) -> None:
    recent_date = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 2 * 86400))
    recent = Article(
        title="Tram line opens",
        text="The new tram line of Lyon opened on Saturday with free rides for a week.",
        source="Wire",
        date=recent_date,
    )
    undated = Article(
        title="Museum reopens",
        text="The city museum reopened after two years of works on its roof and galleries.",
        source="Wire",
    )
    engine.ingest([settings.data_dir / "articles"])  # the seed: 2023-09
    engine.add_articles([recent, undated])
    config = _settings(settings, [server.url(f"/feeds/{GUARDIAN}")], retention_days=730)
    state = open_state(config)

    report = poll_feeds(engine, state, config)
    # The Guardian's items (2017-2018) are older than two years: not even ingested.
    assert report.items == 0 and report.ingest.added == 0
    assert report.forgotten == 1  # the seed
    assert {a.title for a in engine.store.all_articles()} == {recent.title, undated.title}
    assert engine.stats().passages == engine.store.index.ntotal == 2

    # Years later, the undated article goes by the time it was first indexed.
    later = time.time() + 3 * 365 * 86400
    assert engine.forget_older_than(730, now=later) == 2
    assert engine.stats().articles == 0


def test_a_poll_that_cannot_index_its_items_fetches_them_again(
    server: FeedServer, settings: Settings, engine: Engine
) -> None:
    config = _settings(settings, [server.url(f"/feeds/{UOL}")])
    state = open_state(config)
    store = engine.store
    # A database that may not grow: SQLite's own "database or disk is full".
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")
    failed = poll_feeds(engine, state, config)
    assert failed.items > 0 and failed.index_error and "full" in failed.index_error
    assert "NOT INDEXED" in failed.summary()
    record = state.feeds()[0]
    assert record.etag is None and "not indexed" in (record.last_error or "")
    assert engine.stats().articles == 0
    store._db.execute("PRAGMA max_page_count = 1073741823")
    again = poll_feeds(engine, state, config)  # not a 304: the ETag was not saved
    assert again.not_modified == 0 and again.ingest.added == failed.items
    assert state.feeds()[0].etag and "not indexed" not in (state.feeds()[0].last_error or "")
