"""Admin commands for sources: /feeds (each feed's state and last error), /addfeed <url>
(checked, stored, then polled once in the background), /ingest <url> (one article page)
and /remove <url or id> (take an article out of the index).
Non-admins are refused and the attempt logged, as in bot/admin.py."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from telegram import Message, Update
from telegram.ext import ContextTypes

from bot.admin import admin_message
from bot.handlers import (
    command_argument,
    engine_of,
    send_replies,
    settings_of,
    state_of,
    while_typing,
)
from bot.poll import PageError, configured_sources, ingest_url, poll_feeds
from bot.render import pack_blocks
from bot.rounds import round_lock
from bot.state import FeedRecord
from bot.texts import language_of, say
from index.corpus import RebuildInProgress
from index.feeds import FeedSource
from index.fetch import FetchError, check_url

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 500


async def list_feeds(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/feeds`: every feed (settings and /addfeed), when it was polled, what it gave, and
    its last error."""
    message = await admin_message(update, context)
    if message is None:
        return
    lang = language_of(update.effective_user)
    state, settings = state_of(context), settings_of(context)
    # NEWSBOT_FEEDS show up before their first poll
    await asyncio.to_thread(configured_sources, settings, state)
    records = await asyncio.to_thread(state.feeds)
    if not records:
        await send_replies(context, message, [say(lang, "no_feeds")])
        return
    blocks: list[str] = [say(lang, "feeds_header", count=len(records))]
    blocks += [_feed_block(n, record, lang) for n, record in enumerate(records, 1)]
    await send_replies(context, message, pack_blocks(blocks))


def _feed_block(n: int, record: FeedRecord, lang: str) -> str:
    polled = (
        datetime.fromtimestamp(record.last_polled, UTC).strftime("%Y-%m-%d %H:%M UTC")
        if record.last_polled
        else say(lang, "never")
    )
    text: str = say(
        lang,
        "feed_entry",
        n=n,
        url=record.url,
        source=record.source or "—",
        polled=polled,
        articles=record.articles,
    )
    if record.last_error:
        text += "\n" + say(lang, "feed_error", error=record.last_error[:MAX_ERROR_CHARS])
    return text


async def _admin_request(
    update: Update, context: ContextTypes.DEFAULT_TYPE, usage: str
) -> tuple[Message, str, str] | None:
    """An admin's command with its argument: (message, language, argument); None, with the
    refusal or the `usage` text sent, when it is not an admin's or has no argument."""
    message = await admin_message(update, context)
    if message is None:
        return None
    lang = language_of(update.effective_user)
    argument = command_argument(message)
    if not argument:
        await send_replies(context, message, [say(lang, usage)])
        return None
    return message, lang, argument


async def add_feed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/addfeed <url>`: refuse what cannot be fetched (private addresses unless allowed),
    store the feed, then poll it once in the background and say what it gave."""
    request = await _admin_request(update, context, "addfeed_usage")
    if request is None:
        return
    message, lang, url = request
    settings = settings_of(context)
    try:
        source = FeedSource(url)
        await asyncio.to_thread(check_url, source.url, allow_private=settings.allow_private_feeds)
    except (ValueError, FetchError) as exc:
        await send_replies(context, message, [say(lang, "addfeed_refused", url=url, error=exc)])
        return
    user = update.effective_user
    added_by = user.id if user else None
    if not await asyncio.to_thread(state_of(context).add_feed, source.url, None, None, added_by):
        await send_replies(context, message, [say(lang, "addfeed_known", url=source.url)])
        return
    log.info("feed %s added by user %s", source.url, user.id if user else None)
    (progress,) = await send_replies(
        context, message, [say(lang, "addfeed_polling", url=source.url)]
    )
    # Not awaited: the admin's chat stays free while the feed and its pages are fetched.
    context.application.create_task(_first_poll(context, progress, source.url, lang), update=update)


async def _first_poll(
    context: ContextTypes.DEFAULT_TYPE, progress: Message, url: str, lang: str
) -> None:
    engine, state, settings = engine_of(context), state_of(context), settings_of(context)
    try:
        async with round_lock(context):  # never two polls writing at once
            report = await asyncio.to_thread(poll_feeds, engine, state, settings, [url])
    except Exception as exc:
        log.exception("first poll of feed %s failed", url)
        text = say(lang, "addfeed_failed", url=url, error=type(exc).__name__)
    else:
        error = report.failed.get(url)
        if error:
            text = say(lang, "addfeed_failed", url=url, error=error)
        else:
            text = say(lang, "addfeed_done", url=url, count=report.ingest.added)
    await progress.edit_text(text)


async def ingest_page(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/ingest <url>`: fetch one article page, index it, and say what it was."""
    request = await _admin_request(update, context, "ingest_usage")
    if request is None:
        return
    message, lang, url = request
    engine, settings = engine_of(context), settings_of(context)
    try:
        article, report = await while_typing(
            context, message, asyncio.to_thread(ingest_url, engine, settings, url)
        )
    except PageError as exc:
        await send_replies(context, message, [say(lang, "ingest_failed", error=exc)])
        return
    log.info("page %s ingested: %s", url, report)
    if report.added or report.updated:
        text = say(
            lang,
            "ingested",
            title=article.title,
            source=article.source or "—",
            date=article.date or "—",
        )
    else:
        text = say(lang, "ingest_unchanged", title=article.title)
    await send_replies(context, message, [text])


async def remove_article(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/remove <link or id>`: take an article out of the index (a retraction, a mistake)."""
    request = await _admin_request(update, context, "remove_usage")
    if request is None:
        return
    message, lang, ref = request
    # After any running reindex or poll: a rebuild in progress would bring the article back.
    try:
        async with round_lock(context):
            article = await while_typing(
                context, message, asyncio.to_thread(engine_of(context).remove, ref)
            )
    except RebuildInProgress:  # `newsbot reindex` runs beside the bot
        await send_replies(context, message, [say(lang, "reindex_busy")])
        return
    if article is None:
        await send_replies(context, message, [say(lang, "remove_unknown", ref=ref)])
        return
    user = update.effective_user
    log.info("article %s removed by user %s", article.id, user.id if user else None)
    text = say(
        lang, "removed", title=article.title, source=article.source or "—", date=article.date or "—"
    )
    await send_replies(context, message, [text])
