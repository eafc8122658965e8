"""The bot's own state: feeds, subscriptions, alerts sent, watermarks.

One interface (`State`), two backends: a SQLite file beside the index (the default) or
PostgreSQL when NEWSBOT_DATABASE_URL is set, which several bot processes can share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.state.base import DigestSchedule, FeedRecord, SentAlert, State, Subscription
from bot.state.sqlite import SqliteState

if TYPE_CHECKING:
    from bot.config import Settings

__all__ = [
    "DigestSchedule",
    "FeedRecord",
    "SentAlert",
    "SqliteState",
    "State",
    "Subscription",
    "open_state",
]


def open_state(settings: Settings) -> State:
    """The state the settings name: PostgreSQL at NEWSBOT_DATABASE_URL, else the SQLite
    file in the data dir."""
    if settings.database_url is None:
        return SqliteState(settings.state_path)
    try:
        from bot.state.postgres import PostgresState
    except ImportError as exc:  # psycopg comes with the extra, not by default
        from index.store_base import StoreError

        raise StoreError(
            f"NEWSBOT_DATABASE_URL is set but PostgreSQL support is not installed ({exc}): "
            "pip install 'newsbot[postgres]'"
        ) from None
    return PostgresState(settings.database_url.get_secret_value())
