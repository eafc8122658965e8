"""Fixtures for tests that talk to the fake Bot API server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.engine import Engine

from .bot_harness import engine_for, make_data_dir
from .fake_bot_api import FakeBotAPI


@pytest.fixture
def fake_api() -> Iterator[FakeBotAPI]:
    """A started fake Bot API server (token 123456:TEST, bot @NewsTestBot)."""
    with FakeBotAPI() as server:
        yield server


@pytest.fixture(scope="module")
def engine(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    cache_dir: Path,
    embedder: Any,
) -> Iterator[Engine]:
    """One engine per test module over a data dir holding the seed article (model load and
    indexing cost seconds); a module that needs other articles defines its own."""
    data = make_data_dir(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]))
    engine = engine_for(data, cache_dir, embedder)
    yield engine
    engine.close()
