"""Cancelling a reservation: its seats go back (to the waitlist first), and
money taken for them is refunded before they do.

- HELD: released at once, under the event's lock. A payment under way for
  it is told (through the outbox) to void its authorization.
- CONFIRMED, free: released at once.
- CONFIRMED and paid: the payment becomes REFUNDING and the saga is told;
  it refunds, then releases the seats (CANCELLED). The answer shows the
  reservation still CONFIRMED with its payment REFUNDING.
- Waitlisted (QUEUED in PostgreSQL): leaves the waitlist, CANCELLED.
- Already CANCELLED, or a refund already under way: nothing changes.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from ticketing_common.domain import PaymentStatus, Reservation, Status
from ticketing_common.errors import FailedPrecondition, Reason
from ticketing_common.storage import outbox, seats
from ticketing_common.storage.applier import under_event_lock
from ticketing_common.storage.db import Connection
from ticketing_common.storage.locks import EventLocks
from ticketing_common.storage.seats import EventState


class Cancellations:
    def __init__(self, pool: asyncpg.Pool, locks: EventLocks, *, lock_wait_s: float) -> None:
        self._pool = pool
        self._locks = locks
        self._lock_wait_s = lock_wait_s

    async def cancel(self, current: Reservation) -> Reservation:
        """Cancels ``current`` (as last read); returns it as it now stands."""
        if current.status is Status.CANCELLED or current.payment_status is PaymentStatus.REFUNDING:
            return current
        if current.status in (Status.REJECTED, Status.EXPIRED):
            raise FailedPrecondition(
                f"reservation {current.reservation_id} is {current.status.value}: "
                "there is nothing to cancel",
                reason=Reason.RESERVATION_NOT_CANCELLABLE,
                metadata={"status": current.status.value},
            )
        if current.payment_status is PaymentStatus.CAPTURING:
            raise FailedPrecondition(
                "the payment is being captured; cancel again once it is",
                reason=Reason.PAYMENT_IN_PROGRESS,
            )

        async def work(conn: Connection, token: int, event: EventState | None) -> Reservation:
            stored = await seats.lock_reservation(conn, current.reservation_id)
            assert stored is not None  # reservations are never deleted
            now = datetime.now(UTC)
            if event is None or stored.status in (
                Status.CANCELLED,
                Status.REJECTED,
                Status.EXPIRED,
            ):
                return stored  # changed since it was read: the caller sees how
            if (
                stored.status is Status.CONFIRMED
                and stored.payment_status is PaymentStatus.CAPTURED
            ):
                return await self._refund(conn, stored, now)
            if stored.status is Status.QUEUED:
                return await self._leave_waitlist(conn, event, stored, token, now)
            if stored.payment_status in (PaymentStatus.CAPTURING, PaymentStatus.REFUNDING):
                return stored
            _, changed = await seats.release(
                conn, event, [stored], status=Status.CANCELLED, token=token, now=now
            )
            await outbox.announce(conn, changed)
            if stored.payment_id and stored.payment_status and stored.payment_status.open:
                await outbox.command(conn, stored.payment_id, stored.reservation_id)
            return next(r for r in changed if r.reservation_id == stored.reservation_id)

        return await under_event_lock(
            self._locks, self._pool, current.event_id, work, lock_wait_s=self._lock_wait_s
        )

    @staticmethod
    async def _refund(conn: Connection, stored: Reservation, now: datetime) -> Reservation:
        refunding = await seats.cancel_paid(conn, stored, now)
        await outbox.announce(conn, [refunding])
        assert stored.payment_id is not None
        await outbox.command(conn, stored.payment_id, stored.reservation_id)
        return refunding

    @staticmethod
    async def _leave_waitlist(
        conn: Connection, event: EventState, stored: Reservation, token: int, now: datetime
    ) -> Reservation:
        changed = await seats.leave_waitlist(conn, event, stored, token, now)
        await outbox.announce(conn, changed)
        return changed[0]
