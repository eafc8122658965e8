"""Telegram handlers for readers: questions in private chats and groups, /start, /help, and
the error handler.

A private chat's every text is a question. In groups the bot answers `/ask …`, replies to
its own messages and messages that mention it; the rest is not for it. Answering (embedding
and search) runs in a worker thread so the event loop keeps serving other chats.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Sequence
from typing import TypeVar, cast

from telegram import Message, MessageEntity, ReplyParameters, Update
from telegram.constants import ChatAction
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes, filters

from bot.answer import Answer
from bot.config import Settings
from bot.engine import Engine
from bot.followup import Thread, story_remains, thread_of
from bot.quota import QuestionQuota
from bot.render import pack_blocks, plain_text, render_answer
from bot.state import State
from bot.texts import language_of, say
from bot.timeline import TimelineRequest, engine_timeline, render_timeline, timeline_request
from index.articles import clean_text

log = logging.getLogger(__name__)

T = TypeVar("T")

# Keys of application.bot_data, filled by bot.app.
ENGINE = "engine"
SETTINGS = "settings"
STATE = "state"
QUOTA = "quota"
# Telegram shows "typing…" for 5 s; refresh it a little before it fades.
TYPING_REFRESH_S = 4.5
MAX_LISTED_SOURCES = 5


def engine_of(context: ContextTypes.DEFAULT_TYPE) -> Engine:
    return cast(Engine, context.bot_data[ENGINE])


def settings_of(context: ContextTypes.DEFAULT_TYPE) -> Settings:
    return cast(Settings, context.bot_data[SETTINGS])


def state_of(context: ContextTypes.DEFAULT_TYPE) -> State:
    return cast(State, context.bot_data[STATE])


# --------------------------------------------------------------------------- filters


class _RepliesToBot(filters.MessageFilter):
    """A message that replies to one of this bot's messages."""

    def filter(self, message: Message) -> bool:
        replied = message.reply_to_message
        return bool(replied and replied.from_user and replied.from_user.id == message.get_bot().id)


class _MentionsBot(filters.MessageFilter):
    """A message whose text mentions this bot by @username."""

    def filter(self, message: Message) -> bool:
        mention = f"@{message.get_bot().username}".lower()
        found = message.parse_entities([MessageEntity.MENTION]).values()
        return any(text.lower() == mention for text in found)


REPLIES_TO_BOT = _RepliesToBot(name="replies_to_bot")
MENTIONS_BOT = _MentionsBot(name="mentions_bot")


# --------------------------------------------------------------------------- commands


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Who the bot is, what it knows, how to ask."""
    await _introduce(update, context, intro=True)


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """How to ask, and what the bot knows."""
    await _introduce(update, context, intro=False)


async def _introduce(update: Update, context: ContextTypes.DEFAULT_TYPE, intro: bool) -> None:
    message = update.effective_message
    if message is None:
        return
    lang = language_of(update.effective_user)
    parts: list[str] = [say(lang, "intro")] if intro else []
    parts.append(await _what_the_bot_knows(engine_of(context), lang))
    parts.append(say(lang, "how_private"))
    parts.append(say(lang, "how_group", username=f"@{context.bot.username}"))
    if not intro:
        parts.append(say(lang, "how_followup"))
        parts.append(say(lang, "help_more"))
    await send_replies(context, message, ["\n\n".join(parts)])


async def _what_the_bot_knows(engine: Engine, lang: str) -> str:
    """Number of articles, sources and date range, read off the index in a worker thread."""

    def read() -> tuple[int, list[str], str | None, str | None]:
        store = engine.store
        stats = store.stats()
        return stats.articles, store.sources(), stats.first_date, stats.last_date

    articles, sources, first, last = await asyncio.to_thread(read)
    if not articles:
        return say(lang, "knows_nothing")
    listed = ", ".join(sources[:MAX_LISTED_SOURCES]) or "—"
    if len(sources) > MAX_LISTED_SOURCES:
        listed += f" (+{len(sources) - MAX_LISTED_SOURCES})"
    first, last = first or "?", last or "?"
    if first == last:
        dates = say(lang, "dated_one", first=first)
    else:
        dates = say(lang, "dated_range", first=first, last=last)
    noun = say(lang, "article_one" if articles == 1 else "article_many")
    return say(lang, "knows", count=articles, articles=noun, sources=listed, dates=dates)


async def ask_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/ask question` (or `/ask@Bot question`); `/ask` alone in reply to a message asks
    that message's text."""
    message = update.effective_message
    if message is None or message.text is None:
        return
    question = command_argument(message)
    replied = message.reply_to_message
    if not question and replied is not None and replied.text and not _is_from_bot(replied):
        question = replied.text.strip()
    await answer_question(update, context, question)


def command_argument(message: Message) -> str:
    """What follows the command (`/ask@Bot who?` -> "who?"), cleaned (clean_text) and
    stripped. CommandHandler only fires when the command opens the message, and a command
    is ASCII: its UTF-16 length is its length in characters."""
    if not message.text or not message.entities:
        return ""
    return clean_text(message.text[message.entities[0].length :]).strip()


async def timeline_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/timeline <topic>` (or `/timeline what happened since …`): the story's dated quotes,
    oldest first."""
    message = update.effective_message
    if message is None:
        return
    lang = language_of(update.effective_user)
    topic = command_argument(message)
    limit = settings_of(context).max_question_chars
    if not topic:
        await send_replies(context, message, [say(lang, "timeline_usage")])
    elif len(topic) > limit:
        await send_replies(
            context, message, [say(lang, "too_long", length=len(topic), limit=limit)]
        )
    elif await within_quota(update, context):
        request = timeline_request(topic) or TimelineRequest(topic, None)
        await reply_timeline(context, message, request, lang)


async def reply_timeline(
    context: ContextTypes.DEFAULT_TYPE, message: Message, request: TimelineRequest, lang: str
) -> None:
    """Build the timeline in a worker thread while showing "typing…", then reply."""
    engine = engine_of(context)
    timeline = await while_typing(
        context, message, asyncio.to_thread(engine_timeline, engine, request)
    )
    log.info(
        "chat %s: timeline of %d article(s)",
        message.chat_id,
        len(timeline.dated) + len(timeline.undated),
    )
    await send_replies(context, message, render_timeline(timeline, lang))


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A command the bot doesn't have, in a private chat."""
    if update.effective_message is not None:
        lang = language_of(update.effective_user)
        await send_replies(context, update.effective_message, [say(lang, "unknown_command")])


# --------------------------------------------------------------------------- questions


async def text_question(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A private chat's text, or a group message replying to the bot: the text is the question."""
    message = update.effective_message
    if message is not None:
        await answer_question(update, context, message.text or "")


async def mention_question(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A group message mentioning the bot: the question is the text without the mention."""
    message = update.effective_message
    if message is None or message.text is None:
        return
    mention = re.compile(rf"@{re.escape(context.bot.username)}\b[\s,:;]*", re.IGNORECASE)
    await answer_question(update, context, mention.sub(" ", message.text).strip(" ,:;\n"))


async def not_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A sticker, photo, voice… sent as a question."""
    if update.effective_message is not None:
        lang = language_of(update.effective_user)
        await send_replies(context, update.effective_message, [say(lang, "not_text")])


async def answer_question(
    update: Update, context: ContextTypes.DEFAULT_TYPE, question: str
) -> None:
    """Check the question, answer it from the index while showing "typing…", reply."""
    message = update.effective_message
    if message is None:
        return
    question = clean_text(question).strip()  # no lone surrogate or control reaches the model
    lang = language_of(update.effective_user)
    limit = settings_of(context).max_question_chars
    if not question.strip():
        typed = message.chat.type == "private" and not (message.text or "").startswith("/")
        await send_replies(
            context, message, [say(lang, "empty_private" if typed else "empty_question")]
        )
        return
    if len(question) > limit:
        too_long = say(lang, "too_long", length=len(question), limit=limit)
        await send_replies(context, message, [too_long])
        return
    if not await within_quota(update, context):
        return
    wanted = timeline_request(question)  # "what happened since …": a timeline, not an answer
    if wanted is not None:
        await reply_timeline(context, message, wanted, lang)
        return
    engine = engine_of(context)
    thread = await replied_thread(context, message)
    gone = thread is not None and not await asyncio.to_thread(story_remains, engine.store, thread)
    if gone:  # its articles were removed since: a new question, and the reader told why
        thread = None
    if thread is None:
        work = asyncio.to_thread(engine.ask, [question])
        (answer,) = await while_typing(context, message, work)
    else:  # a reply to one of the bot's answers: a follow-up within its story
        answer = await while_typing(
            context, message, asyncio.to_thread(engine.ask_followup, question, thread)
        )
    log.info(
        "chat %s: answered=%s citations=%d follow-up=%s",
        message.chat_id,
        answer.answered,
        len(answer.citations),
        thread is not None,
    )
    messages = render_answer(answer, lang)
    if gone:
        messages = pack_blocks([say(lang, "followup_gone"), *messages])
    sent = await send_replies(context, message, messages)
    await remember_answer(context, sent, answer)


async def replied_thread(context: ContextTypes.DEFAULT_TYPE, message: Message) -> Thread | None:
    """The story a message follows up: that of the bot's answer it replies to, if it is
    one (not an alert, a help text, or an answer forgotten since)."""
    replied = message.reply_to_message
    if replied is None or not _is_from_bot(replied):
        return None
    state = state_of(context)
    sent = await asyncio.to_thread(state.sent_answer, message.chat_id, replied.message_id)
    return None if sent is None else Thread(sent.question, sent.article_ids)


async def remember_answer(
    context: ContextTypes.DEFAULT_TYPE, sent: Sequence[Message], answer: Answer
) -> None:
    """Keep, for each message of an answer, the story a reply to it follows up. The answer
    is out already: a state that fails here costs the follow-up, not the answer."""
    thread = thread_of(answer)
    if thread is None or not sent:
        return
    state, chat_id = state_of(context), sent[0].chat_id
    ids = [m.message_id for m in sent]
    try:
        await asyncio.to_thread(
            state.remember_answer, chat_id, ids, thread.question, thread.article_ids
        )
    except Exception:
        log.exception("chat %s: could not remember answer %s for follow-ups", chat_id, ids)


async def within_quota(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Count the question against its asker's quota; over it, tell them once and skip it."""
    user, message = update.effective_user, update.effective_message
    settings = settings_of(context)
    quota = cast("QuestionQuota | None", context.bot_data.get(QUOTA))
    if user is None or message is None or quota is None or user.id in settings.admin_ids:
        return True
    allowed, wait = quota.check(user.id)
    if allowed:
        return True
    log.info("chat %s: user %s is over the question quota", message.chat_id, user.id)
    if wait is not None:
        lang = language_of(user)
        text = say(lang, "slow_down", limit=quota.per_minute, seconds=max(1, round(wait)))
        await send_replies(context, message, [text])
    return False


async def while_typing(
    context: ContextTypes.DEFAULT_TYPE, message: Message, work: Awaitable[T]
) -> T:
    """Await `work` (already running) while the chat shows "typing…", refreshed until done."""
    task = asyncio.ensure_future(work)
    while True:
        try:
            await context.bot.send_chat_action(
                message.chat_id, ChatAction.TYPING, message_thread_id=_thread_of(message)
            )
        except TelegramError as exc:  # only cosmetic: the answer still goes out
            log.info("chat %s: typing action failed: %s", message.chat_id, exc)
        done, _ = await asyncio.wait({task}, timeout=TYPING_REFRESH_S)
        if done:
            return task.result()


# --------------------------------------------------------------------------- sending


async def send_replies(
    context: ContextTypes.DEFAULT_TYPE, message: Message, messages: Sequence[str]
) -> list[Message]:
    """Send HTML messages in reply to `message`, in its forum topic. If Telegram refuses the
    HTML, the same message goes out as plain text: an answer is never lost to formatting."""
    sent = []
    reply = ReplyParameters(message.message_id, allow_sending_without_reply=True)
    thread = _thread_of(message)
    for text in messages:
        try:
            sent.append(
                await context.bot.send_message(
                    message.chat_id, text, reply_parameters=reply, message_thread_id=thread
                )
            )
        except BadRequest as exc:
            if "can't parse entities" not in exc.message.lower():
                raise
            log.warning(
                "chat %s: Telegram refused our HTML (%s); sent as plain text",
                message.chat_id,
                exc.message,
            )
            sent.append(
                await context.bot.send_message(
                    message.chat_id,
                    plain_text(text),
                    parse_mode=None,
                    reply_parameters=reply,
                    message_thread_id=thread,
                )
            )
    return sent


def _thread_of(message: Message) -> int | None:
    """The forum topic to answer in (None outside forum topics)."""
    return message.message_thread_id if message.is_topic_message else None


def _is_from_bot(message: Message) -> bool:
    return bool(message.from_user and message.from_user.id == message.get_bot().id)


# --------------------------------------------------------------------------- errors


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the error with the update it broke on; tell the user, briefly, that it failed."""
    where = "no update"
    if isinstance(update, Update):
        chat = update.effective_chat.id if update.effective_chat else None
        user = update.effective_user.id if update.effective_user else None
        where = f"update {update.update_id} (chat {chat}, user {user})"
    log.error("error while handling %s", where, exc_info=context.error)
    if not isinstance(update, Update) or update.effective_message is None:
        return
    try:
        lang = language_of(update.effective_user)
        await send_replies(context, update.effective_message, [say(lang, "error")])
    except TelegramError as exc:
        log.warning("could not tell %s about the error: %s", where, exc)
