"""One polling round: every configured feed fetched (conditionally), new articles indexed
incrementally; and single pages ingested by URL. Blocking code: the bot runs it in a thread.

A feed that fails (malformed, huge, slow, private address, …) is recorded with its error
and the others go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field

from bot.config import Settings
from bot.engine import Engine, retention_cutoff
from bot.state import State
from index.articles import Article
from index.feeds import FeedPoll, FeedSource, FeedState, collect_feed, extract_article
from index.fetch import FetchError, fetch
from index.store_base import IngestReport, StoreError

log = logging.getLogger(__name__)


@dataclass
class PollReport:
    feeds: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    not_modified: int = 0
    items: int = 0
    ingest: IngestReport = field(default_factory=IngestReport)
    index_error: str | None = None  # the new items could not be indexed (a full disk)
    forgotten: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.feeds} feeds polled ({self.not_modified} unchanged, {len(self.failed)} "
            f"failed): {self.items} new items, {self.ingest.added} articles added, "
            f"{self.ingest.updated} updated, {self.ingest.embedded} passages embedded, "
            f"{self.forgotten} old articles forgotten in {self.seconds:.1f} s"
            + (f"; NOT INDEXED: {self.index_error}" if self.index_error else "")
        )


def configured_sources(settings: Settings, state: State) -> list[FeedSource]:
    """Feeds from settings (NEWSBOT_FEEDS) and those added with /addfeed, once each."""
    for source in settings.feeds:
        state.add_feed(source.url, source.source, source.lang, None)
    return [FeedSource(url=f.url, source=f.source, lang=f.lang) for f in state.feeds()]


def poll_feeds(
    engine: Engine, state: State, settings: Settings, urls: Collection[str] | None = None
) -> PollReport:
    """Fetch every feed (or only those in `urls`) and index what is new; returns what
    happened, feed by feed."""
    started = time.monotonic()
    report = PollReport()
    known = engine.store.article_ids()
    # Items the retention would forget are not even fetched.
    since_iso = retention_cutoff(settings.retention_days)[0] if settings.retention_days else None
    records = {f.url: f for f in state.feeds()}
    articles: list[Article] = []
    polled: list[tuple[str, FeedState | None, FeedPoll, int]] = []
    for source in configured_sources(settings, state):
        if urls is not None and source.url not in urls:
            continue
        record = records.get(source.url)
        previous = FeedState(record.etag, record.last_modified) if record else None
        poll = collect_feed(
            source,
            previous,
            fetch_pages=settings.fetch_pages,
            allow_private=settings.allow_private_feeds,
            known_ids=known,
            timeout=settings.fetch_timeout,
            published_since=since_iso,
        )
        report.feeds += 1
        fresh = [a for a in poll.articles if a.id not in known]
        if poll.error:
            log.warning("feed %s failed: %s", source.url, poll.error)
            report.failed[source.url] = poll.error
        for error in poll.errors:
            log.info("feed %s: %s", source.url, error)
        report.not_modified += poll.not_modified
        report.items += len(fresh)
        articles += fresh
        known |= {a.id for a in fresh}
        polled.append((source.url, previous, poll, len(fresh)))
    if articles:
        try:
            report.ingest = engine.add_articles(articles)
        except StoreError as exc:
            log.error("poll: %d new item(s) not indexed: %s", len(articles), exc)
            report.index_error = str(exc)
        for rejected in report.ingest.rejected:
            log.info("poll: item not indexed: %s", rejected)
    # A feed's ETag / Last-Modified are saved only once its items are indexed: a poll that
    # dies or fails before then fetches them again next time, instead of a 304.
    for url, previous, poll, count in polled:
        if report.index_error and count:
            state.record_poll(
                url,
                etag=previous.etag if previous else None,
                last_modified=previous.last_modified if previous else None,
                error=f"{count} new item(s) not indexed: {report.index_error}",
                new_articles=0,
            )
            continue
        state.record_poll(
            url,
            etag=poll.state.etag,
            last_modified=poll.state.last_modified,
            error=poll.error or _warning(poll),
            new_articles=count,
        )
    if settings.retention_days and report.index_error is None:
        report.forgotten = engine.forget_older_than(settings.retention_days)
    report.seconds = time.monotonic() - started
    log.info("poll: %s", report.summary())
    return report


def _warning(poll: FeedPoll) -> str | None:
    """What an admin's /feeds shows for a feed that worked with reservations: malformed but
    usable, or items skipped (no readable text, no title nor link…)."""
    if poll.warning:
        return f"warning: {poll.warning}"
    if poll.errors:
        more = f" (and {len(poll.errors) - 1} more)" if len(poll.errors) > 1 else ""
        return f"warning: an item was skipped: {poll.errors[0]}{more}"
    return None


class PageError(RuntimeError):
    """A page that could not be ingested; the message says why, for the user."""


def ingest_url(engine: Engine, settings: Settings, url: str) -> tuple[Article, IngestReport]:
    """Fetch one article page, extract its text and index it."""
    try:
        page = fetch(
            url, allow_private=settings.allow_private_feeds, timeout=settings.fetch_timeout
        )
    except FetchError as exc:
        raise PageError(f"could not fetch {url}: {exc}") from None
    article = extract_article(page.content, page.final_url)
    if article is None:
        raise PageError(f"no article text found at {url}")
    try:
        report = engine.add_articles([article])
    except StoreError as exc:  # a full disk: said to the admin, nothing half-written
        raise PageError(str(exc)) from None
    if report.rejected:
        raise PageError(f"{url}: {report.rejected[0].split(': ', 1)[-1]}")
    return article, report
