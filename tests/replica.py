"""A bot replica for the tests, in a process of its own: it claims alerts in step with the
others (a barrier before each claim) and reports the ones it won."""

from __future__ import annotations

from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from bot.state import SqliteState, State


def open_replica_state(where: str) -> State:
    """A PostgreSQL URL or a SQLite file path."""
    if where.startswith("postgresql://"):
        from bot.state.postgres import PostgresState

        return PostgresState(where)
    return SqliteState(Path(where))


def claim_in_step(
    where: str, replica: int, work: list[tuple[int, str]], in_step: Barrier, won: Queue
) -> None:
    state = open_replica_state(where)
    try:
        claimed = []
        for chat, story in work:
            in_step.wait()
            if state.claim_alert(chat, story, f"a-{story}-{replica}", replica, 0.9):
                claimed.append((chat, story))
        won.put((replica, claimed))
    finally:
        state.close()
