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
from typing import TypeAlias, TypeVar

import grpc

from ._errors import ApiError, error_from_rpc

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[object]]

# What a proxy answers when its upstream resets the stream or dies in the
# middle of a call (nginx: INTERNAL or UNKNOWN; a reset HTTP/2 stream:
# CANCELLED). Whether the call took effect is unknown, as after a timeout, so
# they are worth retrying only where a repeat is the same request:
# ``RetryPolicy(also_retry=PROXY_RESETS)`` for Reserve (same key),
# ``WatchPolicy(also_retry=PROXY_RESETS)`` for the watch (a read). Off by
# default: from the service itself, INTERNAL is a bug a retry will not mend.
PROXY_RESETS: frozenset[grpc.StatusCode] = frozenset(
    {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED}
)


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


def retriable(error: ApiError, also_retry: frozenset[grpc.StatusCode]) -> bool:
    """Whether a policy that also retries ``also_retry`` retries ``error``."""
    return error.retriable or error.code in also_retry


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How ``reserve`` retries: at most ``max_attempts`` calls (None: as
    many as ``deadline_s`` leaves time for), each given at most
    ``attempt_timeout_s``, all within ``deadline_s``; no retry is started
    that the deadline would cut short.

    It retries the errors that say a retry may help (``ApiError.retriable``)
    and, besides, the status codes in ``also_retry`` (e.g. ``PROXY_RESETS``).
    """

    max_attempts: int | None = 6
    attempt_timeout_s: float = 10.0
    deadline_s: float = 60.0
    backoff: Backoff = field(default_factory=Backoff)
    also_retry: frozenset[grpc.StatusCode] = frozenset()

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("retry: max_attempts must be at least 1 (or None)")
        if not 0 < self.attempt_timeout_s <= self.deadline_s:
            raise ValueError("retry: need 0 < attempt_timeout_s <= deadline_s")
        if grpc.StatusCode.OK in self.also_retry:
            raise ValueError("retry: also_retry names failures, not OK")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call of the several a retried ``reserve`` may make, as the client
    saw it: what ``on_attempt`` is told after every call, for a log or a
    metric of every answer (``reserve`` itself tells only the last)."""

    # 1 for the first call.
    number: int
    # From sending the call to its answer or failure.
    elapsed_s: float
    # The failure, typed; None when the call was answered.
    error: ApiError | None = None
    # How long the client waits before the next call; None when none follows
    # (the call was answered, or the client gives up with this error).
    retry_in_s: float | None = None

    @property
    def code(self) -> grpc.StatusCode:
        """``OK`` for an answer, else the failure's status code."""
        return grpc.StatusCode.OK if self.error is None else self.error.code

    @property
    def retry_after(self) -> timedelta | None:
        """The delay the server advised (``RetryInfo``), if it did."""
        return None if self.error is None else self.error.retry_after


# Told about every attempt; what it returns is ignored.
AttemptHook: TypeAlias = Callable[[Attempt], object]


async def with_retries(
    attempt: Callable[[float], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Sleep,
    rng: Callable[[], float],
    clock: Callable[[], float] = time.monotonic,
    on_attempt: AttemptHook | None = None,
) -> T:
    """``attempt(timeout_s)``, called again while it fails with an error the
    policy retries; the last error, typed, once the attempts or the deadline
    run out. ``on_attempt`` is told about every call as it ends."""
    deadline = clock() + policy.deadline_s
    attempts = 0
    while True:
        attempts += 1
        started = clock()
        try:
            result = await attempt(min(policy.attempt_timeout_s, max(0.0, deadline - started)))
        except grpc.aio.AioRpcError as exc:
            elapsed = clock() - started
            error = error_from_rpc(exc)
            error.attempts = attempts
            delay = policy.backoff.delay_s(attempts, error.retry_after, rng)
            again = (
                retriable(error, policy.also_retry)
                and (policy.max_attempts is None or attempts < policy.max_attempts)
                # the wait alone must not outlast the deadline
                and clock() + delay < deadline
            )
            if on_attempt is not None:
                on_attempt(Attempt(attempts, elapsed, error, delay if again else None))
            if not again:
                raise error from exc
        else:
            if on_attempt is not None:
                on_attempt(Attempt(attempts, clock() - started))
            return result
        await sleep(delay)
