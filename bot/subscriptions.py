"""Subscriptions: /subscribe, /unsubscribe and /subscriptions in private chats, groups and
channels; and the bot's own membership, which pauses a chat that removed or blocked it.

Anyone may list a chat's topics. In groups only the chat's administrators may change them,
asked of Telegram (getChatMember) each time, so a demoted admin loses the right at once;
an anonymous admin writes as the group itself. In a channel only administrators can post,
so a command posted there speaks for the channel.
"""

from __future__ import annotations

import asyncio
import html
import logging

from telegram import Message, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.ext import ContextTypes

from bot.handlers import command_argument, send_replies, state_of
from bot.state import Subscription
from bot.texts import Html, language_of, say

log = logging.getLogger(__name__)

MAX_TOPIC_CHARS = 200
# Every topic is embedded at every round; 15 topics of 200 characters also fit one message.
MAX_TOPICS_PER_CHAT = 15
MANAGERS = (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)
GONE = (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED)
PRESENT = (ChatMemberStatus.MEMBER, ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)


async def may_change_subscriptions(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Private chats and channels: yes. Groups: the sender must administer the group."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None:
        return False
    if chat.type in (ChatType.PRIVATE, ChatType.CHANNEL):
        return True
    if message.sender_chat is not None:  # an anonymous admin, or a linked channel
        return message.sender_chat.id == chat.id
    user = update.effective_user
    if user is None:
        return False
    member = await context.bot.get_chat_member(chat.id, user.id)
    return member.status in MANAGERS


async def _changer_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Message | None:
    """The command's message when its sender may change the chat's subscriptions; otherwise
    a polite refusal (logged) and None."""
    message = update.effective_message
    if message is None:
        return None
    if await may_change_subscriptions(update, context):
        return message
    user = update.effective_user
    log.info(
        "refused %s from non-admin user %s in chat %s",
        (message.text or "?").split(maxsplit=1)[0],
        user.id if user else None,
        message.chat_id,
    )
    await send_replies(context, message, [say(language_of(user), "not_chat_admin")])
    return None


async def subscribe(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/subscribe <topic>`: follow a topic in this chat."""
    message = await _changer_message(update, context)
    if message is None:
        return
    lang = language_of(update.effective_user)
    topic = " ".join(command_argument(message).split())
    state = state_of(context)
    subscriptions = await asyncio.to_thread(state.subscriptions, message.chat_id)
    known = _same_topic(subscriptions, topic)
    if not topic:
        text = say(lang, "subscribe_usage")
    elif len(topic) > MAX_TOPIC_CHARS:
        text = say(lang, "topic_too_long", limit=MAX_TOPIC_CHARS, length=len(topic))
    elif known is not None:
        # Not a new topic, but subscribing again resumes a paused chat.
        await asyncio.to_thread(
            state.subscribe, message.chat_id, message.chat.type, subscriptions[known].topic, None
        )
        text = say(lang, "already_subscribed", topic=subscriptions[known].topic)
    elif len(subscriptions) >= MAX_TOPICS_PER_CHAT:
        text = say(lang, "too_many_topics", limit=MAX_TOPICS_PER_CHAT)
    else:
        user_id = update.effective_user.id if update.effective_user else None
        added = await asyncio.to_thread(
            state.subscribe, message.chat_id, message.chat.type, topic, user_id
        )
        text = say(lang, "subscribed" if added else "already_subscribed", topic=topic)
        if added:
            log.info("chat %s (%s) subscribed to %r", message.chat_id, message.chat.type, topic)
    await send_replies(context, message, [text])


async def unsubscribe(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/unsubscribe <topic | number | all>`: stop following one topic, or all of them."""
    message = await _changer_message(update, context)
    if message is None:
        return
    lang = language_of(update.effective_user)
    wanted = " ".join(command_argument(message).split())
    state = state_of(context)
    if not wanted:
        text = say(lang, "unsubscribe_usage")
    elif wanted.lower() == "all":
        count = await asyncio.to_thread(state.unsubscribe, message.chat_id, None)
        text = say(lang, "unsubscribed_all" if count else "no_subscriptions", count=count)
    else:
        subscriptions = await asyncio.to_thread(state.subscriptions, message.chat_id)
        if wanted.isdigit():  # its number in /subscriptions
            index: int | None = int(wanted) - 1 if 0 < int(wanted) <= len(subscriptions) else None
        else:
            index = _same_topic(subscriptions, wanted)
        if index is None:
            text = say(lang, "not_subscribed", topic=wanted)
        else:
            await asyncio.to_thread(state.unsubscribe, message.chat_id, str(index + 1))
            text = say(lang, "unsubscribed", topic=subscriptions[index].topic)
    await send_replies(context, message, [text])


def _same_topic(subscriptions: list[Subscription], topic: str) -> int | None:
    """Where `topic` is in the list, compared without regard to case."""
    folded = topic.casefold()
    return next((i for i, s in enumerate(subscriptions) if s.topic.casefold() == folded), None)


async def list_subscriptions(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/subscriptions`: this chat's topics, numbered as /unsubscribe takes them."""
    message = update.effective_message
    if message is None:
        return
    lang = language_of(update.effective_user)
    subscriptions = await asyncio.to_thread(state_of(context).subscriptions, message.chat_id)
    if not subscriptions:
        await send_replies(context, message, [say(lang, "no_subscriptions")])
        return
    items = "\n".join(
        f"{n}. {html.escape(s.topic, quote=False)}" for n, s in enumerate(subscriptions, 1)
    )
    text = say(lang, "subscription_list", items=Html(items))
    if any(s.paused for s in subscriptions):
        text = Html(text + "\n\n" + say(lang, "subscriptions_paused"))
    await send_replies(context, message, [text])


async def membership_changed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The bot was removed from a chat, or blocked: pause its alerts (kept, not retried).
    Added back, or unblocked: resume them."""
    change = update.my_chat_member
    if change is None:
        return
    chat_id = change.chat.id
    now, before = change.new_chat_member.status, change.old_chat_member.status
    if now in GONE:
        log.info("the bot is %s in chat %s: its alerts are paused", now, chat_id)
        await asyncio.to_thread(state_of(context).pause_chat, chat_id)
    elif now in PRESENT and before in GONE:
        log.info("the bot is back (%s) in chat %s: its alerts resume", now, chat_id)
        await asyncio.to_thread(state_of(context).resume_chat, chat_id)


async def chat_migrated(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A group was upgraded to a supergroup (new chat id): move its subscriptions and sent
    alerts. Telegram says so in both chats; either message is enough, both are harmless."""
    message = update.effective_message
    if message is None:
        return
    if message.migrate_to_chat_id:
        old_id, new_id = message.chat.id, message.migrate_to_chat_id
    elif message.migrate_from_chat_id:
        old_id, new_id = message.migrate_from_chat_id, message.chat.id
    else:
        return
    moved = await asyncio.to_thread(state_of(context).migrate_chat, old_id, new_id)
    if moved:
        log.info("chat %s became supergroup %s: %d subscription(s) moved", old_id, new_id, moved)
