"""The per-user question quota, with a clock the test moves."""

from __future__ import annotations

from bot.quota import QuestionQuota


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_sliding_minute_per_user_told_once() -> None:
    clock = Clock()
    quota = QuestionQuota(3, clock=clock)
    assert [quota.check(1)[0] for _ in range(3)] == [True, True, True]
    clock.now += 10
    assert quota.check(1) == (False, 50.0)  # told: the oldest question leaves in 50 s
    assert quota.check(1) == (False, None)  # not told twice
    assert quota.check(2) == (True, None)  # another user is not affected
    clock.now += 50  # the first three questions leave the window
    assert quota.check(1) == (True, None)
    assert quota.check(1)[0] and quota.check(1)[0]
    assert quota.check(1) == (False, 60.0)  # a new minute over the quota: told again


def test_zero_means_no_limit_and_idle_users_are_forgotten() -> None:
    assert all(QuestionQuota(0).check(1)[0] for _ in range(1000))
    clock = Clock()
    quota = QuestionQuota(2, clock=clock)
    for user in range(50):
        quota.check(user)
    clock.now += 61
    quota.forget_idle()
    assert quota._users == {}
