"""Alerts: match newly indexed stories against subscriptions and post each one once per chat.

A topic is embedded as a question; a story matches when one of its passages is at least
`threshold` similar to it (calibrated with bench/alerts.py on labelled feed items). Only
the first copy of a story is considered, and only for subscriptions older than it, so a
republished copy or a backlog never triggers an alert.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from telegram import Bot, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter, TelegramError

from bot.answer import Citation
from bot.jobs import HeldJob
from bot.render import render_citation
from bot.state import State, Subscription
from index.backend import IndexStore as Store
from index.search import QueryEncoder
from index.store_base import StoredPassage

log = logging.getLogger(__name__)

WATERMARK = "alerts.watermark"


@dataclass(frozen=True)
class AlertMatch:
    """One story to post in one chat, with the subscription and passage that matched."""

    subscription: Subscription
    passage: StoredPassage
    score: float

    @property
    def story_id(self) -> str:
        return self.passage.story_id or self.passage.article.id


# Below this many stories in the index, a topic's score distribution says little and the
# plain similarity threshold is used instead of the z-score.
MIN_BACKGROUND = 30
BACKGROUND_STORIES = 300


@dataclass(frozen=True)
class AlertThresholds:
    """A story matches a topic when its similarity is an outlier for that topic (z-score
    against recent stories) and not weak in absolute terms; on a small index, when the
    similarity alone clears `small_index`. Calibrated with bench/alerts.py."""

    z: float = 2.35
    min_similarity: float = 0.80
    small_index: float = 0.835


def topic_vectors(encoder: QueryEncoder, topics: Sequence[str]) -> np.ndarray:
    """Topics are embedded like questions (e5's "query: " side)."""
    return encoder.embed_queries(list(topics))


def topic_background(store: Store, topics: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and spread of each topic's story scores over recent stories, or None when the
    index holds too few stories for that to mean anything."""
    recent = store.recent_story_vectors(BACKGROUND_STORIES)
    if len(recent) < MIN_BACKGROUND:
        return None
    scores = np.stack([(topics @ vectors.T).max(axis=1) for vectors in recent.values()], axis=1)
    return scores.mean(axis=1), np.maximum(scores.std(axis=1), 1e-3)


def story_scores(
    store: Store, topics: np.ndarray, story_ids: Sequence[str]
) -> Iterator[tuple[str, list[StoredPassage], np.ndarray]]:
    """For each story with passages: its passages and a (topics, passages) score matrix."""
    for story_id in story_ids:
        passages, vectors = store.article_passages(story_id)
        if passages:
            yield story_id, passages, topics @ vectors.T


def matching_subscriptions(
    store: Store,
    encoder: QueryEncoder,
    subscriptions: Sequence[Subscription],
    story_ids: Sequence[str],
    thresholds: AlertThresholds | None = None,
    added_at: dict[str, float] | None = None,
) -> list[AlertMatch]:
    """For each chat, the stories that match one of its topics (best subscription per
    story). Paused subscriptions, and stories indexed before a subscription, are skipped.
    With `thresholds` None every pair is returned (for calibration)."""
    active = [s for s in subscriptions if not s.paused]
    if not active or not story_ids:
        return []
    topics = topic_vectors(encoder, [s.topic for s in active])
    background = topic_background(store, topics) if thresholds else None
    best: dict[tuple[int, str], AlertMatch] = {}
    for story_id, passages, scores in story_scores(store, topics, story_ids):
        for row, subscription in enumerate(active):
            if added_at and added_at.get(story_id, 0.0) < subscription.created_at:
                continue
            col = int(np.argmax(scores[row]))
            score = float(scores[row, col])
            if thresholds is not None:
                if background is None:
                    if score < thresholds.small_index:
                        continue
                elif (
                    score < thresholds.min_similarity
                    or (score - background[0][row]) / background[1][row] < thresholds.z
                ):
                    continue
            key = (subscription.chat_id, story_id)
            if key not in best or best[key].score < score:
                best[key] = AlertMatch(subscription, passages[col], score)
    return sorted(best.values(), key=lambda m: (m.subscription.chat_id, -m.score))


def render_alert(match: AlertMatch) -> str:
    """The alert message: the same citation block as an answer, with the matched passage."""
    article = match.passage.article
    citation = Citation(
        n=1,
        article_id=article.id,
        title=article.title,
        source=article.source,
        date=article.date,
        url=article.url,
        quote=match.passage.text,
        score=round(match.score, 4),
    )
    topic = match.subscription.topic
    header = f"🔔 <b>{html.escape(topic[:200], quote=False)}</b>\n"
    return header + render_citation(citation, limit=4096 - len(header) - 8)


@dataclass
class DeliveryReport:
    sent: int = 0
    skipped: int = 0
    paused_chats: int = 0
    failed: int = 0
    stopped: bool = False  # the job's lease may have run out: the rest is left to the next round


async def remember_alert(state: State, chat_id: int, message_id: int, match: AlertMatch) -> None:
    """Keep the alert as an answer to its topic, so that a reply to it ("how many were
    hurt?") is a follow-up within its story (bot/followup.py). The alert is out already: a
    state that fails here costs the follow-up, not the alert."""
    try:
        await asyncio.to_thread(
            state.remember_answer,
            chat_id,
            [message_id],
            match.subscription.topic,
            [match.passage.article.id],
        )
    except Exception:
        log.exception("chat %s: could not remember alert %s for follow-ups", chat_id, message_id)


async def deliver_alerts(
    bot: Bot,
    state: State,
    matches: Sequence[AlertMatch],
    max_retries: int = 5,
    job: HeldJob | None = None,
) -> DeliveryReport:
    """Post each match once: claimed in the state DB first (once per chat, across restarts
    and replicas), then sent; a chat that blocked or removed the bot has its subscriptions
    paused. In a `job`, claims are made only while its lease surely runs, and a claim left
    undelivered (this process killed) is taken over by whoever holds the job next."""
    report = DeliveryReport()
    paused: set[int] = set()
    migrated: dict[int, int] = {}  # group id -> its supergroup's, learnt while sending
    for match in matches:
        chat_id = migrated.get(match.subscription.chat_id, match.subscription.chat_id)
        if chat_id in paused:
            report.skipped += 1
            continue
        if job is not None and not job.held():
            log.warning("the %r job's lease may have run out: leaving the alerts left", job.name)
            report.stopped = True
            break
        if not await asyncio.to_thread(
            state.claim_alert,
            chat_id,
            match.story_id,
            match.passage.article.id,
            match.subscription.id,
            match.score,
            job.name if job is not None else None,
        ):
            report.skipped += 1
            continue
        for attempt in range(max_retries):
            try:
                posted = await bot.send_message(
                    chat_id,
                    render_alert(match),
                    parse_mode=ParseMode.HTML,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
                await asyncio.to_thread(state.mark_delivered, chat_id, match.story_id)
                report.sent += 1
                await remember_alert(state, chat_id, posted.message_id, match)
                break
            except Forbidden as exc:
                log.warning(
                    "chat %s blocked or removed the bot (%s): pausing its alerts",
                    chat_id,
                    exc.message,
                )
                await asyncio.to_thread(state.pause_chat, chat_id)
                paused.add(chat_id)
                report.paused_chats += 1
                break
            except ChatMigrated as exc:  # a supergroup now: move the chat, send there
                new_id = int(exc.new_chat_id)
                log.info("chat %s became supergroup %s: moving its alerts", chat_id, new_id)
                sent = await asyncio.to_thread(state.alerts, new_id)
                already = any(a.story_id == match.story_id for a in sent)
                await asyncio.to_thread(state.migrate_chat, chat_id, new_id)
                migrated[chat_id] = new_id
                chat_id = new_id
                if already:  # the supergroup had this story: nothing to send
                    report.skipped += 1
                    break
            except RetryAfter as exc:
                delay = exc.retry_after
                await asyncio.sleep(
                    delay.total_seconds() if hasattr(delay, "total_seconds") else float(delay)
                )
            except BadRequest as exc:
                if "chat not found" in exc.message.lower():
                    await asyncio.to_thread(state.pause_chat, chat_id)
                    paused.add(chat_id)
                    report.paused_chats += 1
                else:
                    log.error("alert to %s refused: %s", chat_id, exc.message)
                    report.failed += 1
                break
            except TelegramError as exc:
                log.warning("alert to %s failed (attempt %d): %s", chat_id, attempt + 1, exc)
                await asyncio.sleep(min(2**attempt, 30))
        else:
            report.failed += 1
    return report


def pending_stories(store: Store, state: State) -> tuple[list[str], dict[str, float], float]:
    """Stories first indexed since the last scan (the watermark), with when; on the very
    first scan the watermark starts now, so an existing backlog is never alerted."""
    watermark = state.get(WATERMARK)
    now = time.time()
    if watermark is None:
        state.put(WATERMARK, repr(now))
        return [], {}, now
    added = store.stories_added_since(float(watermark))
    return list(added), added, max([float(watermark), *added.values()])
