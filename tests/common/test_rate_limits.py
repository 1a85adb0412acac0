"""The rate limits' logic over a stand-in for Redis: a process's own memory
of who is over a limit (a flood is refused without a Redis round trip per
call, and only within the window Redis counted it in), and a Redis that does
not answer in time refuses calls instead of letting them through."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any, cast

import grpc
import prometheus_client
import pytest

from ticketing_common.errors import DependencyUnavailable, ResourceExhausted
from ticketing_common.storage.batched import BatchScript, ScriptBatcher
from ticketing_common.storage.rate_limits import RateLimits

REFUSED = prometheus_client.Counter(
    "test_rate_limited_total", "refusals", ["limit"], registry=prometheus_client.CollectorRegistry()
)


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


class SilentRedis:
    """A Redis that takes the call and never answers."""

    def __init__(self) -> None:
        self.calls = 0

    async def call(self, *args: Any, **kwargs: Any) -> list[int]:
        self.calls += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class FailingRedis:
    """A Redis whose connection is refused."""

    async def call(self, *args: Any, **kwargs: Any) -> list[int]:
        raise ConnectionRefusedError("connection refused")


def limits(redis: Any, *, per_subject: int, per_address: int = 0) -> RateLimits:
    return RateLimits(
        cast(ScriptBatcher, redis),
        scope="test",
        limits={"subject": per_subject, "address": per_address},
        window_s=1.0,
        timeout_s=0.2,
        refused=REFUSED,
    )


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
    rate = limits(redis, per_subject=3)
    for _ in range(3):
        await rate.admit(subject="flood", address="10.0.0.1")
    with pytest.raises(ResourceExhausted):
        await rate.admit(subject="flood", address="10.0.0.1")
    assert redis.calls == 4
    for _ in range(100):
        with pytest.raises(ResourceExhausted) as refused:
            await rate.admit(subject="flood", address="10.0.0.1")
        assert refused.value.retry_after_s is not None
        assert 0 < refused.value.retry_after_s <= 1.0
    assert redis.calls == 4  # the flood cost no more Redis calls
    # Another subject is counted as before.
    await rate.admit(subject="buyer", address="10.0.0.1")
    assert redis.calls == 5

    clock[0] += 1.0  # the next window: Redis decides again
    await rate.admit(subject="flood", address="10.0.0.1")
    assert redis.calls == 6


async def test_a_redis_that_does_not_answer_in_time_refuses_the_call() -> None:
    redis = SilentRedis()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DependencyUnavailable) as refused:
        await limits(redis, per_subject=3).admit(subject="buyer", address="10.0.0.1")
    assert loop.time() - started < 1.0  # the limit's own timeout, 0.2 s
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE
    assert refused.value.retry_after_s is not None and refused.value.retry_after_s > 0
    assert refused.value.metadata == {"dependency": "redis"}
    assert redis.calls == 1


async def test_a_redis_that_refuses_connections_refuses_the_call() -> None:
    with pytest.raises(DependencyUnavailable):
        await limits(FailingRedis(), per_subject=3).admit(subject="buyer", address="10.0.0.1")


async def test_with_no_limit_on_any_kind_redis_is_not_asked() -> None:
    # Nothing to count: the call goes on even with Redis silent.
    await limits(SilentRedis(), per_subject=0).admit(subject="buyer", address="10.0.0.1")
