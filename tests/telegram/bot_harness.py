"""Running the real bot (Application, handlers, engine, embedding model) against the fake
Bot API server: data dirs, settings, and a context manager that starts and stops the bot."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from bot.app import RunningBot, build_application, start_bot, stop_bot
from bot.config import Settings
from bot.engine import Engine

from .fake_bot_api import FakeBotAPI, SentMessage

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "data" / "articles" / "000_15beeeafbb7eb3ba.txt"
SEED_QUOTE = "Aucun accord n'a été signé et il n'était pas prévu d'en signer"
SEED_QUESTION = "who denied signing an accord?"
OFF_TOPIC_QUESTION = "Who won the 2018 football World Cup?"
ADMIN_ID = 4242


def make_data_dir(root: Path, records: Iterable[Mapping[str, Any]] = (), seed: bool = True) -> Path:
    """A data dir whose articles/ holds the seed article and `records` as one JSONL file."""
    articles = root / "articles"
    articles.mkdir(parents=True)
    if seed:
        shutil.copy(SEED, articles / SEED.name)
    lines = [json.dumps(dict(r), ensure_ascii=False) for r in records]
    if lines:
        (articles / "extra.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def engine_for(data_dir: Path, cache_dir: Path, embedder: Any, **overrides: Any) -> Engine:
    """An Engine on `data_dir` with its articles ingested, sharing the session's model."""
    settings = Settings(_env_file=None, data_dir=data_dir, cache_dir=cache_dir, **overrides)
    engine = Engine(settings, embedder=embedder)
    engine.ingest([data_dir / "articles"])
    return engine


@contextmanager
def engine_on_backend(
    request: Any,
    root: Path,
    cache_dir: Path,
    embedder: Any,
    records: Iterable[Mapping[str, Any]] = (),
) -> Iterator[Engine]:
    """An engine over the seed article and `records` in `root`, with its index and state in
    files (the fixture's param "sqlite") or in a fresh PostgreSQL database ("postgres")."""
    url = (
        request.getfixturevalue("postgres").new_database() if request.param == "postgres" else None
    )
    engine = engine_for(make_data_dir(root, records), cache_dir, embedder, database_url=url)
    try:
        yield engine
    finally:
        engine.close()


def bot_settings(fake: FakeBotAPI, engine: Engine, **overrides: Any) -> Settings:
    """The engine's settings plus what the bot needs to talk to `fake`."""
    values: dict[str, Any] = {
        "telegram_token": fake.token,
        "telegram_api_url": fake.base_url,
        "admin_ids": [ADMIN_ID],
        "listen_host": "127.0.0.1",
        "listen_port": 0,
        "progress_interval_s": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **{**engine.settings.model_dump(), **values})


@asynccontextmanager
async def running_bot(
    fake: FakeBotAPI, engine: Engine, **overrides: Any
) -> AsyncIterator[RunningBot]:
    """The real Application, started as `newsbot run` starts it, stopped on exit."""
    settings = bot_settings(fake, engine, **overrides)
    running = await start_bot(build_application(settings, engine), settings)
    try:
        yield running
    finally:
        await stop_bot(running)


def replies_to(
    fake: FakeBotAPI, chat: Mapping[str, Any], message: Mapping[str, Any]
) -> list[SentMessage]:
    """The bot's messages in `chat` that reply to `message`."""
    return [m for m in fake.sent_messages(chat) if m.reply_to == message["message_id"]]


async def wait_for_replies(
    fake: FakeBotAPI, chat: Mapping[str, Any], message: Mapping[str, Any], count: int = 1,
    timeout: float = 20.0,
) -> list[SentMessage]:  # fmt: skip
    """Wait until the bot has sent `count` replies to `message`."""
    return await fake.wait_for_async(
        lambda: (found := replies_to(fake, chat, message)) and len(found) >= count and found,
        timeout,
        f"{count} repl(ies) to message {message['message_id']} in chat {chat['id']}",
    )
