"""The token bucket and the per-address limiter built on it, on a clock the test moves by hand."""

from __future__ import annotations

import pytest

from ghosttalk.ops.limits import KeyedRateLimiter, TokenBucket


class Clock:
    """A monotonic clock that only moves when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("ghosttalk.ops.limits.time.monotonic", clock)
    return clock


def takes(bucket: TokenBucket, now: float, attempts: int) -> int:
    return sum(bucket.take(now) for _ in range(attempts))


def test_a_new_bucket_holds_its_burst_and_then_refuses() -> None:
    bucket = TokenBucket(rate=10, burst=5, updated=0.0)
    assert takes(bucket, 0.0, 8) == 5
    assert not bucket.take(0.0)


def test_tokens_come_back_at_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=5, updated=0.0)
    takes(bucket, 0.0, 5)
    assert not bucket.take(0.05)  # half a token
    assert bucket.take(0.1)  # the whole token
    assert takes(bucket, 0.4, 10) == 3  # 0.3 s more: three


def test_idle_time_saves_up_no_more_than_the_burst() -> None:
    bucket = TokenBucket(rate=10, burst=5, updated=0.0)
    takes(bucket, 0.0, 5)
    assert takes(bucket, 3600.0, 100) == 5


def test_a_rate_below_one_per_second_needs_the_whole_interval() -> None:
    # Offers per minute become a rate under one a second: one offer, then another only after 60 / 2 s.
    bucket = TokenBucket(rate=2 / 60, burst=2, updated=0.0)
    assert takes(bucket, 0.0, 3) == 2
    assert not bucket.take(29.9)
    assert bucket.take(30.0)
    assert not bucket.take(30.0)


def test_a_bucket_may_start_empty() -> None:
    bucket = TokenBucket(rate=1, burst=5, tokens=0.0, updated=0.0)
    assert not bucket.take(0.5)
    assert bucket.take(1.0)


def test_full_says_whether_the_burst_is_back() -> None:
    bucket = TokenBucket(rate=10, burst=5, updated=0.0)
    assert bucket.full(0.0)
    bucket.take(0.0)
    assert not bucket.full(0.05)
    assert bucket.full(0.1)


def test_each_address_has_its_own_bucket(clock: Clock) -> None:
    limiter = KeyedRateLimiter(rate=1, burst=2)
    assert [limiter.take("198.51.100.1") for _ in range(3)] == [True, True, False]
    assert [limiter.take("198.51.100.2") for _ in range(3)] == [True, True, False]
    clock.now += 1.0
    assert limiter.take("198.51.100.1")
    assert not limiter.take("198.51.100.1")
    assert len(limiter) == 2


def test_a_full_table_forgets_only_refilled_buckets(clock: Clock) -> None:
    limiter = KeyedRateLimiter(rate=1, burst=2, max_keys=3)
    limiter.take("quiet")  # refilled a second later: forgettable
    clock.now += 1.0
    limiter.take("busy-1")
    limiter.take("busy-2")
    limiter.take("busy-2")
    assert len(limiter) == 3
    limiter.take("newcomer")  # the table is full: "quiet" goes, the busy ones stay with their debts
    assert len(limiter) == 3
    assert not limiter.take("busy-2"), "a pruned bucket would have come back full"
    assert limiter.take("quiet") and limiter.take("quiet"), "a forgotten address starts with a full bucket"

