"""Following one reservation across reconnects.

A stream can break (a notifier restarts, a proxy closes an old connection,
the notifier has not caught up with the queue yet) and every new stream
starts with the current state again, possibly from another notifier a
little behind the first. ``VersionFilter`` makes that invisible: a state is
told once, in version order, and a place in line only when it moved.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import grpc

from ticketing.v1 import notifier_service_pb2 as ns

from ._errors import ApiError, DeadlineExceeded, error_from_rpc
from ._outcomes import QueueUpdate, Update, update_of
from ._retry import Backoff, Sleep, retriable


class WatchStream(Protocol):
    """One WatchReservation call (what the generated stub returns)."""

    def __aiter__(self) -> AsyncIterator[ns.WatchReservationResponse]: ...

    def cancel(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class WatchPolicy:
    """How ``watch`` keeps a stream open.

    Each stream is opened for at most ``stream_timeout_s`` and then opened
    again (a wait on the waitlist may last hours; no call should hang on a
    connection that silently died). After ``max_failures`` failed reopenings
    in a row without a message, the last error is raised; None reopens for
    as long as the caller waits (bound it with ``asyncio.timeout``).

    A stream that failed with an error that says a retry may help
    (``ApiError.retriable``), or with a status code in ``also_retry`` (e.g.
    ``PROXY_RESETS``), is reopened; any other failure is raised at once.
    """

    stream_timeout_s: float = 300.0
    max_failures: int | None = 8
    backoff: Backoff = field(default_factory=Backoff)
    also_retry: frozenset[grpc.StatusCode] = frozenset()

    def __post_init__(self) -> None:
        if self.stream_timeout_s <= 0:
            raise ValueError("watch: stream_timeout_s must be positive")
        if self.max_failures is not None and self.max_failures < 0:
            raise ValueError("watch: max_failures must not be negative (or None)")
        if grpc.StatusCode.OK in self.also_retry:
            raise ValueError("watch: also_retry names failures, not OK")


class VersionFilter:
    """Passes each state of a reservation once, oldest first.

    ``Reservation.version`` rises with every state change: a message whose
    version is below the last one told is stale (a notifier behind another),
    one equal to it is a repeat (a new stream's first message), unless the
    reservation is queued and its place in line or estimated wait moved.
    """

    def __init__(self) -> None:
        self._version = 0
        self._place: QueueUpdate | None = None

    @property
    def version(self) -> int:
        """The highest version told so far (0 before any)."""
        return self._version

    def admit(self, message: ns.WatchReservationResponse) -> Update | None:
        """What ``message`` tells that was not told before; None if nothing."""
        version = message.reservation.version
        if version < self._version:
            return None
        update = update_of(message)
        if update is None:  # a status this package does not know: wait for the next
            return None
        if isinstance(update, QueueUpdate):
            if version == self._version and _same_place(update, self._place):
                return None
            self._place = update
        elif version == self._version:
            return None
        self._version = version
        return update


def _same_place(update: QueueUpdate, last: QueueUpdate | None) -> bool:
    return (
        last is not None
        and update.position == last.position
        and update.estimated_wait == last.estimated_wait
    )


class Unsettled(ApiError):
    """The watch streams kept ending before the reservation settled."""

    def __init__(self, version: int) -> None:
        super().__init__(
            grpc.StatusCode.UNAVAILABLE,
            f"the watch kept ending before the reservation settled (last version {version})",
        )

    @property
    def retriable(self) -> bool:
        return True


async def follow(
    open_stream: Callable[[float], Awaitable[WatchStream]],
    policy: WatchPolicy,
    *,
    sleep: Sleep,
    rng: Callable[[], float],
) -> AsyncGenerator[Update, None]:
    """Every new state of one reservation until it is settled, reopening the
    stream (after the advised delay) while the failures are retriable.
    ``open_stream(timeout_s)`` starts one WatchReservation call."""
    seen = VersionFilter()
    failures = 0
    while True:
        advised: timedelta | None = None
        last_error: ApiError | None = None
        delivered = False
        call = await open_stream(policy.stream_timeout_s)
        try:
            async for message in call:
                delivered, failures = True, 0
                update = seen.admit(message)
                if update is not None:
                    yield update
                    if message.reservation.settled:
                        return
        except grpc.aio.AioRpcError as exc:
            last_error = error_from_rpc(exc)
            if not retriable(last_error, policy.also_retry):
                raise last_error from exc
            advised = last_error.retry_after
        finally:
            call.cancel()
        if delivered and isinstance(last_error, DeadlineExceeded):
            continue  # the stream's own time ran out while all was well: reopen at once
        # The stream failed, ran out its time, or ended before the reservation
        # settled (a notifier shutting down): open another.
        failures += 1
        if policy.max_failures is not None and failures > policy.max_failures:
            if last_error is not None:
                last_error.attempts = failures
                raise last_error
            raise Unsettled(seen.version)
        await sleep(policy.backoff.delay_s(failures, advised, rng))
