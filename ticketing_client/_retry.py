"""When to call again, and how long to wait first.

Two layers retry, for different failures:

* the channel's service config (``_channel.py``) retries a call that failed
  with UNAVAILABLE before any answer, a few times and quickly: a connection
  that broke, a proxy that had no upstream for a moment;
* ``with_retries`` here retries what the service itself answered: UNAVAILABLE
  and RESOURCE_EXHAUSTED after the delay its ``google.rpc.RetryInfo``
  advises (the channel's policy cannot read it), with a bounded number of
  attempts and an overall deadline.

Only calls that are safe to repeat go through either: ``Reserve`` (every
attempt sends the same idempotency key, so a retry is the same request and
never takes seats twice) and ``WatchReservation`` (a read).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import grpc

from ._errors import error_from_rpc

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter, and the server's advice first.

    Without advice the n-th retry waits ``initial_s * multiplier**(n-1)``, at
    most ``max_s``, give or take ``jitter`` of it. With a ``RetryInfo`` delay
    it waits that delay plus up to ``jitter`` of it, never less: the server
    knows when its rate window ends or its breaker closes, and the upward
    jitter keeps the clients it turned away from coming back all at once.
    """

    initial_s: float = 0.2
    max_s: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError("backoff: need 0 < initial_s <= max_s")
        if self.multiplier < 1:
            raise ValueError("backoff: multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff: jitter must be between 0 and 1")

    def delay_s(self, retry: int, advised: timedelta | None, rng: Callable[[], float]) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first);
        ``rng`` returns a number in [0, 1)."""
        if advised is not None:
            return advised.total_seconds() * (1 + self.jitter * rng())
        growth = self.multiplier ** min(retry - 1, 64)  # past the cap long before 64
        base = min(self.max_s, self.initial_s * growth)
        return base * (1 + self.jitter * (2 * rng() - 1))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How ``reserve`` retries: at most ``max_attempts`` calls, each given at
    most ``attempt_timeout_s``, all within ``deadline_s``; no retry is
    started that the deadline would cut short."""

    max_attempts: int = 6
    attempt_timeout_s: float = 10.0
    deadline_s: float = 60.0
    backoff: Backoff = field(default_factory=Backoff)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("retry: max_attempts must be at least 1")
        if not 0 < self.attempt_timeout_s <= self.deadline_s:
            raise ValueError("retry: need 0 < attempt_timeout_s <= deadline_s")


async def with_retries(
    attempt: Callable[[float], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Sleep,
    rng: Callable[[], float],
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``attempt(timeout_s)``, called again while it fails with a retriable
    error; the last error, typed, once the attempts or the deadline run out."""
    deadline = clock() + policy.deadline_s
    attempts = 0
    while True:
        attempts += 1
        try:
            return await attempt(min(policy.attempt_timeout_s, max(0.0, deadline - clock())))
        except grpc.aio.AioRpcError as exc:
            error = error_from_rpc(exc)
            error.attempts = attempts
            delay = policy.backoff.delay_s(attempts, error.retry_after, rng)
            if not error.retriable or attempts >= policy.max_attempts:
                raise error from exc
            if clock() + delay >= deadline:  # the wait alone would outlast the deadline
                raise error from exc
        await sleep(delay)
