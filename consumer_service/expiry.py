"""Hold expiry: seats held past their deadline go back, to the waitlist first.

Every consumer process runs this loop; they may overlap freely. Each event
with due holds (or waitlisted requests past the queue TTL) is handled under
the event's lock, in one fenced transaction whose updates only touch rows
still HELD and still due, so the second process to get there finds nothing
to do, and a payment confirming the same hold under the same lock either
came first (the hold is CONFIRMED, not expired) or finds it EXPIRED (and
voids its authorization). The changes are announced through the outbox.

Bound: a hold is released at most ``interval_s`` plus one lock wait after
its deadline while the consumers run; after a restart, on the first pass.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import structlog

from ticketing_common.domain import Reservation, Status
from ticketing_common.failures import is_transient
from ticketing_common.storage import outbox
from ticketing_common.storage.applier import under_event_lock
from ticketing_common.storage.db import Connection
from ticketing_common.storage.locks import EventLocks, LockNotAcquired
from ticketing_common.storage.queries import RESERVATION_COLUMNS
from ticketing_common.storage.seats import EventState, release

from . import metrics

log = structlog.get_logger(__name__)


class HoldExpiry:
    def __init__(
        self, pool: asyncpg.Pool, locks: EventLocks, *, lock_wait_s: float, interval_s: float
    ) -> None:
        self._pool = pool
        self._locks = locks
        self._lock_wait_s = lock_wait_s
        self._interval_s = interval_s

    async def run(self) -> None:
        while True:
            try:
                await self.pass_once()
            except Exception as exc:
                if not is_transient(exc):
                    log.exception("hold_expiry_failed")
                else:
                    log.warning("hold_expiry_retrying", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self._interval_s)

    async def pass_once(self) -> int:
        """Expires what is due now; returns how many reservations changed."""
        now = datetime.now(UTC)
        due = await self._pool.fetch(
            """SELECT DISTINCT event_id FROM reservations
               WHERE status = 'HELD' AND hold_expires_at <= $1
               UNION
               SELECT DISTINCT r.event_id FROM reservations r JOIN events e USING (event_id)
               WHERE r.status = 'QUEUED'
                 AND r.accepted_at + e.queue_ttl_ms * interval '1 millisecond' <= $1""",
            now,
        )
        changed = 0
        for row in due:
            try:
                expired, moved = await under_event_lock(
                    self._locks,
                    self._pool,
                    str(row["event_id"]),
                    self._expire,
                    lock_wait_s=self._lock_wait_s,
                )
                # Committed: now they count.
                metrics.HOLD_EXPIRIES.inc(expired)
                changed += moved
            except LockNotAcquired:
                continue  # someone else is on this event; next pass
            except Exception as exc:
                if is_transient(exc):
                    log.warning(
                        "hold_expiry_retrying",
                        event_id=str(row["event_id"]),
                        error=f"{type(exc).__name__}: {exc}",
                    )
                else:
                    log.exception("hold_expiry_failed", event_id=str(row["event_id"]))
        return changed

    async def _expire(
        self, conn: Connection, token: int, event: EventState | None
    ) -> tuple[int, int]:
        """Expires the event's due holds: (holds expired, reservations changed)."""
        if event is None:
            return 0, 0
        now = datetime.now(UTC)
        rows = await conn.fetch(
            f"""SELECT {RESERVATION_COLUMNS} FROM reservations
                WHERE event_id = $1 AND status = 'HELD' AND hold_expires_at <= $2
                ORDER BY hold_expires_at
                FOR UPDATE""",
            event.event_id,
            now,
        )
        holds = [Reservation.from_row(row) for row in rows]
        _, changed = await release(conn, event, holds, status=Status.EXPIRED, token=token, now=now)
        await outbox.announce(conn, changed)
        # A payment under way for an expired hold must give its money back:
        # wake its saga (it voids the authorization, or refunds a capture).
        for hold in holds:
            if hold.payment_id and hold.payment_status and hold.payment_status.open:
                await outbox.command(conn, hold.payment_id, hold.reservation_id)
        if changed:
            log.info(
                "holds_expired",
                event_id=str(event.event_id),
                expired=len(holds),
                changed=len(changed),
            )
        return len(holds), len(changed)
