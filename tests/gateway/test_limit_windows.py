"""The gateway's own memory of who is over a limit: a flood is refused
without a Redis round trip per call, and only within the window Redis
counted it in."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, cast

import pytest

from gateway.limits import RateLimits
from ticketing_common.errors import ResourceExhausted
from ticketing_common.storage.batched import BatchScript, ScriptBatcher


class CountingRedis:
    """Stands in for the batched Redis counters: counts per key, like INCR."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.calls = 0

    async def call(
        self, script: BatchScript, key: str, args: tuple[Any, ...] = (), shared: Any = ()
    ) -> list[int]:
        self.calls += 1
        self.counts[key] += 1
        return [self.counts[key]]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The wall clock the limits' windows are cut from, in our hands."""
    now = [1_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    return now


async def test_over_the_limit_a_subject_is_refused_without_asking_redis_again(
    clock: list[float],
) -> None:
    redis = CountingRedis()
    rate = RateLimits(
        cast(ScriptBatcher, redis), per_subject=3, per_address=0, window_s=1.0, timeout_s=1.0
    )
    for _ in range(3):
        await rate.admit("flood", "10.0.0.1")
    with pytest.raises(ResourceExhausted):
        await rate.admit("flood", "10.0.0.1")
    assert redis.calls == 4
    for _ in range(100):
        with pytest.raises(ResourceExhausted) as refused:
            await rate.admit("flood", "10.0.0.1")
        assert refused.value.retry_after_s is not None
        assert 0 < refused.value.retry_after_s <= 1.0
    assert redis.calls == 4  # the flood cost no more Redis calls
    # Another subject is counted as before.
    await rate.admit("buyer", "10.0.0.1")
    assert redis.calls == 5

    clock[0] += 1.0  # the next window: Redis decides again
    await rate.admit("flood", "10.0.0.1")
    assert redis.calls == 6
