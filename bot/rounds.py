"""The bot's recurring work, one round every `poll_interval_minutes`: poll the feeds, then
alert subscribed chats about the stories indexed since the last round.

Alerts are found in the store, not in what the poll returned, so articles that
`newsbot poll` or `newsbot ingest` add from another process are alerted too. The watermark
moves only after delivery: a round that fails is done again, and the claims in the state
database keep every alert to once per chat.

Replicas sharing one state all schedule the round; whichever takes the job (bot/jobs.py)
runs it, the others skip it. A replica killed in a round holds the job until its lease runs
out; the next round starts again from the watermark and takes over its undelivered claims.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

from telegram import Bot
from telegram.ext import Application, ContextTypes, Job

from bot.alerts import (
    WATERMARK,
    AlertMatch,
    AlertThresholds,
    DeliveryReport,
    deliver_alerts,
    matching_subscriptions,
    pending_stories,
)
from bot.config import Settings
from bot.engine import Engine
from bot.handlers import engine_of, settings_of, state_of
from bot.jobs import NEWS, HeldJob, holding_job
from bot.poll import poll_feeds
from bot.state import State

log = logging.getLogger(__name__)

# Key of application.bot_data: held by a round, a first poll of an added feed, a reindex.
ROUND_LOCK = "round_lock"
FIRST_ROUND_DELAY_S = 10.0


def schedule_rounds(
    application: Application[Any, Any, Any, Any, Any, Any], settings: Settings
) -> Job[Any] | None:
    """Repeat the round every `poll_interval_minutes` (0: never), the first soon after start."""
    interval = settings.poll_interval_minutes * 60
    if not interval or application.job_queue is None:
        return None
    return application.job_queue.run_repeating(
        news_round, interval=interval, first=min(FIRST_ROUND_DELAY_S, interval), name="news"
    )


def round_lock(context: ContextTypes.DEFAULT_TYPE) -> asyncio.Lock:
    return cast(asyncio.Lock, context.bot_data[ROUND_LOCK])


async def news_round(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The job: poll every feed, then alert; skipped while the previous round still runs,
    here or in another replica."""
    lock = round_lock(context)
    if lock.locked():
        log.info("the previous round (or a feed's first poll) is still running: skipping")
        return
    async with lock:
        engine, state, settings = engine_of(context), state_of(context), settings_of(context)
        async with holding_job(state, NEWS, settings.job_lease_seconds) as job:
            if job is None:
                log.debug("another replica runs this round")
                return
            if settings.feeds or len(await asyncio.to_thread(state.feeds)) > 0:
                try:
                    await asyncio.to_thread(poll_feeds, engine, state, settings)
                except Exception:
                    log.exception("the feed poll failed; alerting about what is indexed already")
            await run_alert_round(context.bot, engine, state, settings, job)


def alert_thresholds(settings: Settings) -> AlertThresholds:
    return AlertThresholds(
        z=settings.alert_z,
        min_similarity=settings.alert_min_similarity,
        small_index=settings.alert_small_index_similarity,
    )


async def run_alert_round(
    bot: Bot, engine: Engine, state: State, settings: Settings, job: HeldJob | None = None
) -> DeliveryReport:
    """Match the stories indexed since the last round against every subscription, post
    the matches, then move the watermark past those stories (not when the `job` was lost
    meanwhile: its holder now does the round again)."""

    def find() -> tuple[list[AlertMatch], float]:
        store = engine.store
        store.refresh()  # another process (`newsbot poll`) may have written
        story_ids, added_at, watermark = pending_stories(store, state)
        matches = matching_subscriptions(
            store,
            engine.embedder,
            state.subscriptions(),
            story_ids,
            alert_thresholds(settings),
            added_at=added_at,
        )
        return matches, watermark

    matches, watermark = await asyncio.to_thread(find)
    report = await deliver_alerts(bot, state, matches, job=job)
    if report.stopped or (job is not None and not job.held()):
        return report
    await asyncio.to_thread(state.put, WATERMARK, repr(watermark))
    if matches:
        log.info(
            "alerts: %d sent, %d skipped, %d failed, %d chat(s) paused",
            report.sent,
            report.skipped,
            report.failed,
            report.paused_chats,
        )
    return report


def start_watermark(state: State) -> None:
    """On the very first start, alerts begin now: an existing backlog is never alerted."""
    if state.get(WATERMARK) is None:
        restart_watermark(state)


def restart_watermark(state: State) -> None:
    """After a reindex every story looks newly indexed: skip them all."""
    state.put(WATERMARK, repr(time.time()))
