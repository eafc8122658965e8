"""Two bot processes on one database (issue 14): the real `newsbot run` twice, in webhook
mode behind a "load balancer" (this test, posting each update to one of them), against the
fake Bot API and a local news feed. They share one PostgreSQL (state and index), or, on one
machine, one data folder (the SQLite state file and the SQLite + FAISS index folder).

Every question is answered once; every matching story is alerted once per chat; a reindex
made by one replica is what the other answers from; and a replica killed (-9) in the middle
of an alert round, after one alert went out and while the next one waits on Telegram, loses
nothing and doubles nothing: the other takes the round over once the lease of the dead one
runs out, and sends the alert the dead one had claimed.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.config import Settings
from bot.jobs import NEWS
from bot.state import State, open_state
from tests.feed_server import FeedServer, serve
from tests.postgres import free_port

from .bot_harness import ADMIN_ID, SEED_QUESTION, SEED_QUOTE, engine_for, make_data_dir
from .fake_bot_api import FakeBotAPI, SentMessage, too_many_requests
from .news_wire import CHESS, FLOODS, SOURCE, TOUR, VOLCANO, Wire

WEBHOOK_URL = "https://bot.example.org/telegram/hook"
SECRET = "replica_secret-14"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
GROUP_TOPICS = ("floods in southern Germany", "étape du Tour de France")
PRIVATE_TOPIC = "volcanic eruption in Iceland"
LEASE_S = 2  # how long a dead replica keeps the round: short, to keep the test short
STUCK_S = 60  # Telegram's retry_after for the alert the killed replica is sending
CHERRIES_QUESTION = "How was the cherry harvest in Kent this summer?"
CHERRIES_QUOTE = "Fruit growers in Kent picked a record cherry harvest this summer"
CHERRIES = {
    "title": "Record cherry harvest in Kent",
    "text": f"{CHERRIES_QUOTE}, the county's farmers' union said on Thursday. A warm spring "
    "and few late frosts gave the orchards their best year since records began.",
    "date": "2024-07-11",
    "source": SOURCE,
    "url": "https://wire.test/cherries",
    "lang": "en",
}


class Replica:
    """One `newsbot run` process and the port its webhook listens on."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log = workdir / f"{name}.log"
        env = {**env, "NEWSBOT_LISTEN_PORT": str(self.port)}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "run"],
                env=env,
                cwd=workdir,  # no .env of the repository
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_until_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"{self.name} exited:\n{self.tail()}"
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not come up in {timeout} s:\n{self.tail()}")

    def post(self, update: dict[str, Any]) -> None:
        """Telegram (here: the load balancer in front of the replicas) delivers an update."""
        answer = httpx.post(
            f"http://127.0.0.1:{self.port}/telegram/hook",
            json=update,
            headers={SECRET_HEADER: SECRET},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture
def news(tmp_path: Path) -> Iterator[FeedServer]:
    with serve() as server:
        yield server


def replica_env(
    fake: FakeBotAPI, data: Path, cache_dir: Path, database_url: str | None, feed_url: str
) -> dict[str, str]:
    """The environment an operator would give every replica: the same but for the port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSBOT_")}
    env.update(
        NEWSBOT_DATA_DIR=str(data),
        NEWSBOT_CACHE_DIR=str(cache_dir),
        NEWSBOT_TELEGRAM_TOKEN=fake.token,
        NEWSBOT_TELEGRAM_API_URL=fake.base_url,
        NEWSBOT_WEBHOOK_URL=WEBHOOK_URL,
        NEWSBOT_WEBHOOK_SECRET=SECRET,
        NEWSBOT_LISTEN_HOST="127.0.0.1",
        NEWSBOT_ADMIN_IDS=json.dumps([ADMIN_ID]),
        NEWSBOT_FEEDS=json.dumps([{"url": feed_url, "source": SOURCE}]),
        NEWSBOT_ALLOW_PRIVATE_FEEDS="true",
        NEWSBOT_FETCH_TIMEOUT="5",
        NEWSBOT_POLL_INTERVAL_MINUTES="0.02",  # a round every 1.2 s
        NEWSBOT_JOB_LEASE_SECONDS=str(LEASE_S),
        NEWSBOT_PROGRESS_INTERVAL_S="0",
        NEWSBOT_LOG_LEVEL="INFO",
    )
    if database_url is not None:
        env["NEWSBOT_DATABASE_URL"] = database_url
    return env


def alerts_in(fake: FakeBotAPI, chat: dict[str, Any]) -> list[str]:
    """The titles the bot alerted `chat` about, in order, repeats included."""
    return [m.text.split("\n")[1].split(" — ")[0][3:] for m in _alerts(fake, chat)]


def _alerts(fake: FakeBotAPI, chat: dict[str, Any]) -> list[SentMessage]:
    return [m for m in fake.sent_messages(chat) if m.text.startswith("🔔")]


def replies(fake: FakeBotAPI, chat: dict[str, Any], message: dict[str, Any]) -> list[SentMessage]:
    return [m for m in fake.sent_messages(chat) if m.reply_to == message["message_id"]]


def round_holder(state: State) -> int | None:
    """The pid of the replica holding the round's job now (its lease names host:pid:…)."""
    lease = state.job_lease(NEWS)
    return int(lease.holder.split(":")[1]) if lease else None


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_two_replicas_answer_once_alert_once_follow_a_reindex_and_survive_a_kill(
    backend: str,
    request: pytest.FixtureRequest,
    fake_api: FakeBotAPI,
    news: FeedServer,
    tmp_path: Path,
    cache_dir: Path,
    embedder: Any,
) -> None:
    url = request.getfixturevalue("database_url") if backend == "postgres" else None
    data = make_data_dir(tmp_path / "data")
    engine_for(data, cache_dir, embedder, database_url=url).close()  # the index, built once
    state = open_state(Settings(_env_file=None, data_dir=data, database_url=url))
    wire = Wire(news)
    env = replica_env(fake_api, data, cache_dir, url, wire.url)
    replicas = [Replica(f"replica-{n}", env, tmp_path) for n in (0, 1)]
    update_ids = itertools.count(1)

    def deliver(n: int, message: dict[str, Any]) -> dict[str, Any]:
        replicas[n % 2].post({"update_id": next(update_ids), "message": message})
        return message

    try:
        for replica in replicas:
            replica.wait_until_up(120)

        # Subscriptions, through either replica.
        ann, cy, root = (
            fake_api.user("Ann"),
            fake_api.user("Cy"),
            fake_api.user("Root", user_id=ADMIN_ID),
        )
        group = fake_api.group("Newsroom")
        fake_api.set_admins(group, creator=ann)
        private, admin_chat = fake_api.private_chat(cy), fake_api.private_chat(root)
        asked = [
            deliver(0, fake_api.user_says(group, ann, f"/subscribe@NewsTestBot {GROUP_TOPICS[0]}")),
            deliver(1, fake_api.user_says(group, ann, f"/subscribe@NewsTestBot {GROUP_TOPICS[1]}")),
            deliver(0, fake_api.user_says(private, cy, f"/subscribe {PRIVATE_TOPIC}")),
        ]
        for chat, message in zip((group, group, private), asked, strict=True):
            fake_api.wait_for(lambda c=chat, m=message: replies(fake_api, c, m), 30, "subscribed")

        # Questions from eight readers, spread over both replicas while rounds run.
        readers = [fake_api.user(f"Reader{n}") for n in range(8)]
        chats = [fake_api.private_chat(reader) for reader in readers]
        questions = [
            (chat, deliver(n, fake_api.user_says(chat, reader, SEED_QUESTION)))
            for n, (chat, reader) in enumerate(zip(chats, readers, strict=True))
        ]
        wire.publish("floods-1", FLOODS)
        wire.publish("chess-1", CHESS)
        fake_api.wait_for(lambda: alerts_in(fake_api, group), 60, "the floods alert")
        for chat, message in questions:
            fake_api.wait_for(lambda c=chat, m=message: replies(fake_api, c, m), 60, "answers")

        # A reindex by replica 0 (a new article file is in articles/): replica 1 answers from
        # the new index.
        (data / "articles" / "cherries.jsonl").write_text(json.dumps(CHERRIES) + "\n")
        before = deliver(1, fake_api.user_says(admin_chat, root, CHERRIES_QUESTION))
        fake_api.wait_for(lambda: replies(fake_api, admin_chat, before), 30, "an answer")
        assert CHERRIES_QUOTE not in replies(fake_api, admin_chat, before)[0].text
        deliver(0, fake_api.user_says(admin_chat, root, "/reindex"))
        fake_api.wait_for(
            lambda: any("Reindex done" in m.text for m in fake_api.sent_messages(admin_chat)),
            90,
            "the reindex",
        )
        after = deliver(1, fake_api.user_says(admin_chat, root, CHERRIES_QUESTION))
        fake_api.wait_for(lambda: replies(fake_api, admin_chat, after), 30, "an answer")
        assert CHERRIES_QUOTE in replies(fake_api, admin_chat, after)[0].text

        # A round that alerts the group, then gets stuck on the private chat's alert (429):
        # whoever runs it keeps the job (its lease renewed), so the other replica neither
        # runs the round nor takes the claim over while it lives ...
        fake_api.fail_sends_to(private, too_many_requests(STUCK_S))
        wire.publish_together({"tour-1": TOUR, "volcano-1": VOLCANO})  # in one round
        stuck = fake_api.wait_for(
            lambda: [
                c for c in fake_api.calls("sendMessage")
                if c.status == 429 and str(c.params.get("chat_id")) == str(private["id"])
            ],
            60,
            "the stuck alert",
        )  # fmt: skip
        assert stuck and alerts_in(fake_api, group) == [FLOODS.title, TOUR.title]
        holder = round_holder(state)
        (killed,) = [r for r in replicas if r.process.pid == holder]
        time.sleep(2 * LEASE_S)
        assert alerts_in(fake_api, private) == []
        assert round_holder(state) == holder

        # ... and when it is killed, the other takes the round over once the lease has run
        # out, and sends the alert the dead one had claimed: nothing lost, nothing doubled.
        killed.kill()
        fake_api.wait_for(lambda: alerts_in(fake_api, private), 30, "the taken-over alert")
        time.sleep(LEASE_S)  # more rounds: nothing more is sent
        (survivor,) = [r for r in replicas if r is not killed]
        assert survivor.process.poll() is None, survivor.tail()
    finally:
        for replica in replicas:
            replica.stop()
        sent = state.alerts()
        state.close()

    assert alerts_in(fake_api, group) == [FLOODS.title, TOUR.title]
    assert alerts_in(fake_api, private) == [VOLCANO.title]
    for chat, message in questions:
        (answer,) = replies(fake_api, chat, message)
        assert SEED_QUOTE in answer.text
    assert len(replies(fake_api, admin_chat, after)) == 1
    assert sorted((a.chat_id, a.delivered) for a in sent) == [
        (group["id"], True),
        (group["id"], True),
        (private["id"], True),
    ]
