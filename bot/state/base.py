"""The bot's own state, whatever holds it: feeds, subscriptions, alerts sent, watermarks.

The statements live here, once, in the SQL that SQLite and PostgreSQL both speak (`?`
placeholders, ON CONFLICT, COALESCE); a backend only supplies connections, transactions
and its schema, so both behave the same by construction and one test suite runs on both.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

Row = dict[str, Any]
# A reply to an answer older than this is a new question (its story is not kept).
ANSWERS_KEPT_S = 30 * 86400


@dataclass(frozen=True)
class Subscription:
    id: int
    chat_id: int
    chat_type: str
    topic: str
    paused: bool
    created_at: float = 0.0


@dataclass(frozen=True)
class FeedRecord:
    url: str
    source: str | None
    lang: str | None
    etag: str | None
    last_modified: str | None
    last_polled: float | None
    last_ok: float | None
    last_error: str | None
    articles: int


@dataclass(frozen=True)
class SentAlert:
    """A story claimed for a chat (sent, or being sent: `delivered` once Telegram took it)."""

    chat_id: int
    story_id: str
    article_id: str
    subscription_id: int | None
    score: float | None
    sent_at: float
    delivered: bool
    claimed_by: str | None = None  # the State (replica) whose claim stands


@dataclass(frozen=True)
class JobLease:
    """Who runs a recurring job (the feed poll and alert round) until when, in the
    database's clock (seconds since the epoch)."""

    job: str
    holder: str
    expires_at: float


def replica_id() -> str:
    """A name for one State in leases and claims: host and process, to find it in logs,
    and a random part, so a restarted process (same pid in a container) is another one."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class SentAnswer:
    """An answer the bot sent: its question and the articles of its story (cited first)."""

    question: str
    article_ids: tuple[str, ...]
    sent_at: float


@dataclass(frozen=True)
class DigestSchedule:
    """A chat's digests (bot/digest.py): its daily time, and the last digest posted."""

    chat_id: int
    chat_type: str
    daily_at: str | None  # "HH:MM" in `time_zone`; None: digests on demand only
    time_zone: str
    lang: str | None  # of who set the daily digest: the language it is posted in
    last_at: float | None  # what the last digest covered until: the next covers what came after
    last_day: str | None  # the local day (ISO) of the last daily digest, claimed before posting


class Transaction(Protocol):
    """Statements run in one transaction of a backend."""

    def execute(self, sql: str, args: Sequence[object] = ()) -> int:
        """Run a statement; the number of rows it changed."""
        ...

    def fetch(self, sql: str, args: Sequence[object] = ()) -> list[Row]: ...


class State(ABC):
    """The state's operations; `bot.state.open_state` picks the backend from the settings.
    Safe to share between threads; every write is one short transaction. Each State is one
    replica to the others: `holder` names it in job leases and alert claims."""

    def __init__(self) -> None:
        self.holder = replica_id()

    def _now(self, tx: Transaction) -> float:
        """The clock leases are measured in: this machine's for a file; a server's own for
        a database that replicas on several machines share (their clocks may differ)."""
        return time.time()

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Transaction]:
        """A transaction, committed when the block ends, rolled back if it raises."""

    @abstractmethod
    def _fetch(self, sql: str, args: Sequence[object] = ()) -> list[Row]:
        """Rows of one read."""

    @abstractmethod
    def close(self) -> None: ...

    # --- watermarks --------------------------------------------------------------------

    def get(self, key: str, default: str | None = None) -> str | None:
        rows = self._fetch("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0]["value"]) if rows else default

    def put(self, key: str, value: str) -> None:
        with self._transaction() as tx:
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # --- subscriptions -----------------------------------------------------------------

    def subscribe(self, chat_id: int, chat_type: str, topic: str, user_id: int | None) -> bool:
        """Add a topic to a chat; False when the chat already follows it. Resumes the chat."""
        with self._transaction() as tx:
            added = tx.execute(
                "INSERT INTO subscriptions (chat_id, chat_type, topic, created_by, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (chat_id, topic) DO NOTHING",
                (chat_id, chat_type, topic, user_id, time.time()),
            )
            tx.execute("UPDATE subscriptions SET paused = FALSE WHERE chat_id = ?", (chat_id,))
            return added == 1

    def unsubscribe(self, chat_id: int, topic: str | None) -> int:
        """Remove one topic (by text, without regard to case, or by list number) or, with
        None, all; returns how many."""
        with self._transaction() as tx:
            if topic is None:
                return tx.execute("DELETE FROM subscriptions WHERE chat_id = ?", (chat_id,))
            if topic.isdigit():
                if int(topic) < 1:
                    return 0
                return tx.execute(
                    "DELETE FROM subscriptions WHERE id = (SELECT id FROM subscriptions "
                    "WHERE chat_id = ? ORDER BY id LIMIT 1 OFFSET ?)",
                    (chat_id, int(topic) - 1),
                )
            rows = tx.fetch("SELECT id, topic FROM subscriptions WHERE chat_id = ?", (chat_id,))
            folded = topic.casefold()  # in Python: SQLite's lower() knows only ASCII
            ids = [r["id"] for r in rows if str(r["topic"]).casefold() == folded]
            return sum(tx.execute("DELETE FROM subscriptions WHERE id = ?", (i,)) for i in ids)

    def subscriptions(self, chat_id: int | None = None) -> list[Subscription]:
        sql = "SELECT id, chat_id, chat_type, topic, paused, created_at FROM subscriptions"
        args: tuple[object, ...] = ()
        if chat_id is not None:
            sql += " WHERE chat_id = ?"
            args = (chat_id,)
        return [
            Subscription(
                r["id"], r["chat_id"], r["chat_type"], r["topic"], bool(r["paused"]),
                r["created_at"],
            )
            for r in self._fetch(sql + " ORDER BY id", args)
        ]  # fmt: skip

    def pause_chat(self, chat_id: int) -> None:
        """The chat blocked or removed the bot: keep its subscriptions but stop sending."""
        with self._transaction() as tx:
            tx.execute("UPDATE subscriptions SET paused = TRUE WHERE chat_id = ?", (chat_id,))

    def resume_chat(self, chat_id: int) -> None:
        """The bot is back in the chat (re-added, unblocked): send its alerts again."""
        with self._transaction() as tx:
            tx.execute("UPDATE subscriptions SET paused = FALSE WHERE chat_id = ?", (chat_id,))

    def migrate_chat(self, old_id: int, new_id: int) -> int:
        """A group became a supergroup with a new id: its subscriptions and the alerts it
        had move along (the ones the new chat has already win). Returns the subscriptions
        moved; calling it again is harmless."""
        with self._transaction() as tx:
            moved = tx.execute(
                "UPDATE subscriptions SET chat_id = ?, chat_type = 'supergroup' "
                "WHERE chat_id = ? AND topic NOT IN "
                "(SELECT topic FROM subscriptions WHERE chat_id = ?)",
                (new_id, old_id, new_id),
            )
            tx.execute("DELETE FROM subscriptions WHERE chat_id = ?", (old_id,))
            tx.execute(
                "UPDATE alerts_sent SET chat_id = ? WHERE chat_id = ? AND story_id NOT IN "
                "(SELECT story_id FROM alerts_sent WHERE chat_id = ?)",
                (new_id, old_id, new_id),
            )
            tx.execute("DELETE FROM alerts_sent WHERE chat_id = ?", (old_id,))
            tx.execute(
                "UPDATE digests SET chat_id = ?, chat_type = 'supergroup' WHERE chat_id = ? "
                "AND NOT EXISTS (SELECT 1 FROM digests WHERE chat_id = ?)",
                (new_id, old_id, new_id),
            )
            tx.execute("DELETE FROM digests WHERE chat_id = ?", (old_id,))
            return moved

    # --- alerts ------------------------------------------------------------------------

    def claim_alert(
        self,
        chat_id: int,
        story_id: str,
        article_id: str,
        subscription_id: int,
        score: float,
        job: str | None = None,
    ) -> bool:
        """Record an alert before sending it; False when the chat already had this story.
        The primary key (chat, story) decides, across restarts and bot processes sharing one
        database. A claim made in a `job` this State holds (see acquire_job) stays this
        replica's while its lease runs; left undelivered after the lease ended (the replica
        was killed or stopped between claiming and Telegram taking the message), it is
        taken over by the next claim: nothing lost. A claim outside a job is final."""
        with self._transaction() as tx:
            now = self._now(tx)
            claimed = tx.execute(
                "INSERT INTO alerts_sent (chat_id, story_id, article_id, subscription_id, "
                "score, sent_at, claimed_by) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (chat_id, story_id) DO UPDATE SET "
                "article_id = excluded.article_id, subscription_id = excluded.subscription_id, "
                "score = excluded.score, sent_at = excluded.sent_at, "
                "claimed_by = excluded.claimed_by "
                "WHERE alerts_sent.delivered = FALSE AND alerts_sent.claimed_by IS NOT NULL "
                "AND alerts_sent.claimed_by <> ? "
                "AND NOT EXISTS (SELECT 1 FROM job_leases WHERE "
                "job_leases.holder = alerts_sent.claimed_by AND job_leases.expires_at > ?)",
                (chat_id, story_id, article_id, subscription_id, score, time.time(),
                 self.holder if job else None, self.holder, now),
            )  # fmt: skip
            return claimed == 1

    def mark_delivered(self, chat_id: int, story_id: str) -> None:
        with self._transaction() as tx:
            tx.execute(
                "UPDATE alerts_sent SET delivered = TRUE WHERE chat_id = ? AND story_id = ?",
                (chat_id, story_id),
            )

    def alerts(self, chat_id: int | None = None) -> list[SentAlert]:
        sql = (
            "SELECT chat_id, story_id, article_id, subscription_id, score, sent_at, delivered, "
            "claimed_by FROM alerts_sent"
        )
        args: tuple[object, ...] = ()
        if chat_id is not None:
            sql += " WHERE chat_id = ?"
            args = (chat_id,)
        return [
            SentAlert(
                r["chat_id"], r["story_id"], r["article_id"], r["subscription_id"], r["score"],
                r["sent_at"], bool(r["delivered"]), r["claimed_by"],
            )
            for r in self._fetch(sql + " ORDER BY sent_at, story_id", args)
        ]  # fmt: skip

    # --- digests -----------------------------------------------------------------------

    _DIGEST_COLUMNS = (
        "chat_id, chat_type, daily_at, time_zone, lang, last_at, last_day FROM digests"
    )

    def digest_schedule(self, chat_id: int) -> DigestSchedule | None:
        rows = self._fetch(f"SELECT {self._DIGEST_COLUMNS} WHERE chat_id = ?", (chat_id,))
        return DigestSchedule(**rows[0]) if rows else None

    def daily_digests(self) -> list[DigestSchedule]:
        """The chats with a daily digest."""
        rows = self._fetch(
            f"SELECT {self._DIGEST_COLUMNS} WHERE daily_at IS NOT NULL ORDER BY chat_id"
        )
        return [DigestSchedule(**r) for r in rows]

    def set_daily_digest(
        self,
        chat_id: int,
        chat_type: str,
        daily_at: str,
        time_zone: str,
        lang: str | None,
        done_day: str | None,
    ) -> None:
        """Post the chat's digest every day at `daily_at` in `time_zone`. `done_day`: a
        local day that must not get one any more (today, when the time has passed)."""
        with self._transaction() as tx:
            tx.execute(
                "INSERT INTO digests (chat_id, chat_type, daily_at, time_zone, lang, last_day) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (chat_id) DO UPDATE SET "
                "chat_type = excluded.chat_type, daily_at = excluded.daily_at, "
                "time_zone = excluded.time_zone, lang = excluded.lang, "
                "last_day = COALESCE(excluded.last_day, digests.last_day)",
                (chat_id, chat_type, daily_at, time_zone, lang, done_day),
            )

    def stop_daily_digest(self, chat_id: int) -> bool:
        """No more daily digests in the chat; False when it had none."""
        with self._transaction() as tx:
            stopped = tx.execute(
                "UPDATE digests SET daily_at = NULL WHERE chat_id = ? AND daily_at IS NOT NULL",
                (chat_id,),
            )
            return stopped == 1

    def claim_daily_digest(self, chat_id: int, day: str) -> bool:
        """Record the day's digest before posting it; False when the chat already had that
        day's (at most once a day, across restarts and processes sharing the database)."""
        with self._transaction() as tx:
            claimed = tx.execute(
                "UPDATE digests SET last_day = ? WHERE chat_id = ? AND daily_at IS NOT NULL "
                "AND (last_day IS NULL OR last_day <> ?)",
                (day, chat_id, day),
            )
            return claimed == 1

    def record_digest(self, chat_id: int, chat_type: str, at: float) -> None:
        """A digest covering everything indexed until `at` was posted in the chat."""
        with self._transaction() as tx:
            tx.execute(
                "INSERT INTO digests (chat_id, chat_type, last_at) VALUES (?, ?, ?) "
                "ON CONFLICT (chat_id) DO UPDATE SET last_at = excluded.last_at",
                (chat_id, chat_type, at),
            )

    # --- jobs --------------------------------------------------------------------------

    def acquire_job(self, job: str, seconds: float) -> bool:
        """Take `job` for `seconds` (or extend this State's own lease): True unless another
        replica's lease on it is still running. A replica that dies holding it blocks the
        job for at most `seconds`; one that stops releases it."""
        with self._transaction() as tx:
            now = self._now(tx)
            return (
                tx.execute(
                    "INSERT INTO job_leases (job, holder, expires_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, "
                    "expires_at = excluded.expires_at "
                    "WHERE job_leases.holder = excluded.holder OR job_leases.expires_at <= ?",
                    (job, self.holder, now + seconds, now),
                )
                == 1
            )

    def release_job(self, job: str) -> None:
        """Give `job` up (if this State holds it), so another replica may take it at once."""
        with self._transaction() as tx:
            tx.execute("DELETE FROM job_leases WHERE job = ? AND holder = ?", (job, self.holder))

    def job_lease(self, job: str) -> JobLease | None:
        """The lease on `job`, running or expired; None when nobody took it or it was given up."""
        rows = self._fetch("SELECT job, holder, expires_at FROM job_leases WHERE job = ?", (job,))
        return JobLease(rows[0]["job"], rows[0]["holder"], rows[0]["expires_at"]) if rows else None

    # --- feeds -------------------------------------------------------------------------

    def add_feed(self, url: str, source: str | None, lang: str | None, user_id: int | None) -> bool:
        with self._transaction() as tx:
            added = tx.execute(
                "INSERT INTO feeds (url, source, lang, added_by, added_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (url) DO NOTHING",
                (url, source, lang, user_id, time.time()),
            )
            return added == 1

    def feeds(self) -> list[FeedRecord]:
        return [
            FeedRecord(
                r["url"], r["source"], r["lang"], r["etag"], r["last_modified"],
                r["last_polled"], r["last_ok"], r["last_error"], r["articles"],
            )
            for r in self._fetch(
                "SELECT url, source, lang, etag, last_modified, last_polled, last_ok, "
                "last_error, articles FROM feeds ORDER BY added_at, url"
            )
        ]  # fmt: skip

    def record_poll(
        self,
        url: str,
        *,
        etag: str | None,
        last_modified: str | None,
        error: str | None,
        new_articles: int,
    ) -> None:
        now = time.time()
        with self._transaction() as tx:
            tx.execute(
                "UPDATE feeds SET etag = ?, last_modified = ?, last_polled = ?, "
                "last_error = ?, last_ok = COALESCE(?, last_ok), articles = articles + ? "
                "WHERE url = ?",
                (etag, last_modified, now, error, now if error is None else None, new_articles,
                 url),
            )  # fmt: skip

    # --- answers (follow-ups) ----------------------------------------------------------

    def remember_answer(
        self, chat_id: int, message_ids: Sequence[int], question: str, article_ids: Sequence[str]
    ) -> None:
        """Keep, for each message of one answer, what a reply to it follows up: the question
        and its story's articles. Answers older than ANSWERS_KEPT_S are forgotten here."""
        now = time.time()
        listed = json.dumps(list(article_ids))
        with self._transaction() as tx:
            tx.execute("DELETE FROM answers_sent WHERE sent_at < ?", (now - ANSWERS_KEPT_S,))
            for message_id in message_ids:
                tx.execute(
                    "INSERT INTO answers_sent (chat_id, message_id, question, article_ids, "
                    "sent_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (chat_id, message_id) DO UPDATE "
                    "SET question = excluded.question, article_ids = excluded.article_ids, "
                    "sent_at = excluded.sent_at",
                    (chat_id, message_id, question, listed, now),
                )

    def sent_answer(self, chat_id: int, message_id: int) -> SentAnswer | None:
        """What the answer (or alert) in this message was about; None for another message
        (a help text, a digest) or an answer forgotten since."""
        rows = self._fetch(
            "SELECT question, article_ids, sent_at FROM answers_sent "
            "WHERE chat_id = ? AND message_id = ?",
            (chat_id, message_id),
        )
        if not rows:
            return None
        ids = tuple(str(a) for a in json.loads(rows[0]["article_ids"]))
        return SentAnswer(str(rows[0]["question"]), ids, float(rows[0]["sent_at"]))


def pending_migrations(
    current: int, migrations: Sequence[str], where: str
) -> Iterator[tuple[int, str]]:
    """The migrations after version `current`, numbered from 1; an error for a schema newer
    than this code knows (a newer newsbot wrote it: running an older one would corrupt it)."""
    from index.store_base import StoreError

    if current > len(migrations):
        raise StoreError(
            f"the bot's state in {where} has schema version {current}, newer than this "
            f"newsbot knows ({len(migrations)}): run the newsbot version that wrote it"
        )
    for version in range(current + 1, len(migrations) + 1):
        yield version, migrations[version - 1]
