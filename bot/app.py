"""Wiring only: the python-telegram-bot Application built from Settings, and how it runs.

Read it as a table of contents: the handlers in the order they are tried, the error
handler, the feed-and-alert job, the daily digest job, the command menus per scope, polling
or webhook. Behaviour lives in bot/handlers.py (readers), bot/subscriptions.py (topics and
alerts per chat), bot/digest.py (digests), bot/timeline.py (timelines), bot/admin.py and
bot/feed_admin.py (admins), bot/rounds.py (the job), bot/render.py and bot/webhook.py.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from dataclasses import dataclass
from typing import Any

from telegram import (
    Bot,
    BotCommandScopeAllChatAdministrators,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    LinkPreviewOptions,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    BaseHandler,
    ChatMemberHandler,
    CommandHandler,
    Defaults,
    MessageHandler,
    filters,
)

from bot import admin, digest, feed_admin, handlers, rounds, subscriptions
from bot.config import Settings
from bot.engine import Engine
from bot.logs import hide_in_logs
from bot.per_chat import PerChatUpdateProcessor
from bot.quota import QuestionQuota
from bot.state import open_state
from bot.texts import (
    ADMIN_COMMANDS,
    DEFAULT_LANGUAGE,
    GROUP_ADMIN_COMMANDS,
    GROUP_COMMANDS,
    LANGUAGES,
    PRIVATE_COMMANDS,
    command_menu,
)
from bot.webhook import WebServer

log = logging.getLogger(__name__)

AnyApplication = Application[Any, Any, Any, Any, Any, Any]
# What the bot asks Telegram for: messages, channel posts (a channel manages its
# subscriptions with commands posted there), and its own membership changes in chats.
ALLOWED_UPDATES = [Update.MESSAGE, Update.CHANNEL_POST, Update.MY_CHAT_MEMBER]


def build_application(settings: Settings, engine: Engine) -> AnyApplication:
    """The Application, talking to `settings.telegram_api_url`, with the engine shared."""
    if settings.telegram_token is None:
        raise ValueError("NEWSBOT_TELEGRAM_TOKEN is not set: get a token from @BotFather")
    hide_in_logs(settings.telegram_token.get_secret_value())
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_token.get_secret_value())
        .base_url(settings.telegram_api_url)
        .base_file_url(file_url_for(settings.telegram_api_url))
        .defaults(
            Defaults(
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        )
        # Throttles sends within Telegram's limits; a 429 pauses every send for its
        # retry_after, then the same request is tried again.
        .rate_limiter(
            AIORateLimiter(
                overall_max_rate=settings.rate_per_second,
                group_max_rate=settings.rate_per_group_minute,
                max_retries=settings.rate_retries,
            )
        )
        .concurrent_updates(PerChatUpdateProcessor(settings.concurrent_updates))
        .post_shutdown(_close_state)
    )
    if settings.webhook_url:
        builder = builder.updater(None)  # bot.webhook.WebServer feeds the update queue
    application = builder.build()
    state = open_state(settings)
    rounds.start_watermark(state)
    application.bot_data.update(
        {
            handlers.ENGINE: engine,
            handlers.SETTINGS: settings,
            handlers.STATE: state,
            handlers.QUOTA: QuestionQuota(settings.questions_per_minute),
            admin.REINDEX_LOCK: asyncio.Lock(),
            rounds.ROUND_LOCK: asyncio.Lock(),
        }
    )
    application.add_handlers(ordered_handlers())
    application.add_error_handler(handlers.on_error)
    rounds.schedule_rounds(application, settings)
    digest.schedule_digests(application)
    return application


async def _close_state(application: AnyApplication) -> None:
    application.bot_data[handlers.STATE].close()


def ordered_handlers() -> list[BaseHandler[Any, Any, Any]]:
    """PTB gives an update to the first handler whose filters match, so order matters:
    our commands first (a command is also text), then other commands (explained in
    private chats, ignored in groups), then questions, then what is not text. A group
    message or channel post that matches nothing here was not meant for the bot and is
    ignored."""
    new = filters.UpdateType.MESSAGE  # edits and channel posts are not questions
    posted = new | filters.UpdateType.CHANNEL_POST  # a channel manages its subscriptions
    private = filters.ChatType.PRIVATE
    groups = filters.ChatType.GROUPS
    command = filters.COMMAND
    return [
        CommandHandler("start", handlers.start, filters=new),
        CommandHandler("help", handlers.help_command, filters=new),
        CommandHandler("ask", handlers.ask_command, filters=new),
        CommandHandler("timeline", handlers.timeline_command, filters=new),
        CommandHandler("reindex", admin.reindex, filters=new),
        CommandHandler("stats", admin.stats, filters=new),
        CommandHandler("subscribe", subscriptions.subscribe, filters=posted),
        CommandHandler("unsubscribe", subscriptions.unsubscribe, filters=posted),
        CommandHandler("subscriptions", subscriptions.list_subscriptions, filters=posted),
        CommandHandler("digest", digest.digest_command, filters=posted),
        CommandHandler("feeds", feed_admin.list_feeds, filters=new),
        CommandHandler("addfeed", feed_admin.add_feed, filters=new),
        CommandHandler("ingest", feed_admin.ingest_page, filters=new),
        CommandHandler("remove", feed_admin.remove_article, filters=new),
        MessageHandler(new & private & command, handlers.unknown_command),
        MessageHandler(new & private & filters.TEXT, handlers.text_question),
        MessageHandler(
            new & groups & filters.TEXT & ~command & handlers.REPLIES_TO_BOT,
            handlers.text_question,
        ),
        MessageHandler(
            new & groups & filters.TEXT & ~command & handlers.MENTIONS_BOT,
            handlers.mention_question,
        ),
        MessageHandler(
            new
            & ~filters.TEXT
            & ~filters.StatusUpdate.ALL
            & (private | (groups & handlers.REPLIES_TO_BOT)),
            handlers.not_text,
        ),
        # A group upgraded to a supergroup changes id: its subscriptions follow.
        MessageHandler(filters.StatusUpdate.MIGRATE, subscriptions.chat_migrated),
        # The bot's own membership: removed or blocked pauses a chat's alerts.
        ChatMemberHandler(subscriptions.membership_changed, ChatMemberHandler.MY_CHAT_MEMBER),
    ]


async def set_command_menus(bot: Bot, admin_ids: list[int]) -> None:
    """Menus per scope and language: readers in private chats, groups, the groups'
    administrators (who manage subscriptions), and each bot admin's private chat (an admin
    who never opened a chat with the bot is skipped, and logged)."""
    for lang in LANGUAGES:
        code = None if lang == DEFAULT_LANGUAGE else lang
        menus: list[tuple[Any, tuple[str, ...]]] = [
            (BotCommandScopeAllPrivateChats(), PRIVATE_COMMANDS),
            (BotCommandScopeAllGroupChats(), GROUP_COMMANDS),
            (BotCommandScopeAllChatAdministrators(), GROUP_ADMIN_COMMANDS),
            *((BotCommandScopeChat(admin_id), ADMIN_COMMANDS) for admin_id in admin_ids),
        ]
        for scope, commands in menus:
            try:
                await bot.set_my_commands(
                    command_menu(commands, lang), scope=scope, language_code=code
                )
            except BadRequest as exc:
                log.warning("no command menu for %s: %s", scope.to_dict(), exc.message)


@dataclass
class RunningBot:
    """A started bot, for stop_bot."""

    application: AnyApplication
    server: WebServer | None
    port: int | None  # of the webhook/health server, None when it serves nothing


async def start_bot(application: AnyApplication, settings: Settings) -> RunningBot:
    """Initialise, set menus, serve HTTP, then receive updates by webhook or polling."""
    secret = None
    if settings.webhook_url:
        given = settings.webhook_secret
        secret = given.get_secret_value() if given else secrets.token_urlsafe(32)
    server = WebServer(
        application,
        webhook_path=settings.webhook_path if settings.webhook_url else None,
        secret=secret,
        health_path=settings.health_path,
    )
    running = RunningBot(application, server, None)
    await application.initialize()
    try:
        await set_command_menus(application.bot, settings.admin_ids)
        if server.serves_anything:
            running.port = server.start(settings.listen_host, settings.listen_port)
        await application.start()
        if settings.webhook_url:
            await application.bot.set_webhook(
                settings.webhook_url,
                secret_token=secret,
                allowed_updates=ALLOWED_UPDATES,
                drop_pending_updates=settings.drop_pending_updates,
            )
        elif application.updater is not None:
            await application.updater.start_polling(
                allowed_updates=ALLOWED_UPDATES,
                drop_pending_updates=settings.drop_pending_updates,
            )
    except BaseException:
        await stop_bot(running)
        raise
    log.info(
        "@%s is up (%s); HTTP on %s:%s",
        application.bot.username,
        "webhook" if settings.webhook_url else "polling",
        settings.listen_host,
        running.port,
    )
    return running


async def stop_bot(running: RunningBot) -> None:
    """Stop receiving, finish what is running, close the HTTP server, shut down."""
    application = running.application
    if application.updater is not None and application.updater.running:
        await application.updater.stop()
    if running.server is not None:
        await running.server.stop()
    if application.running:
        await application.stop()
    await application.shutdown()


def run(settings: Settings, engine: Engine) -> None:
    """Serve until SIGINT or SIGTERM."""
    asyncio.run(_serve_until_signalled(build_application(settings, engine), settings))


async def _serve_until_signalled(application: AnyApplication, settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running = await start_bot(application, settings)
    try:
        await stop.wait()
    finally:
        await stop_bot(running)


def file_url_for(api_url: str) -> str:
    """The file download URL of a Bot API server: `…/bot` becomes `…/file/bot`."""
    base = api_url.rstrip("/")
    return base[: -len("/bot")] + "/file/bot" if base.endswith("/bot") else base + "/file/bot"
