"""Payments that are stuck, for the operator (``ticketing-admin payments``)
and the ledger's money check.

A payment is stuck when:

- it **needs attention**: the payment service spent its retry budget on a
  step (a capture, void or refund that kept failing) or the provider refused
  the step for good; the saga leaves it where it stands;
- it is **past its deadline**: still authorizing (PENDING, AUTHORIZED) more
  than ``OPEN_GRACE`` after its saga deadline, so an authorization is left
  hanging;
- it is **past its bound**: capturing, voiding or refunding for longer than
  the step bound (``TICKETING_ADMIN_PAYMENT_STEP_BOUND_S``), which is longer
  than the payment service's retry window: no payment service is taking it
  forward.

``retry`` gives a payment that needs attention a new retry budget and tells
the saga to take it on at once (through the outbox, as the saga's own steps
do): for after the operator has mended the cause, e.g. the provider is back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from ticketing_common.storage import outbox
from ticketing_common.storage.db import Connection

# A payment may stay authorizing this long past its deadline (a step under way).
OPEN_GRACE = timedelta(seconds=30)
# How long a capture, void or refund may be in flight before the ledger calls
# it stuck (the default of TICKETING_ADMIN_PAYMENT_STEP_BOUND_S): longer than
# the payment service's retry window, which flags it first.
STEP_BOUND = timedelta(minutes=15)

AUTHORIZING = frozenset({"PENDING", "AUTHORIZED"})
SETTLING = frozenset({"CAPTURING", "VOIDING", "REFUNDING"})


def why_stuck(
    *,
    status: str,
    updated_at: datetime,
    deadline: datetime,
    attention_since: datetime | None,
    now: datetime,
    step_bound: timedelta,
) -> str | None:
    """Why a payment in ``status`` (its step begun at ``updated_at``) is
    stuck at ``now``, or None."""
    if attention_since is not None:
        return "needs attention"
    if status in AUTHORIZING and deadline + OPEN_GRACE < now:
        return "past its deadline"
    if status in SETTLING and updated_at + step_bound < now:
        return "past its bound"
    return None


@dataclass(frozen=True, slots=True)
class StuckPayment:
    payment_id: str
    reservation_id: str
    event_id: str
    amount_minor: int
    currency: str
    # The step it is at (its status), since when, and why it is stuck.
    status: str
    since: datetime
    why: str
    attempts: int
    last_error: str | None
    attention_since: datetime | None

    def as_dict(self) -> dict[str, object]:
        return {
            "payment_id": self.payment_id,
            "reservation_id": self.reservation_id,
            "event_id": self.event_id,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "status": self.status,
            "since": self.since.isoformat(),
            "why": self.why,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "attention_since": self.attention_since.isoformat() if self.attention_since else None,
        }


async def stuck_payments(
    db: asyncpg.Pool | Connection, *, step_bound: timedelta = STEP_BOUND
) -> list[StuckPayment]:
    """Every stuck payment, in the order the payments were made."""
    rows = await db.fetch(
        """SELECT p.payment_id, p.reservation_id, r.event_id, p.amount_minor, p.currency,
                  p.status, p.updated_at, p.deadline, p.attempts, p.last_error,
                  p.attention_since
           FROM payments p JOIN reservations r USING (reservation_id)
           WHERE p.status IN ('PENDING', 'AUTHORIZED', 'CAPTURING', 'VOIDING', 'REFUNDING')
             AND (p.attention_since IS NOT NULL OR p.updated_at < $1 OR p.deadline < $2)
           ORDER BY p.seq""",
        datetime.now(UTC) - step_bound,
        datetime.now(UTC) - OPEN_GRACE,
    )
    now = datetime.now(UTC)
    found = []
    for row in rows:
        why = why_stuck(
            status=row["status"],
            updated_at=row["updated_at"],
            deadline=row["deadline"],
            attention_since=row["attention_since"],
            now=now,
            step_bound=step_bound,
        )
        if why is not None:
            found.append(
                StuckPayment(
                    payment_id=str(row["payment_id"]),
                    reservation_id=str(row["reservation_id"]),
                    event_id=str(row["event_id"]),
                    amount_minor=row["amount_minor"],
                    currency=row["currency"],
                    status=row["status"],
                    since=row["updated_at"],
                    why=why,
                    attempts=row["attempts"],
                    last_error=row["last_error"],
                    attention_since=row["attention_since"],
                )
            )
    return found


class NotRetriable(Exception):
    """The payment named is not one that needs attention."""


async def retry(pool: asyncpg.Pool, payment_id: str) -> str:
    """Gives a payment that needs attention a new retry budget, its step a
    new start (``updated_at``), and the saga a command to take it on now.
    Returns the step it is at."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """UPDATE payments SET attempts = 0, retry_at = NULL, attention_since = NULL,
                      updated_at = now()
               WHERE payment_id = $1 AND attention_since IS NOT NULL
               RETURNING status, reservation_id""",
            uuid.UUID(payment_id),
        )
        if row is None:
            status = await conn.fetchval(
                "SELECT status FROM payments WHERE payment_id = $1", uuid.UUID(payment_id)
            )
            raise NotRetriable(
                f"no payment {payment_id}"
                if status is None
                else f"payment {payment_id} is {status} and does not need attention"
            )
        await outbox.command(conn, payment_id, str(row["reservation_id"]))
    return str(row["status"])
