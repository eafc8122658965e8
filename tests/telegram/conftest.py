"""Fixtures for tests that talk to the fake Bot API server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .fake_bot_api import FakeBotAPI


@pytest.fixture
def fake_api() -> Iterator[FakeBotAPI]:
    """A started fake Bot API server (token 123456:TEST, bot @NewsTestBot)."""
    with FakeBotAPI() as server:
        yield server
