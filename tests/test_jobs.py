"""The job lock and alert claims that let several bot processes share one state: one replica
at a time runs the feed poll and alert round, a dead one blocks it only until its lease ends,
and an alert it claimed but never delivered is sent by the next one. Both backends.

Two State objects on one store stand for two replicas; the kill test uses real processes.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable

import pytest

from bot.config import Settings
from bot.jobs import holding_job
from bot.state import State
from tests.replica import hold_job_then_hang

JOB = "news"
OpenState = Callable[[], State]


def claim(state: State, chat: int, story: str, job: str | None = JOB) -> bool:
    """An alert round's claim, made in the job (or, with None, outside any)."""
    return state.claim_alert(chat, story, f"article-{story}", 1, 0.9, job)


def test_one_replica_at_a_time_holds_a_job_until_it_gives_it_up(open_states: OpenState) -> None:
    a, b = open_states(), open_states()
    assert a.holder != b.holder
    assert a.job_lease(JOB) is None
    assert a.acquire_job(JOB, 30)
    assert not b.acquire_job(JOB, 30)
    assert a.acquire_job(JOB, 30)  # renewing its own lease
    lease = b.job_lease(JOB)
    assert lease is not None and lease.holder == a.holder
    assert 25 < lease.expires_at - time.time() < 35
    assert b.acquire_job("digest", 30)  # another job is another lock

    b.release_job(JOB)  # not b's: nothing happens
    assert not b.acquire_job(JOB, 30)
    a.release_job(JOB)
    assert b.acquire_job(JOB, 30) and not a.acquire_job(JOB, 30)


def test_a_lease_nobody_renews_lets_another_replica_take_the_job(open_states: OpenState) -> None:
    a, b = open_states(), open_states()
    assert a.acquire_job(JOB, 0.5)
    assert not b.acquire_job(JOB, 30)
    time.sleep(0.7)
    assert b.acquire_job(JOB, 30)
    assert not a.acquire_job(JOB, 30)  # a comes back too late: b has it now


def test_replicas_racing_for_a_job_get_it_one_at_a_time(open_states: OpenState) -> None:
    """Two replicas start their round at the same moment, twenty times: each time exactly
    one of them gets the job."""
    replicas = [open_states(), open_states()]
    rounds = 20
    won: list[list[bool]] = [[], []]
    errors: list[BaseException] = []
    in_step = threading.Barrier(2, timeout=30)

    def race(n: int) -> None:
        try:
            for _ in range(rounds):
                in_step.wait()
                won[n].append(replicas[n].acquire_job(JOB, 30))
                in_step.wait()
                replicas[n].release_job(JOB)
        except BaseException as exc:
            errors.append(exc)
            in_step.abort()

    threads = [threading.Thread(target=race, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert [a + b for a, b in zip(won[0], won[1], strict=True)] == [1] * rounds


def test_an_undelivered_claim_is_taken_over_only_from_a_replica_without_the_job(
    open_states: OpenState,
) -> None:
    a, b = open_states(), open_states()
    assert a.acquire_job(JOB, 30)
    assert claim(a, 42, "story-1")  # sending …
    assert claim(a, 42, "story-2")
    a.mark_delivered(42, "story-2")
    assert not claim(b, 42, "story-1")  # a is alive and holds it
    assert not claim(a, 42, "story-1")  # a's own claim stands

    a.release_job(JOB)  # a stopped (or lost the job) before Telegram took story-1
    assert b.acquire_job(JOB, 30)
    assert claim(b, 42, "story-1")  # taken over: not lost
    assert not claim(b, 42, "story-2")  # delivered: never again
    assert not claim(a, 42, "story-1")  # b holds the job now
    claims = {x.story_id: x for x in a.alerts(42)}
    assert claims["story-1"].claimed_by == b.holder and not claims["story-1"].delivered
    assert claims["story-2"].claimed_by == a.holder and claims["story-2"].delivered


def test_a_replica_killed_in_a_round_blocks_the_job_until_its_lease_ends_and_loses_nothing(
    backend_settings: Settings, open_states: OpenState
) -> None:
    """A real process takes the job, claims two alerts and is killed (-9) before sending
    them: the job is free once its lease runs out, and both alerts are claimed again."""
    survivor = open_states()
    claim(survivor, 43, "story-0")
    survivor.mark_delivered(43, "story-0")
    url = backend_settings.database_url
    where = url.get_secret_value() if url else str(backend_settings.state_path)
    claims = [(42, "story-1"), (43, "story-1")]
    spawn = multiprocessing.get_context("spawn")
    holding = spawn.Event()
    replica = spawn.Process(target=hold_job_then_hang, args=(where, JOB, 3.0, claims, holding))
    replica.start()
    try:
        assert holding.wait(60)
    finally:
        assert replica.pid is not None
        os.kill(replica.pid, signal.SIGKILL)
        replica.join(30)
    assert replica.exitcode == -signal.SIGKILL
    lease = survivor.job_lease(JOB)
    assert lease is not None and lease.holder.split(":")[1] == str(replica.pid)

    assert not survivor.acquire_job(JOB, 30)  # its lease still runs
    assert not claim(survivor, 42, "story-1")
    deadline = time.monotonic() + 10
    while not survivor.acquire_job(JOB, 30):
        assert time.monotonic() < deadline, "the dead replica's lease never ended"
        time.sleep(0.1)
    assert lease.expires_at <= time.time() + 1
    assert all(claim(survivor, chat, story) for chat, story in claims)
    assert not claim(survivor, 43, "story-0")
    assert {(x.chat_id, x.story_id) for x in survivor.alerts() if not x.delivered} == set(claims)


def test_a_claim_made_outside_a_job_is_final(open_states: OpenState) -> None:
    """At most once, as before jobs: nobody can tell whether such a claimer still sends."""
    a, b = open_states(), open_states()
    assert claim(a, 42, "story-1", job=None)
    assert b.acquire_job(JOB, 30)
    assert not claim(b, 42, "story-1") and not claim(b, 42, "story-1", job=None)
    (alert,) = b.alerts()
    assert alert.claimed_by is None and not alert.delivered


def test_a_job_held_by_the_bot_is_renewed_while_it_runs_and_given_up_after(
    open_states: OpenState,
) -> None:
    """holding_job (what a round runs in): the lease outlives its length while the work goes
    on, the other replica gets nothing meanwhile, and the job is free when the work ends."""
    mine, other = open_states(), open_states()

    async def long_round() -> list[bool]:
        others_got = []
        async with holding_job(mine, JOB, 1.2) as job:
            assert job is not None and job.held()
            async with holding_job(other, JOB, 1.2) as not_mine:
                assert not_mine is None
            deadline = time.monotonic() + 3.0  # 2.5 leases
            while time.monotonic() < deadline:
                others_got.append(await asyncio.to_thread(other.acquire_job, JOB, 1.2))
                await asyncio.sleep(0.2)
            assert job.held()
        return others_got

    others_got = asyncio.run(long_round())
    assert len(others_got) > 5 and not any(others_got)
    assert other.acquire_job(JOB, 30)


def test_a_job_whose_renewals_fail_is_no_longer_held(
    open_states: OpenState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database is unreachable, or the lease was taken: the work learns it before the
    lease could have run out, and claims no more."""
    mine = open_states()

    async def work() -> bool:
        async with holding_job(mine, JOB, 1.2) as job:
            assert job is not None
            monkeypatch.setattr(mine, "acquire_job", lambda job, seconds: False)
            await asyncio.sleep(0.6)  # a renewal every 0.4 s
            return job.held()

    assert not asyncio.run(work())
