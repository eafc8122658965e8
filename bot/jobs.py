"""Jobs one replica at a time may run (the feed poll and alert round, a reindex): a lease in
the shared state (State.acquire_job), renewed in the background while the job runs.

A replica killed in a job holds it until its lease runs out; one whose renewals fail stops
before its lease could have run out, so two replicas never believe they hold a job at once
(within a margin of the lease for a request already in flight).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from bot.state import State

log = logging.getLogger(__name__)

NEWS = "news"  # the feed poll and alert round, and a reindex (it restarts the round's watermark)
WAIT_STEP_S = 1.0


class HeldJob:
    """A job this replica holds; `held()` is False once the lease may have run out."""

    def __init__(self, name: str, seconds: float, since: float) -> None:
        self.name = name
        self.seconds = seconds
        self._until = since + seconds
        self.lost = False

    def held(self) -> bool:
        """Whether the lease still runs, with a sixth of it to spare: a step that must not run
        twice (claiming an alert) starts only then."""
        return not self.lost and time.monotonic() < self._until - self.seconds / 6

    def renewed(self, since: float) -> None:
        self._until = since + self.seconds


@asynccontextmanager
async def holding_job(
    state: State, name: str, seconds: float, wait_s: float = 0.0
) -> AsyncIterator[HeldJob | None]:
    """Hold job `name` for the block, renewing it every third of `seconds`; the block gets
    None when another replica holds it (after waiting up to `wait_s` for it). The job is
    given up when the block ends."""
    deadline = time.monotonic() + wait_s
    while True:
        since = time.monotonic()
        if await asyncio.to_thread(state.acquire_job, name, seconds):
            break
        if since >= deadline:
            yield None
            return
        await asyncio.sleep(min(WAIT_STEP_S, max(deadline - since, 0.0)))
    job = HeldJob(name, seconds, since)
    renewing = asyncio.create_task(_keep_renewing(state, job))
    try:
        yield job
    finally:
        renewing.cancel()
        with suppress(asyncio.CancelledError):
            await renewing
        try:
            await asyncio.to_thread(state.release_job, name)
        except Exception:
            log.exception("could not give up the job %r: others wait for its lease to end", name)


async def _keep_renewing(state: State, job: HeldJob) -> None:
    while True:
        await asyncio.sleep(job.seconds / 3)
        since = time.monotonic()
        try:
            renewed = await asyncio.to_thread(state.acquire_job, job.name, job.seconds)
        except Exception:
            log.exception("could not renew the job %r: stopping it", job.name)
            renewed = False
        if not renewed:
            log.error("lost the job %r (its lease ran out): another replica may run it", job.name)
            job.lost = True
            return
        job.renewed(since)
