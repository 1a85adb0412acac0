"""Every change to an event's seats and its reservations' states, inside
the event's fenced transaction (``fenced.under_event_lock``): new
decisions, the waitlist, holds confirmed, released or cancelled, and what a
reservation shows of its payment. No other module writes a reservation's
state or an event's seat counters.

Whoever changes seats settles the waitlist in the same transaction, so a
seat that comes back goes to the first waiting request at once, and nobody
waits while seats are free.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import asyncpg

from ..decisions import BatchOutcome, Decision, Request, Seats, settle_waitlist
from ..domain import Reservation, SaleState, Status
from .db import Connection
from .queries import RESERVATION_COLUMNS

# The event columns the fence statement returns, for the seat decisions.
EVENT_STATE = (
    "available, held, confirmed, per_user_limit, queue_ttl_ms, hold_ttl_ms, price_minor, currency,"
    " sale_state, sale_start_at, sale_end_at, priority_tiers"
)


@dataclass(frozen=True, slots=True)
class EventState:
    """An event's seats and terms as locked by the fence statement."""

    event_id: uuid.UUID
    available: int
    held: int
    per_user_limit: int
    queue_ttl: timedelta
    hold_ttl: timedelta | None
    price_minor: int
    currency: str
    sale_state: SaleState = SaleState.OPEN
    sale_start_at: datetime | None = None
    sale_end_at: datetime | None = None
    priority_tiers: frozenset[str] = frozenset()

    @classmethod
    def from_row(cls, event_id: uuid.UUID, row: asyncpg.Record) -> EventState:
        return cls(
            event_id=event_id,
            available=row["available"],
            held=row["held"],
            per_user_limit=row["per_user_limit"],
            queue_ttl=timedelta(milliseconds=row["queue_ttl_ms"]),
            hold_ttl=(
                None if row["hold_ttl_ms"] is None else timedelta(milliseconds=row["hold_ttl_ms"])
            ),
            price_minor=row["price_minor"],
            currency=row["currency"],
            sale_state=SaleState(row["sale_state"]),
            sale_start_at=row["sale_start_at"],
            sale_end_at=row["sale_end_at"],
            priority_tiers=frozenset(row["priority_tiers"]),
        )

    def seats(self, waiting: int = 0, waiting_priority: int = 0) -> Seats:
        return Seats(
            available=self.available,
            per_user_limit=self.per_user_limit,
            queue_ttl=self.queue_ttl,
            held=self.held,
            hold_ttl=self.hold_ttl,
            waiting=waiting,
            waiting_priority=waiting_priority,
            priority_tiers=self.priority_tiers,
            paused=self.sale_state is SaleState.PAUSED,
            closed=self.sale_state is SaleState.CLOSED,
            sale_start=self.sale_start_at,
            sale_end=self.sale_end_at,
        )


async def waitlist(conn: Connection, event_id: uuid.UUID) -> list[Request]:
    """The event's waiting requests, in queue order: by when they were put
    on the waitlist (one transaction at a time, under the event's lock, in
    queue order), then, within one transaction, by their place in the
    partition. (``decided_at`` of a waiting row is when it started waiting.)"""
    rows = await conn.fetch(
        """SELECT reservation_id, event_id, user_id, quantity, idempotency_key, accepted_at,
                  source_partition, source_offset
           FROM reservations WHERE event_id = $1 AND status = 'QUEUED'
           ORDER BY lane DESC, decided_at, source_offset""",
        event_id,
    )
    return [
        Request(
            reservation_id=str(row["reservation_id"]),
            event_id=str(row["event_id"]),
            user_id=row["user_id"],
            quantity=row["quantity"],
            idempotency_key=row["idempotency_key"],
            accepted_at=row["accepted_at"],
            partition=row["source_partition"],
            offset=row["source_offset"],
        )
        for row in rows
    ]


async def granted_seats(
    conn: Connection, event_id: uuid.UUID, users: Iterable[str]
) -> dict[str, int]:
    """The seats each of ``users`` holds or bought on the event (HELD and
    CONFIRMED; not what they wait for)."""
    rows = await conn.fetch(
        """SELECT user_id, sum(quantity)::int AS seats FROM reservations
           WHERE event_id = $1 AND user_id = ANY($2::text[])
             AND status IN ('CONFIRMED', 'HELD')
           GROUP BY user_id""",
        event_id,
        sorted(users),
    )
    return {row["user_id"]: row["seats"] for row in rows}


async def insert_decisions(
    conn: Connection,
    event: EventState | None,
    decisions: Sequence[Decision],
    token: int,
    now: datetime,
    *,
    keep_existing: bool = False,
) -> dict[str, Reservation]:
    """Stores new requests as decided (or waitlisted), one statement."""
    if not decisions:
        return {}
    columns: tuple[list[object], ...] = tuple([] for _ in range(16))
    seats = event.seats() if event is not None else None
    for d in decisions:
        r = d.request
        holds = d.status is Status.HELD and event is not None and event.hold_ttl is not None
        values = (
            uuid.UUID(r.reservation_id),
            uuid.UUID(r.event_id),
            r.user_id,
            r.quantity,
            d.status.value,
            None if d.reject_reason is None else d.reject_reason.value,
            r.idempotency_key,
            r.accepted_at,
            now,
            r.partition,
            r.offset,
            token,
            now + event.hold_ttl if holds and event and event.hold_ttl else None,
            _amount(event, d),
            event.currency if event is not None and _amount(event, d) else "",
            seats.lane(r) if seats is not None else 0,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    conflict = "ON CONFLICT (reservation_id) DO NOTHING" if keep_existing else ""
    rows = await conn.fetch(
        f"""INSERT INTO reservations (reservation_id, event_id, user_id, quantity, status,
               reject_reason, idempotency_key, accepted_at, decided_at,
               source_partition, source_offset, fence_token, hold_expires_at, amount_minor,
               currency, lane, updated_at, version)
           SELECT *, $17::timestamptz, 2 FROM unnest($1::uuid[], $2::uuid[], $3::text[],
               $4::int[], $5::text[], $6::text[], $7::text[], $8::timestamptz[],
               $9::timestamptz[], $10::int[], $11::bigint[], $12::bigint[],
               $13::timestamptz[], $14::bigint[], $15::text[], $16::smallint[])
           {conflict}
           RETURNING {RESERVATION_COLUMNS}""",
        *columns,
        now,
    )
    return {str(row["reservation_id"]): Reservation.from_row(row) for row in rows}


def _amount(event: EventState | None, decision: Decision) -> int:
    """What the seats cost, for a request that won them."""
    if event is None or decision.status not in (Status.HELD, Status.CONFIRMED):
        return 0
    return event.price_minor * decision.request.quantity


async def update_decisions(
    conn: Connection, event: EventState, decisions: Sequence[Decision], token: int, now: datetime
) -> list[Reservation]:
    """Decides waitlisted requests (rows already stored as QUEUED)."""
    changed = []
    for d in decisions:
        holds = d.status is Status.HELD and event.hold_ttl is not None
        row = await conn.fetchrow(
            f"""UPDATE reservations
                SET status = $2, reject_reason = $3, decided_at = $4, updated_at = $4,
                    fence_token = $5, hold_expires_at = $6, amount_minor = $7, currency = $8,
                    version = version + 1
                WHERE reservation_id = $1 AND status = 'QUEUED'
                RETURNING {RESERVATION_COLUMNS}""",
            uuid.UUID(d.request.reservation_id),
            d.status.value,
            None if d.reject_reason is None else d.reject_reason.value,
            now,
            token,
            now + event.hold_ttl if holds and event.hold_ttl else None,
            _amount(event, d),
            event.currency if _amount(event, d) else "",
        )
        if row is not None:
            changed.append(Reservation.from_row(row))
    return changed


async def take_seats(
    conn: Connection, event: EventState, outcome: BatchOutcome, *, decided_sequence: int = 0
) -> EventState:
    """Moves the seats ``outcome``'s winners took out of ``available``, and
    records ``decided_sequence``, the highest line number the batch decided
    (where the gateways' queue positions count from,
    0006_queue_position.sql), in the same statement."""
    if not outcome.seats_taken and not decided_sequence:
        return event
    await conn.execute(
        """UPDATE events SET available = available - $2, held = held + $3,
                             confirmed = confirmed + $4,
                             decided_sequence = GREATEST(decided_sequence, $5)
           WHERE event_id = $1""",
        event.event_id,
        outcome.seats_taken,
        outcome.seats_held,
        outcome.seats_confirmed,
        decided_sequence,
    )
    return replace(
        event,
        available=event.available - outcome.seats_taken,
        held=event.held + outcome.seats_held,
    )


async def settle(
    conn: Connection, event: EventState, token: int, now: datetime
) -> tuple[EventState, list[Reservation]]:
    """Serves, rejects or keeps each waiting request as the seats now allow
    (``settle_waitlist``); returns the event after it and what changed."""
    waiting = await waitlist(conn, event.event_id)
    if not waiting:
        return event, []
    granted = await granted_seats(conn, event.event_id, {r.user_id for r in waiting})
    outcome = settle_waitlist(event.seats(), waiting, now, granted)
    changed = await update_decisions(conn, event, outcome.decisions, token, now)
    return await take_seats(conn, event, outcome), changed


async def release(
    conn: Connection,
    event: EventState,
    reservations: Iterable[Reservation],
    *,
    status: Status,
    token: int,
    now: datetime,
) -> tuple[EventState, list[Reservation]]:
    """Gives the seats of HELD or CONFIRMED ``reservations`` back (they
    become ``status``: EXPIRED or CANCELLED), then settles the waitlist.
    Returns the event after it and every reservation that changed."""
    changed: list[Reservation] = []
    freed_held = freed_confirmed = 0
    for reservation in reservations:
        row = await conn.fetchrow(
            f"""UPDATE reservations
                SET status = $2, updated_at = $3, fence_token = $4, version = version + 1
                WHERE reservation_id = $1 AND status = $5
                RETURNING {RESERVATION_COLUMNS}""",
            uuid.UUID(reservation.reservation_id),
            status.value,
            now,
            token,
            reservation.status.value,
        )
        if row is None:
            continue  # changed meanwhile by someone else
        if reservation.status is Status.HELD:
            freed_held += reservation.quantity
        else:
            freed_confirmed += reservation.quantity
        changed.append(Reservation.from_row(row))
    if freed_held or freed_confirmed:
        await conn.execute(
            """UPDATE events SET available = available + $2 + $3, held = held - $2,
                                 confirmed = confirmed - $3
               WHERE event_id = $1""",
            event.event_id,
            freed_held,
            freed_confirmed,
        )
        event = replace(
            event,
            available=event.available + freed_held + freed_confirmed,
            held=event.held - freed_held,
        )
    event, served = await settle(conn, event, token, now)
    return event, changed + served


async def lock_reservation(conn: Connection, reservation_id: str) -> Reservation | None:
    """The reservation, its row locked until the transaction ends."""
    row = await conn.fetchrow(
        f"SELECT {RESERVATION_COLUMNS} FROM reservations WHERE reservation_id = $1 FOR UPDATE",
        uuid.UUID(reservation_id),
    )
    return None if row is None else Reservation.from_row(row)


async def confirm(
    conn: Connection, event: EventState, held: Reservation, token: int, now: datetime
) -> tuple[EventState, list[Reservation]]:
    """A paid hold's seats become sold ones (HELD -> CONFIRMED), then the
    waitlist is settled: fewer seats held, so a request waiting that cannot
    be served any more is told SOLD_OUT. Returns the event after it and the
    waiting requests that changed (the confirmed reservation is announced by
    whoever records its payment)."""
    await conn.execute(
        """UPDATE reservations SET status = 'CONFIRMED', updated_at = $2,
                  fence_token = $3, version = version + 1
           WHERE reservation_id = $1 AND status = 'HELD'""",
        uuid.UUID(held.reservation_id),
        now,
        token,
    )
    await conn.execute(
        "UPDATE events SET held = held - $2, confirmed = confirmed + $2 WHERE event_id = $1",
        event.event_id,
        held.quantity,
    )
    return await settle(conn, replace(event, held=event.held - held.quantity), token, now)


async def leave_waitlist(
    conn: Connection, event: EventState, waiting: Reservation, token: int, now: datetime
) -> list[Reservation]:
    """A waitlisted request (QUEUED in PostgreSQL) is CANCELLED, and the line
    moves up: whoever is next may fit now. Returns every reservation that
    changed, the cancelled one first."""
    row = await conn.fetchrow(
        f"""UPDATE reservations SET status = 'CANCELLED', updated_at = $2, decided_at = $2,
                   fence_token = $3, version = version + 1
            WHERE reservation_id = $1 AND status = 'QUEUED'
            RETURNING {RESERVATION_COLUMNS}""",
        uuid.UUID(waiting.reservation_id),
        now,
        token,
    )
    assert row is not None  # locked by the caller, and QUEUED
    _, served = await settle(conn, event, token, now)
    return [Reservation.from_row(row), *served]


async def show_payment(
    conn: Connection,
    reservation_id: str,
    *,
    payment_id: str,
    payment_status: str,
    payment_seq: int,
    now: datetime,
) -> Reservation | None:
    """The reservation shows its latest payment attempt (by ``payment_seq``,
    PostgreSQL's order of payments): a new version (an older attempt's late
    change does not replace a newer attempt's). None if it did not change."""
    row = await conn.fetchrow(
        f"""UPDATE reservations SET payment_id = $2, payment_status = $3, updated_at = $4,
                   version = version + 1
            WHERE reservation_id = $1
              AND (payment_id IS NULL OR payment_id = $2
                   OR (SELECT seq FROM payments WHERE payment_id = reservations.payment_id)
                      <= $5)
            RETURNING {RESERVATION_COLUMNS}""",
        uuid.UUID(reservation_id),
        uuid.UUID(payment_id),
        payment_status,
        now,
        payment_seq,
    )
    return None if row is None else Reservation.from_row(row)


async def cancel_paid(conn: Connection, confirmed: Reservation, now: datetime) -> Reservation:
    """A paid reservation's cancellation starts with its refund: the payment
    becomes REFUNDING and the reservation shows it (its seats stay sold
    until the refund is done: ``release`` then, by the saga). Returns the
    reservation as it now stands."""
    assert confirmed.payment_id is not None
    await conn.execute(
        "UPDATE payments SET status = 'REFUNDING', detail = 'cancelled', updated_at = $2 "
        "WHERE payment_id = $1 AND status = 'CAPTURED'",
        uuid.UUID(confirmed.payment_id),
        now,
    )
    row = await conn.fetchrow(
        f"""UPDATE reservations SET payment_status = 'REFUNDING', updated_at = $2,
                   version = version + 1
            WHERE reservation_id = $1 RETURNING {RESERVATION_COLUMNS}""",
        uuid.UUID(confirmed.reservation_id),
        now,
    )
    assert row is not None  # locked by the caller
    return Reservation.from_row(row)


async def resize(conn: Connection, event_id: uuid.UUID, capacity: int) -> None:
    """The event's capacity changed (no lower than its seats held and sold,
    checked by the caller): what is not held or sold is available."""
    await conn.execute(
        """UPDATE events SET capacity = $2, available = $2 - held - confirmed
           WHERE event_id = $1""",
        event_id,
        capacity,
    )
