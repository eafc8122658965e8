"""Digests: the top stories of a chat's topics since its last digest, one verbatim quote each.

`/digest` posts one now; `/digest daily 08:00 Europe/Paris` every day at that time in that
time zone (UTC when none is named); `/digest off` stops the daily one; `/digest status`
tells. In groups only the administrators post or set digests, as they change the chat's
subscriptions (bot/subscriptions.py): a digest moves the chat's window, so the next one
starts where it ended.

A digest covers the stories first indexed since the chat's last digest (the first one: the
last 24 hours), matched to the chat's topics as alerts are (bot/alerts.py), best first, one
quote per story. The daily digests are posted by a job that looks every minute for the chats
whose time has come; each day's is claimed in the state before it is composed, so it goes
out at most once, also across restarts and bot processes sharing the state. A daily digest
with nothing new is not posted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import html
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from telegram import Bot, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import ChatMigrated, Forbidden, TelegramError
from telegram.ext import Application, ContextTypes, Job

from bot.alerts import AlertMatch, matching_subscriptions, topic_vectors
from bot.answer import Citation
from bot.config import Settings
from bot.corroboration import corroboration
from bot.engine import Engine
from bot.handlers import (
    command_argument,
    engine_of,
    send_replies,
    settings_of,
    state_of,
    while_typing,
)
from bot.render import (
    MAX_MESSAGE_UNITS,
    message_units,
    pack_blocks,
    render_citation,
    utf16_len,
)
from bot.rounds import alert_thresholds
from bot.state import DigestSchedule, State, Subscription
from bot.subscriptions import may_change_subscriptions
from bot.texts import DEFAULT_LANGUAGE, Html, language_of, say
from bot.timeline import best_quote_per_article, citation_of
from index.backend import IndexStore
from index.embedding import Embedder
from index.search import Hit, Retrieval

log = logging.getLogger(__name__)

FIRST_WINDOW_S = 24 * 3600  # a chat's first digest: the last 24 hours
MAX_STORIES = 10
CHECK_EVERY_S = 60.0
MAX_TOPIC_UNITS = 200
_TIME = re.compile(r"^([01]?\d|2[0-3])[:hH.]([0-5]\d)$")
DIGEST_LOCK = "digest_lock"  # key of application.bot_data: one daily round at a time


@dataclass(frozen=True)
class DigestItem:
    """One story of a digest: the topic it matched, and its quote."""

    topic: str
    citation: Citation
    score: float


class DigestUsage(ValueError):
    """A `/digest daily` the bot cannot read: the text key saying why, and its values."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


def parse_daily(words: list[str]) -> tuple[str, str]:
    """`08:00 [Europe/Paris]` -> ("08:00", "Europe/Paris"); the zone defaults to UTC."""
    if not words or len(words) > 2:
        raise DigestUsage("digest_usage")
    match = _TIME.match(words[0])
    if match is None:
        raise DigestUsage("digest_bad_time", time=words[0])
    zone = words[1] if len(words) == 2 else "UTC"
    return f"{int(match.group(1)):02d}:{match.group(2)}", valid_zone(zone)


def valid_zone(name: str) -> str:
    """The IANA name of a time zone ("europe/paris" -> "Europe/Paris"), or DigestUsage.
    Only the tz database's names are looked up: a folder of it ("Europe") or a name too
    long for a file is no zone, not an error of the program."""
    if name.upper() in ("UTC", "GMT", "Z"):
        return "UTC"
    zone = _zone_names().get(name.lower())
    if zone is None:
        raise DigestUsage("digest_bad_zone", zone=name)
    return zone


@functools.cache
def _zone_names() -> dict[str, str]:
    """The tz database's zone names by their lower case ("america/new_york" -> ...)."""
    return {zone.lower(): zone for zone in available_timezones()}


def due_day(schedule: DigestSchedule, now: datetime) -> str | None:
    """The local day whose daily digest is due at `now` (its time has come and the day has
    not had one), or None."""
    if schedule.daily_at is None:
        return None
    local = now.astimezone(ZoneInfo(schedule.time_zone))
    hour, minute = (int(x) for x in schedule.daily_at.split(":"))
    day = local.date().isoformat()
    if (local.hour, local.minute) < (hour, minute) or schedule.last_day == day:
        return None
    return day


def compose_digest(
    store: IndexStore,
    embedder: Embedder,
    settings: Settings,
    subscriptions: list[Subscription],
    since: float,
    until: float,
) -> tuple[list[DigestItem], int]:
    """The best stories first indexed after `since` and until `until` that match one of the
    topics (as an alert would), at most MAX_STORIES, one per story (its reports in other
    languages, bot/corroboration.py's same news, told once); each quoted by its
    sentence most relevant to the topic it matched; and how many stories matched (the next
    digest starts at `until`: those not shown are not told later). A story indexed while
    this one is composed is left to the next one, not told twice."""
    store.refresh()  # another process (`newsbot poll`) may have written
    added = store.stories_added_since(since)
    stories = [story for story, at in added.items() if at <= until]
    matches = matching_subscriptions(
        store, embedder, subscriptions, stories, alert_thresholds(settings)
    )
    best: dict[str, AlertMatch] = {}
    told: dict[str, str | None] = {}  # the chosen stories' articles: the chosen one's language
    for match in sorted(matches, key=lambda m: -m.score):
        article = match.passage.article
        if match.story_id in best or told.get(article.id, article.lang) != article.lang:
            continue  # one story, several topics: the best; told in another language: once
        best[match.story_id] = match
        story = corroboration(store, article.id)
        told.update(dict.fromkeys(story.article_ids if story else (), article.lang))
    chosen = list(best.values())[:MAX_STORIES]
    topics = sorted({m.subscription.topic for m in chosen})
    vectors = dict(zip(topics, topic_vectors(embedder, topics), strict=True)) if topics else {}
    items = []
    for match in chosen:
        topic = match.subscription.topic
        passages, passage_vectors = store.article_passages(match.passage.article.id)
        hits = [
            Hit(p, float(v @ vectors[topic]))
            for p, v in zip(passages, passage_vectors, strict=True)
        ]
        quotes = best_quote_per_article(Retrieval(topic, vectors[topic], hits), store, embedder)
        quote = next(iter(quotes.values()), None)
        if quote is not None:
            items.append(DigestItem(topic, citation_of(quote), match.score))
    return items, len(best)


def since_text(since: float, zone: str) -> str:
    """When a digest's window starts, in the chat's time zone: "2026-12-03 08:00 UTC"."""
    moment = datetime.fromtimestamp(since, UTC).astimezone(ZoneInfo(zone))
    return f"{moment:%Y-%m-%d %H:%M} {zone}"


def render_digest(
    items: list[DigestItem],
    since: str | None,
    lang: str,
    limit: int = MAX_MESSAGE_UNITS,
    matched: int = 0,
) -> list[str]:
    """The digest as Telegram HTML messages within `limit`: a header (saying when only the
    best of the `matched` stories are shown), then the stories grouped by topic (the topic
    with the best story first), numbered; `since` None means the chat's first digest (the
    last 24 hours)."""
    count = max(matched, len(items))
    number = "one" if count == 1 else "many"
    if since is None:
        stories = say(lang, f"digest_story_{number}")
        header = say(lang, "digest_header_first", count=count, stories=stories)
    else:
        stories = say(lang, f"digest_new_{number}")
        header = say(lang, "digest_header", count=count, stories=stories, since=since)
    if count > len(items):
        header = Html(header + " " + say(lang, "digest_best", shown=len(items)))
    blocks: list[str] = [header]
    order = list(dict.fromkeys(item.topic for item in items))
    n = 0
    for topic in order:
        label = f"🔖 <b>{html.escape(topic[:MAX_TOPIC_UNITS], quote=False)}</b>\n"
        for i, item in enumerate(it for it in items if it.topic == topic):
            n += 1
            head = label if i == 0 else ""
            numbered = dataclasses.replace(item.citation, n=n)
            blocks.append(head + render_citation(numbered, limit - utf16_len(head)))
    return pack_blocks(blocks, limit)


def schedule_text(schedule: DigestSchedule | None, lang: str) -> Html:
    if schedule is None or schedule.daily_at is None:
        return say(lang, "digest_no_daily")
    return say(lang, "digest_daily_at", time=schedule.daily_at, zone=schedule.time_zone)


# --------------------------------------------------------------------------- the command


async def digest_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/digest`, `/digest daily HH:MM [zone]`, `/digest off`, `/digest status`."""
    message = update.effective_message
    if message is None:
        return
    lang = language_of(update.effective_user)
    words = command_argument(message).split()
    action = words[0].lower() if words else ""
    state = state_of(context)
    chat_id, chat_type = message.chat_id, message.chat.type
    if action == "status":
        schedule = await asyncio.to_thread(state.digest_schedule, chat_id)
        await send_replies(context, message, [_status(schedule, lang)])
        return
    if action not in ("", "daily", "off"):
        await send_replies(context, message, [say(lang, "digest_usage")])
        return
    if not await may_change_subscriptions(update, context):
        user = update.effective_user
        log.info("refused /digest from non-admin user %s in chat %s", user and user.id, chat_id)
        await send_replies(context, message, [say(lang, "digest_not_chat_admin")])
        return
    if action == "off":
        stopped = await asyncio.to_thread(state.stop_daily_digest, chat_id)
        await send_replies(
            context, message, [say(lang, "digest_off" if stopped else "digest_no_daily")]
        )
        return
    if action == "daily":
        try:
            at, zone = parse_daily(words[1:])
        except DigestUsage as exc:
            await send_replies(context, message, [say(lang, exc.key, **exc.values)])
            return
        local = datetime.now(ZoneInfo(zone))
        passed = local.strftime("%H:%M") >= at  # today's time has passed: from tomorrow
        done_day = local.date().isoformat() if passed else None
        await asyncio.to_thread(
            state.set_daily_digest, chat_id, chat_type, at, zone, lang, done_day
        )
        log.info("chat %s: daily digest at %s %s", chat_id, at, zone)
        key = "digest_daily_set_tomorrow" if passed else "digest_daily_set"
        text = say(lang, key, time=at, zone=zone)
        if not await asyncio.to_thread(state.subscriptions, chat_id):  # nothing to post yet
            text = Html(text + " " + say(lang, "digest_daily_no_topics"))
        await send_replies(context, message, [text])
        return
    subscriptions = await asyncio.to_thread(state.subscriptions, chat_id)
    if not subscriptions:
        await send_replies(context, message, [say(lang, "digest_no_topics")])
        return
    active = [s for s in subscriptions if not s.paused]
    if not active:
        await send_replies(context, message, [say(lang, "subscriptions_paused")])
        return
    schedule = await asyncio.to_thread(state.digest_schedule, chat_id)
    work = digest_messages(engine_of(context), settings_of(context), active, schedule, lang)
    messages, end, _ = await while_typing(context, message, work)
    await send_replies(context, message, with_status(messages, schedule, lang))
    # Only once it is out: a digest that failed to send is composed again next time.
    await asyncio.to_thread(state.record_digest, chat_id, chat_type, end)


def _status(schedule: DigestSchedule | None, lang: str) -> Html:
    text = schedule_text(schedule, lang)
    if schedule is not None and schedule.last_at is not None:
        last = since_text(schedule.last_at, schedule.time_zone)
        text = Html(text + "\n" + say(lang, "digest_last", when=last))
    return text


def with_status(messages: list[str], schedule: DigestSchedule | None, lang: str) -> list[str]:
    """The digest's messages ending with the chat's daily schedule (in the last message when
    it fits)."""
    last = messages[-1] + "\n\n" + schedule_text(schedule, lang)
    fits = message_units(last) <= MAX_MESSAGE_UNITS
    return [*messages[:-1], last] if fits else [*messages, schedule_text(schedule, lang)]


def covered_until(store: IndexStore, since: float) -> float:
    """Where a digest starting at `since` ends, and the next one starts: the time the last
    story it can read was first indexed (`since` when there is none). Not the clock: an
    article being written now was stamped before its write commits, so a digest that ended
    at the clock would leave it behind both windows; every write that commits after this
    read is stamped later than what it read (the writers take turns)."""
    store.refresh()  # another process (`newsbot poll`) may have written
    return max(store.stories_added_since(since).values(), default=since)


async def digest_messages(
    engine: Engine,
    settings: Settings,
    subscriptions: list[Subscription],
    schedule: DigestSchedule | None,
    lang: str,
) -> tuple[list[str], float, int]:
    """The digest's messages (one saying "nothing new" when there is nothing), the moment
    it covers until (the next digest starts there) and how many stories it holds."""
    last = schedule.last_at if schedule is not None else None
    since = last if last is not None else time.time() - FIRST_WINDOW_S
    end = await asyncio.to_thread(covered_until, engine.store, since)
    items, matched = await asyncio.to_thread(
        compose_digest, engine.store, engine.embedder, settings, subscriptions, since, end
    )
    zone = schedule.time_zone if schedule is not None else "UTC"
    shown = since_text(last, zone) if last is not None else None
    if not items:
        key = "digest_nothing_first" if shown is None else "digest_nothing"
        return [say(lang, key, since=shown or "")], end, 0
    return render_digest(items, shown, lang, matched=matched), end, len(items)


# --------------------------------------------------------------------------- the daily job


def schedule_digests(application: Application[Any, Any, Any, Any, Any, Any]) -> Job[Any] | None:
    """Look for due daily digests every CHECK_EVERY_S seconds."""
    if application.job_queue is None:
        return None
    application.bot_data[DIGEST_LOCK] = asyncio.Lock()
    return application.job_queue.run_repeating(
        digest_job, interval=CHECK_EVERY_S, first=CHECK_EVERY_S, name="digests"
    )


async def digest_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The job: post the digests that are due; skipped while the previous one still runs."""
    lock: asyncio.Lock = context.bot_data[DIGEST_LOCK]
    if lock.locked():
        return
    async with lock:
        await run_digest_round(
            context.bot, engine_of(context), state_of(context), settings_of(context)
        )


async def run_digest_round(
    bot: Bot, engine: Engine, state: State, settings: Settings, now: datetime | None = None
) -> int:
    """Post every daily digest due at `now` (default: the clock's now); the number posted.
    Each day's digest is claimed before it is composed: at most once a day per chat."""
    now = now or datetime.now(UTC)
    posted = 0
    for schedule in await asyncio.to_thread(state.daily_digests):
        try:
            day = due_day(schedule, now)
        except ZoneInfoNotFoundError:
            log.error("chat %s: unknown time zone %r", schedule.chat_id, schedule.time_zone)
            continue
        if day is None:
            continue
        subscriptions = await asyncio.to_thread(state.subscriptions, schedule.chat_id)
        active = [s for s in subscriptions if not s.paused]
        if not active:  # no topics, or the chat removed the bot: nothing to post
            continue
        if not await asyncio.to_thread(state.claim_daily_digest, schedule.chat_id, day):
            continue
        lang = schedule.lang or DEFAULT_LANGUAGE
        messages, end, stories = await digest_messages(engine, settings, active, schedule, lang)
        chat_id = schedule.chat_id
        if stories:
            sent_to = await _post(bot, state, schedule.chat_id, messages)
            if sent_to is None:
                continue  # not out: its stories stay for the next digest
            chat_id, posted = sent_to, posted + 1
        await asyncio.to_thread(state.record_digest, chat_id, schedule.chat_type, end)
        log.info("chat %s: daily digest of %s, %d stories", schedule.chat_id, day, stories)
    return posted


async def _post(bot: Bot, state: State, chat_id: int, messages: list[str]) -> int | None:
    """Send the messages; the chat's id (a group that became a supergroup has a new one),
    or None when they did not go out (a chat that blocked or removed the bot is paused, as
    for alerts)."""
    for text in messages:
        for _ in range(2):
            try:
                await bot.send_message(
                    chat_id,
                    text,
                    parse_mode=ParseMode.HTML,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
                break
            except ChatMigrated as exc:
                new_id = int(exc.new_chat_id)
                await asyncio.to_thread(state.migrate_chat, chat_id, new_id)
                chat_id = new_id
            except Forbidden as exc:
                log.warning("chat %s blocked or removed the bot (%s): pausing it", chat_id, exc)
                await asyncio.to_thread(state.pause_chat, chat_id)
                return None
            except TelegramError as exc:
                log.error("digest to %s failed: %s", chat_id, exc)
                return None
    return chat_id
