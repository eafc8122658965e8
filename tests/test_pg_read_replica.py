"""Questions read the index from a streaming read replica (NEWSBOT_DATABASE_READ_URL), and
from the primary while the replica cannot answer them. Real servers: the tests' PostgreSQL
and its replica (tests/postgres.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from pydantic import SecretStr, ValidationError

from bot.config import Settings
from bot.engine import build_retriever, open_index
from index.articles import Article
from index.backend import IndexStore
from index.pg_store import PgStore
from tests.postgres import PostgresServer, free_port
from tests.test_store import _other_articles

QUESTION = "Who was elected mayor of the island of Pitcairn?"
PITCAIRN = Article(
    title="Pitcairn has a new mayor",
    text="The islanders of Pitcairn elected Charlene Warren-Peu as their mayor on Tuesday, "
    "the first woman to lead the island's council of forty-seven people.",
    source="Island Wire",
    date="2024-03-05",
)


def _top_titles(store: IndexStore, embedder) -> list[str]:  # type: ignore[no-untyped-def]
    hits = build_retriever(Settings(_env_file=None), store, embedder).search(QUESTION)
    return [h.passage.article.title for h in hits]


def _eventually(check: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the replica never caught up"
        time.sleep(0.1)


@contextmanager
def _replay_paused(replica: PostgresServer) -> Iterator[None]:
    """The replica keeps serving reads but applies none of the primary's new writes."""
    with psycopg.connect(replica.url(), autocommit=True) as db:
        db.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            db.execute("SELECT pg_wal_replay_resume()")


def _replica_has(replica_url: str) -> bool:
    try:
        with psycopg.connect(replica_url, connect_timeout=2) as db:
            return db.execute("SELECT count(*) FROM articles").fetchone() != (0,)
    except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
        return False


def test_questions_read_the_replica_and_find_a_write_once_it_is_replayed(
    postgres: PostgresServer, postgres_replica: PostgresServer, embedder
) -> None:  # type: ignore[no-untyped-def]
    url = postgres.new_database()
    replica_url = postgres_replica.url(url.rsplit("/", 1)[1])
    primary = PgStore(url, embedder.model_id, embedder.dim)
    primary.add_articles(_other_articles(3), embedder)
    _eventually(lambda: _replica_has(replica_url))
    settings = Settings(
        _env_file=None,
        database_url=SecretStr(url),
        database_read_url=SecretStr(replica_url),
    )
    reader = open_index(settings, embedder)  # what the bot opens with both settings
    try:
        assert isinstance(reader, PgStore) and reader.reads_from_replica
        with _replay_paused(postgres_replica):
            primary.add_articles([PITCAIRN], embedder)
            # The primary has it; the replica, replaying nothing, does not: questions are
            # answered from the replica.
            assert _top_titles(primary, embedder)[0] == PITCAIRN.title
            assert PITCAIRN.title not in _top_titles(reader, embedder)
            # What the alert round reads of a story a poll has just written comes from the
            # primary: a replica behind it would skip the story for good.
            passages, vectors = reader.article_passages(PITCAIRN.id)
            assert [p.article.title for p in passages] == [PITCAIRN.title] and vectors.any()
        _eventually(lambda: _top_titles(reader, embedder)[:1] == [PITCAIRN.title])
        assert reader.reads_from_replica
        # The writes never went to the replica (it refuses them); the primary holds one copy.
        assert primary.stats().articles == 4
    finally:
        reader.close()
        primary.close()


def test_reads_go_to_the_primary_while_the_replica_is_down(
    database_url: str, embedder, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    down = f"postgresql://newsbot@127.0.0.1:{free_port()}/newsbot"  # nothing listens there
    primary = PgStore(database_url, embedder.model_id, embedder.dim)
    primary.add_articles([PITCAIRN, *_other_articles(2)], embedder)
    reader = PgStore(database_url, embedder.model_id, embedder.dim, read_url=down)  # starts
    try:
        with caplog.at_level(logging.WARNING, logger="index.pg_store"):
            assert _top_titles(reader, embedder)[0] == PITCAIRN.title
        assert not reader.reads_from_replica
        assert any("read replica" in r.getMessage() for r in caplog.records)
        # Within REPLICA_RETRY_S the replica is not tried again: no new warning.
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="index.pg_store"):
            assert _top_titles(reader, embedder)[0] == PITCAIRN.title
        assert not caplog.records
    finally:
        reader.close()
        primary.close()


def test_a_read_replica_needs_its_primary_and_a_postgres_url() -> None:
    with pytest.raises(ValidationError, match="NEWSBOT_DATABASE_URL"):
        Settings(_env_file=None, database_read_url=SecretStr("postgresql://h/db"))
    with pytest.raises(ValidationError, match="postgresql://"):
        Settings(
            _env_file=None,
            database_url=SecretStr("postgresql://h/db"),
            database_read_url=SecretStr("mysql://h/db"),
        )
    blank = Settings(
        _env_file=None, database_url=SecretStr("postgresql://h/db"), database_read_url=" "
    )
    assert blank.database_read_url is None
