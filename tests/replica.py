"""A bot replica for the tests, in a process of its own: it claims alerts in step with the
others (a barrier before each claim) and reports the ones it won."""

from __future__ import annotations

import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier, Event
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


def hold_job_then_hang(
    where: str, job: str, seconds: float, claims: list[tuple[int, str]], holding: Event
) -> None:
    """A replica that takes `job`, claims alerts and hangs before sending them: the test
    kills it (-9) there, leaving its lease and its undelivered claims behind."""
    state = open_replica_state(where)
    assert state.acquire_job(job, seconds)
    for chat, story in claims:
        assert state.claim_alert(chat, story, f"a-{story}", 1, 0.9, job)
    holding.set()
    time.sleep(600)
