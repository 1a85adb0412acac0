"""The synchronous design, side by side with the queue: lock, decide, answer.

It shares the decision code with the consumers (``decide_fenced``: one Redis
lock acquisition, one fenced PostgreSQL transaction), so the comparison is of
the designs, not of two implementations. Every caller for an event waits for
that event's lock; under a spike most wait past their patience.
"""

from __future__ import annotations

from ticketing_common.decisions import Request
from ticketing_common.domain import Reservation
from ticketing_common.errors import DependencyUnavailable, Reason, Unavailable
from ticketing_common.failures import is_transient
from ticketing_common.status import DEPENDENCY_RETRY_AFTER_S
from ticketing_common.storage.applier import Applier, decide_fenced
from ticketing_common.storage.locks import EventLocks, LockNotAcquired


class SyncReserver:
    def __init__(self, *, locks: EventLocks, applier: Applier, lock_wait_s: float) -> None:
        self._locks = locks
        self._applier = applier
        self._lock_wait_s = lock_wait_s

    async def reserve(self, request: Request) -> Reservation:
        """Decides ``request`` now, under the event's fenced lock."""
        try:
            (decided,) = await decide_fenced(
                self._locks,
                self._applier,
                request.event_id,
                [request],
                lock_wait_s=self._lock_wait_s,
                log_batch=False,
            )
        except LockNotAcquired as exc:
            raise Unavailable(
                "the event is busy: its lock was not acquired in time; retry",
                reason=Reason.EVENT_BUSY,
                retry_after_s=self._lock_wait_s,
            ) from exc
        except Exception as exc:
            if is_transient(exc):  # includes a stale fencing token: decide again
                raise DependencyUnavailable(
                    "could not decide now; retry", retry_after_s=DEPENDENCY_RETRY_AFTER_S
                ) from exc
            raise
        return decided
