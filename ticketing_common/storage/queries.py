"""The services' queries outside the decision transaction, as functions of an
``Executor`` (a pool or a connection): one style of database access, with the
fenced writes of decisions in ``applier``."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from ..domain import Event, Money, Reservation
from .db import Executor

# An event's columns, and how many requests wait on its waitlist (the partial
# index on waiting rows makes that an index-only count).
EVENT_COLUMNS = (
    "event_id, name, capacity, available, held, confirmed, per_user_limit, created_at,"
    " queue_ttl_ms, price_minor, currency, hold_ttl_ms, sale_state, sale_start_at, sale_end_at,"
    " priority_tiers, seated,"
    " (SELECT count(*) FROM reservations w WHERE w.event_id = events.event_id"
    " AND w.status = 'QUEUED')::int AS waitlisted"
)
RESERVATION_COLUMNS = (
    "reservation_id, event_id, user_id, quantity, status, reject_reason, accepted_at, decided_at,"
    " version, updated_at, hold_expires_at, amount_minor, currency, payment_id, payment_status,"
    " lane, seats"
)


async def fetch_event(db: Executor, event_id: str) -> Event | None:
    row = await db.fetchrow(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = $1", uuid.UUID(event_id)
    )
    return None if row is None else Event.from_row(row)


async def fetch_reservation(db: Executor, reservation_id: str) -> Reservation | None:
    row = await db.fetchrow(
        f"SELECT {RESERVATION_COLUMNS} FROM reservations WHERE reservation_id = $1",
        uuid.UUID(reservation_id),
    )
    return None if row is None else Reservation.from_row(row)


async def fetch_reservations(db: Executor, reservation_ids: list[str]) -> dict[str, Reservation]:
    rows = await db.fetch(
        f"SELECT {RESERVATION_COLUMNS} FROM reservations WHERE reservation_id = ANY($1::uuid[])",
        [uuid.UUID(r) for r in reservation_ids],
    )
    return {str(row["reservation_id"]): Reservation.from_row(row) for row in rows}


async def event_exists(db: Executor, event_id: str, *, timeout_s: float | None = None) -> bool:
    found = await db.fetchval(
        "SELECT 1 FROM events WHERE event_id = $1", uuid.UUID(event_id), timeout=timeout_s
    )
    return found is not None


async def insert_event(  # noqa: PLR0917 - an event's fields
    db: Executor,
    name: str,
    capacity: int,
    per_user_limit: int,
    queue_ttl: timedelta,
    price: Money | None = None,
    hold_ttl: timedelta | None = None,
    sale_window: tuple[datetime | None, datetime | None] = (None, None),
    priority_tiers: tuple[str, ...] = (),
    *,
    seated: bool = False,
) -> Event:
    """A new event with every seat available (a seated one's seats are
    added by ``seats.insert_plan`` in the same transaction)."""
    row = await db.fetchrow(
        f"""INSERT INTO events
                (event_id, name, capacity, available, per_user_limit, queue_ttl_ms,
                 price_minor, currency, hold_ttl_ms, sale_start_at, sale_end_at, priority_tiers,
                 seated)
            VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            RETURNING {EVENT_COLUMNS}""",
        uuid.uuid4(),
        name,
        capacity,
        per_user_limit,
        _ms(queue_ttl),
        price.amount_minor if price else 0,
        price.currency if price else "",
        None if hold_ttl is None else _ms(hold_ttl),
        *sale_window,
        list(priority_tiers),
        seated,
    )
    if row is None:  # pragma: no cover - INSERT ... RETURNING returns the row
        raise RuntimeError("INSERT ... RETURNING returned no row")
    return Event.from_row(row)


def _ms(duration: timedelta) -> int:
    return round(duration.total_seconds() * 1000)
