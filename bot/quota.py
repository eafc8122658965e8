"""A per-user question quota: one reader asking faster than the bot can read (a script, a
flood in a group) does not delay everyone else's answers.

A sliding window of the last minute per user. The first question over the quota gets one
reply saying how long to wait; the others of that minute are skipped without a reply, so
a flood does not turn into a flood of warnings. Administrators have no quota.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_S = 60.0
MAX_TRACKED = 10_000  # users kept before the idle ones are dropped


@dataclass
class _User:
    asked: deque[float] = field(default_factory=deque)
    warned_until: float = 0.0


class QuestionQuota:
    """At most `per_minute` questions per user in any 60 s (0: no limit)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._users: dict[int, _User] = {}

    def check(self, user_id: int) -> tuple[bool, float | None]:
        """(allowed, wait): allowed questions are counted; a refused one comes with the
        seconds to wait when the user should be told, None when already told."""
        if self.per_minute <= 0:
            return True, None
        now = self.clock()
        if len(self._users) > MAX_TRACKED and user_id not in self._users:
            self.forget_idle()
        user = self._users.setdefault(user_id, _User())
        while user.asked and user.asked[0] <= now - WINDOW_S:
            user.asked.popleft()
        if len(user.asked) < self.per_minute:
            user.asked.append(now)
            return True, None
        wait = user.asked[0] + WINDOW_S - now
        if now < user.warned_until:
            return False, None
        user.warned_until = now + wait
        return False, wait

    def forget_idle(self) -> None:
        """Drop users with nothing in the window (memory stays bounded by active users)."""
        now = self.clock()
        for user_id in [
            uid for uid, u in self._users.items() if not u.asked or u.asked[-1] <= now - WINDOW_S
        ]:
            del self._users[user_id]
