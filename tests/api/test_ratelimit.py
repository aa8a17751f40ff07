"""Token buckets, on a clock the test moves."""

from __future__ import annotations

import pytest

from api import ratelimit
from api.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(4)] == [None, None, None, 1]
    clock.now += 0.5
    assert limiter.take("a") == 1  # half a token: still a second to wait, rounded up
    clock.now += 0.5
    assert limiter.take("a") is None
    clock.now += 3600  # refills to the burst, never beyond
    assert [limiter.take("a") for _ in range(4)] == [None, None, None, 1]


def test_retry_after_is_the_time_to_the_next_token() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=2, burst=1, clock=clock)
    assert limiter.take("a") is None
    assert limiter.take("a") == 30
    clock.now += 29.2
    assert limiter.take("a") == 1
    clock.now += 0.8
    assert limiter.take("a") is None


def test_keys_are_independent() -> None:
    limiter = RateLimiter(per_minute=60, burst=1, clock=Clock())
    assert (limiter.take("a"), limiter.take("b"), limiter.take("a")) == (None, None, 1)


def test_zero_per_minute_turns_it_off() -> None:
    limiter = RateLimiter(per_minute=0, burst=1, clock=Clock())
    assert {limiter.take("a") for _ in range(1000)} == {None}


def test_the_least_recent_callers_are_forgotten_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_BUCKETS", 3)
    limiter = RateLimiter(per_minute=60, burst=1, clock=Clock())
    for key in ("a", "b", "c"):
        limiter.take(key)
    limiter.take("a")  # refused, but recently seen
    limiter.take("d")  # the fourth key forgets the least recent: b
    assert list(limiter._buckets) == ["c", "a", "d"]
    assert limiter.take("b") is None  # a fresh bucket
