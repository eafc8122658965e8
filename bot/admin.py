"""Admin commands, checked by Telegram user id: /reindex (in the background, one progress
message edited as it goes) and /stats. Anyone else is refused, and the attempt logged."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from telegram import Message, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot.handlers import engine_of, send_replies, settings_of, state_of
from bot.jobs import NEWS, holding_job
from bot.rounds import restart_watermark, round_lock
from bot.texts import language_of, say
from index.corpus import RebuildInProgress, RebuildReport

log = logging.getLogger(__name__)

# Key of application.bot_data: held while a reindex runs.
REINDEX_LOCK = "reindex_lock"


async def admin_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Message | None:
    """The command's message when its sender is an admin; otherwise refuse and log, None."""
    message, user = update.effective_message, update.effective_user
    if message is None:
        return None
    if user is not None and user.id in settings_of(context).admin_ids:
        return message
    command = (message.text or "?").split(maxsplit=1)[0]
    log.warning(
        "refused %s from non-admin user %s in chat %s",
        command,
        user.id if user else None,
        message.chat_id,
    )
    await send_replies(context, message, [say(language_of(user), "not_admin")])
    return None


async def reindex(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Start rebuilding the index in the background; questions keep being answered from the
    current index until the engine swaps the new one in. One reindex at a time."""
    message = await admin_message(update, context)
    if message is None:
        return
    lang = language_of(update.effective_user)
    lock = cast(asyncio.Lock, context.bot_data[REINDEX_LOCK])
    if lock.locked():
        await send_replies(context, message, [say(lang, "reindex_busy")])
        return
    await lock.acquire()  # free, so this returns at once: no other /reindex slips in
    try:
        (progress,) = await send_replies(context, message, [say(lang, "reindex_started")])
    except BaseException:
        lock.release()
        raise
    # Not awaited: the chat stays free (for a second /reindex to be refused, or questions).
    context.application.create_task(_run_reindex(context, progress, lang, lock), update=update)


async def _run_reindex(
    context: ContextTypes.DEFAULT_TYPE, progress: Message, lang: str, lock: asyncio.Lock
) -> None:
    loop = asyncio.get_running_loop()
    reporter = ProgressMessage(progress, settings_of(context).progress_interval_s)

    def on_progress(done: int, total: int) -> None:  # called in the worker thread
        text = say(lang, "reindex_progress", done=done, total=total)
        loop.call_soon_threadsafe(reporter.show, text)

    engine = engine_of(context)
    try:
        # No round meanwhile, here or in another replica: a poll would write into the index
        # being replaced, and the rebuilt index dates every story from now, which the
        # watermark must skip. The round's job may be held by another replica: wait for it.
        state, seconds = state_of(context), settings_of(context).job_lease_seconds
        async with (
            round_lock(context),
            holding_job(state, NEWS, seconds, wait_s=float("inf")),
        ):
            report = await asyncio.to_thread(engine.reindex, on_progress=on_progress)
            await asyncio.to_thread(restart_watermark, state)
    except RebuildInProgress:
        await reporter.finish(say(lang, "reindex_busy"))
    except Exception as exc:
        log.exception("reindex requested in chat %s failed", progress.chat_id)
        await reporter.finish(say(lang, "reindex_failed", error=type(exc).__name__))
    else:
        log.info("reindex done: %s", report)
        await reporter.finish(_done_text(report, lang))
    finally:
        lock.release()


def _done_text(report: RebuildReport, lang: str) -> str:
    text: str = say(
        lang,
        "reindex_done",
        articles=report.articles,
        passages=report.passages,
        embedded=report.embedded,
        seconds=f"{report.seconds:.1f}",
    )
    if report.errors:
        text += "\n" + say(lang, "reindex_skipped", count=len(report.errors))
    return text


class ProgressMessage:
    """One message edited as a long job advances. Edits run one at a time, at most one per
    `interval` seconds (Telegram rate-limits edits too); the latest text always wins."""

    def __init__(self, message: Message, interval: float) -> None:
        self._message = message
        self._interval = interval
        self._wanted = self._shown = message.text_html
        self._task: asyncio.Task[None] | None = None

    def show(self, html: str) -> None:
        """Ask for `html` to be shown soon; call from the event loop."""
        self._wanted = html
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def finish(self, html: str) -> None:
        """Show `html` and return once it is shown."""
        self.show(html)
        if self._task is not None:
            await self._task

    async def _flush(self) -> None:
        while self._wanted != self._shown:
            wanted = self._wanted
            try:
                await self._message.edit_text(wanted)
            except BadRequest as exc:
                if "not modified" not in exc.message.lower():
                    log.warning("progress message not updated: %s", exc.message)
            except TelegramError as exc:
                log.warning("progress message not updated: %s", exc)
            self._shown = wanted
            if self._wanted != self._shown:
                await asyncio.sleep(self._interval)


async def stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """What the index holds: articles, passages, sources, dates, model, size, last update."""
    message = await admin_message(update, context)
    if message is None:
        return
    lang = language_of(update.effective_user)
    s = await asyncio.to_thread(engine_of(context).stats)
    text = say(
        lang,
        "stats",
        articles=s.articles,
        passages=s.passages,
        sources=s.sources,
        first=s.first_date or "—",
        last=s.last_date or "—",
        model=s.model or "—",
        size=f"{s.index_bytes / 1e6:.1f} MB",
        last_update=s.last_update or say(lang, "never"),
    )
    await send_replies(context, message, [text])
