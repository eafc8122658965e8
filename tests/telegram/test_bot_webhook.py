"""Webhook mode and the health endpoint: the bot's own HTTP server checks Telegram's secret
token header, feeds accepted updates to the Application, and answers health probes (also in
polling mode, for `newsbot healthcheck`)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bot.cli import main
from bot.engine import Engine

from .bot_harness import (
    SEED_QUESTION,
    SEED_QUOTE,
    running_bot,
    wait_for_replies,
)
from .fake_bot_api import FakeBotAPI

WEBHOOK_URL = "https://bot.example.org/telegram/hook"
SECRET = "s3cret_Token-42"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def test_webhook_accepts_only_the_right_secret_and_answers(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    ann = fake_api.user("Ann")
    chat = fake_api.private_chat(ann)

    async def scenario() -> None:
        async with (
            running_bot(fake_api, engine, webhook_url=WEBHOOK_URL, webhook_secret=SECRET) as bot,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{bot.port}") as http,
        ):
            assert fake_api.webhook["url"] == WEBHOOK_URL
            assert fake_api.webhook["secret_token"] == SECRET
            message = fake_api.user_says(chat, ann, SEED_QUESTION)
            update = {"update_id": 7, "message": message}

            async def post(headers: dict[str, str]) -> int:
                answer = await http.post("/telegram/hook", json=update, headers=headers)
                return answer.status_code

            assert await post({}) == 403
            assert await post({SECRET_HEADER: "guess"}) == 403
            assert await post({SECRET_HEADER: SECRET + "x"}) == 403
            await asyncio.sleep(0.5)
            assert fake_api.sent_messages(chat) == []  # refused updates did nothing

            not_an_update = await http.post(
                "/telegram/hook", content=b"{oops", headers={SECRET_HEADER: SECRET}
            )
            assert not_an_update.status_code == 400
            assert await post({SECRET_HEADER: SECRET}) == 200
            (answer,) = await wait_for_replies(fake_api, chat, message)
            assert SEED_QUOTE in answer.text

            health = await http.get("/healthz")
            assert (health.status_code, health.json()) == (200, {"ok": True, "mode": "webhook"})
            assert (await http.get("/elsewhere")).status_code == 404
        assert fake_api.calls("getUpdates") == []  # webhook mode never polls

    asyncio.run(scenario())


def test_webhook_without_a_configured_secret_gets_a_random_one(
    fake_api: FakeBotAPI, engine: Engine
) -> None:
    async def scenario() -> None:
        async with running_bot(fake_api, engine, webhook_url=WEBHOOK_URL, webhook_secret=None):
            secret = fake_api.webhook["secret_token"]
            assert len(secret) >= 32 and secret != SECRET

    asyncio.run(scenario())


def test_polling_mode_serves_health_for_the_healthcheck_command(
    fake_api: FakeBotAPI, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSBOT_LISTEN_HOST", "127.0.0.1")

    async def scenario() -> int:
        async with running_bot(fake_api, engine) as bot:
            monkeypatch.setenv("NEWSBOT_LISTEN_PORT", str(bot.port))
            async with httpx.AsyncClient() as http:
                health = await http.get(f"http://127.0.0.1:{bot.port}/healthz")
                assert health.json() == {"ok": True, "mode": "polling"}
                assert (
                    await http.post(f"http://127.0.0.1:{bot.port}/telegram/hook")
                ).status_code == 404
            assert await asyncio.to_thread(main, ["healthcheck"]) == 0
        return await asyncio.to_thread(main, ["healthcheck", "--timeout", "1"])

    assert asyncio.run(scenario()) == 1  # nothing listens any more
