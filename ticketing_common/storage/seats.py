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

import json
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import asyncpg

from ..decisions import (
    BatchOutcome,
    Decision,
    Request,
    Seats,
    settle_seated,
    settle_waitlist,
)
from ..domain import Reservation, SaleState, Status
from ..seating import PlanRow, PlanSection, SeatMap, SeatRef, SeatState
from .db import Connection
from .queries import RESERVATION_COLUMNS

# The event columns the fence statement returns, for the seat decisions.
EVENT_STATE = (
    "available, held, confirmed, per_user_limit, queue_ttl_ms, hold_ttl_ms, price_minor, currency,"
    " sale_state, sale_start_at, sale_end_at, priority_tiers, seated, seat_version"
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
    # A seated event, and the version of its seats as locked.
    seated: bool = False
    seat_version: int = 0

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
            seated=row["seated"],
            seat_version=row["seat_version"],
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


# Seat maps kept in memory, by event, at the version they show: a seated
# event's map is read once, then kept up to date by the changes this
# process makes; a change by another process raises the version, and the
# map is read again. At most this many events' maps are kept.
MAX_MAPS = 16
_maps: OrderedDict[uuid.UUID, tuple[int, SeatMap]] = OrderedDict()
# Changes of one event's seats kept for WatchSeatMap to resume from.
KEEP_CHANGES = 10_000


class SeatConflict(RuntimeError):
    """A seat was not in the state a change expected: the transaction is
    refused rather than a seat given twice (a defect, never a buyer's doing)."""


def forget(event_id: uuid.UUID) -> None:
    """The event's map in memory may show what was not committed."""
    _maps.pop(event_id, None)


# The maps a transaction took out of the cache and changed: put back once
# it has committed (``maps_of_transaction``), so no other transaction of
# this process ever sees a map with changes that may yet be rolled back.
_pending: ContextVar[dict[uuid.UUID, tuple[int, SeatMap]] | None] = ContextVar(
    "ticketing_pending_seat_maps", default=None
)


@contextmanager
def maps_of_transaction() -> Iterator[dict[uuid.UUID, tuple[int, SeatMap]]]:
    """Around one fenced transaction: the maps it takes are its own until
    ``kept_after_commit``; dropped if it fails."""
    pending: dict[uuid.UUID, tuple[int, SeatMap]] = {}
    token = _pending.set(pending)
    try:
        yield pending
    finally:
        _pending.reset(token)


def kept_after_commit(pending: dict[uuid.UUID, tuple[int, SeatMap]]) -> None:
    for event_id, (version, plan) in pending.items():
        _keep(event_id, version, plan)


async def seat_map(conn: Connection, event: EventState) -> SeatMap:
    """The event's seat map at ``event.seat_version`` (as locked). Inside
    ``maps_of_transaction`` it is taken out of the cache for the
    transaction, which changes it."""
    pending = _pending.get()
    if pending is not None and event.event_id in pending:
        version, plan = pending[event.event_id]
        if version == event.seat_version:
            return plan
    cached = _maps.pop(event.event_id, None) if pending is not None else _maps.get(event.event_id)
    if cached is not None and cached[0] == event.seat_version:
        plan = cached[1]
    else:
        plan = await load_map(conn, event.event_id)
    _remember(event.event_id, event.seat_version, plan)
    return plan


def _remember(event_id: uuid.UUID, version: int, plan: SeatMap) -> None:
    """The map at ``version``: the transaction's until it commits, if in one."""
    pending = _pending.get()
    if pending is not None:
        pending[event_id] = (version, plan)
    else:
        _keep(event_id, version, plan)


def _keep(event_id: uuid.UUID, version: int, plan: SeatMap) -> None:
    _maps[event_id] = (version, plan)
    _maps.move_to_end(event_id)
    while len(_maps) > MAX_MAPS:
        _maps.popitem(last=False)


async def load_map(conn: Connection, event_id: uuid.UUID) -> SeatMap:
    """A seated event's plan and its seats' states, from PostgreSQL."""
    sections = await conn.fetch(
        """SELECT section_id, name, price_minor, standing, capacity FROM event_sections
           WHERE event_id = $1 ORDER BY ordinal""",
        event_id,
    )
    seats = await conn.fetch(
        """SELECT e.section_id, e.row_id, e.seat_id, e.accessible, e.state
           FROM event_seats e JOIN event_sections s USING (event_id, section_id)
           WHERE e.event_id = $1
           ORDER BY s.ordinal, e.row_ordinal, e.ordinal""",
        event_id,
    )
    rows: dict[str, dict[str, list[asyncpg.Record]]] = defaultdict(dict)
    states: dict[str, SeatState] = {}
    for seat in seats:
        states[seat["seat_id"]] = SeatState(seat["state"])
        if seat["row_id"]:
            rows[seat["section_id"]].setdefault(seat["row_id"], []).append(seat)
    plan = [
        PlanSection(
            section["section_id"],
            tuple(
                PlanRow(
                    row_id,
                    tuple(s["seat_id"] for s in row),
                    accessible=frozenset(s["seat_id"] for s in row if s["accessible"]),
                    blocked=frozenset(s["seat_id"] for s in row if s["state"] == "BLOCKED"),
                )
                for row_id, row in rows[section["section_id"]].items()
            ),
            name=section["name"],
            price_minor=section["price_minor"],
            capacity=section["capacity"] if section["standing"] else 0,
        )
        for section in sections
    ]
    return SeatMap(plan, states)


async def insert_plan(
    conn: Connection, event_id: uuid.UUID, sections: Sequence[PlanSection]
) -> None:
    """A new seated event's sections and seats, every one available but the
    blocked (in the transaction that creates the event)."""
    await conn.executemany(
        """INSERT INTO event_sections (event_id, section_id, ordinal, name, price_minor,
                                       standing, capacity, available)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $7)""",
        [
            (event_id, s.section_id, i, s.name, s.price_minor, s.standing, s.sellable)
            for i, s in enumerate(sections)
        ],
    )
    records: list[tuple[object, ...]] = []
    for section in sections:
        if section.standing:
            records.extend(
                (event_id, place, section.section_id, "", 0, n, False, "AVAILABLE")
                for n, place in enumerate(section.place_ids())
            )
        for r, row in enumerate(section.rows):
            records.extend(
                (
                    event_id,
                    seat,
                    section.section_id,
                    row.row_id,
                    r,
                    n,
                    seat in row.accessible,
                    "BLOCKED" if seat in row.blocked else "AVAILABLE",
                )
                for n, seat in enumerate(row.seat_ids)
            )
    await conn.copy_records_to_table(
        "event_seats",
        records=records,
        columns=[
            "event_id",
            "seat_id",
            "section_id",
            "row_id",
            "row_ordinal",
            "ordinal",
            "accessible",
            "state",
        ],
    )


@dataclass(frozen=True, slots=True)
class Move:
    """One seat changing hands: from one state to another, for a reservation
    (taken) or none (given back)."""

    seat: SeatRef
    before: SeatState
    after: SeatState
    reservation_id: str | None


async def move_seats(
    conn: Connection, event: EventState, plan: SeatMap, moves: Sequence[Move]
) -> EventState:
    """Records ``moves`` (``plan`` shows them already) in the event's seats
    and its sections' counts, as the event's next seat version and its
    change for WatchSeatMap. Every seat must be as ``before`` says
    (``SeatConflict`` otherwise). Returns the event at the new version."""
    if not moves:
        return event
    status = await conn.execute(
        """UPDATE event_seats e SET state = u.after, reservation_id = u.reservation_id::uuid
           FROM unnest($2::text[], $3::text[], $4::text[], $5::text[])
                AS u(seat_id, before, after, reservation_id)
           WHERE e.event_id = $1 AND e.seat_id = u.seat_id AND e.state = u.before""",
        event.event_id,
        [m.seat.seat_id for m in moves],
        [m.before.value for m in moves],
        [m.after.value for m in moves],
        # As text, cast by PostgreSQL: no UUID object per seat.
        [m.reservation_id for m in moves],
    )
    if status != f"UPDATE {len(moves)}":
        raise SeatConflict(f"event {event.event_id}: {len(moves)} seats to move, {status}")
    deltas: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    column = {SeatState.AVAILABLE: 0, SeatState.HELD: 1, SeatState.SOLD: 2}
    for m in moves:
        deltas[m.seat.section_id][column[m.before]] -= 1
        deltas[m.seat.section_id][column[m.after]] += 1
    counted = await conn.fetch(
        """UPDATE event_sections s SET available = s.available + d.available,
                  held = s.held + d.held, sold = s.sold + d.sold
           FROM unnest($2::text[], $3::int[], $4::int[], $5::int[])
                AS d(section_id, available, held, sold)
           WHERE s.event_id = $1 AND s.section_id = d.section_id
           RETURNING s.section_id, s.capacity, s.available, s.held, s.sold""",
        event.event_id,
        list(deltas),
        *([d[i] for d in deltas.values()] for i in range(3)),
    )
    version = await conn.fetchval(
        "UPDATE events SET seat_version = seat_version + 1 WHERE event_id = $1"
        " RETURNING seat_version",
        event.event_id,
    )
    seats = [
        [
            m.seat.section_id,
            m.seat.row_id,
            m.seat.seat_id,
            m.after.value,
            plan.accessible(m.seat.seat_id),
        ]
        for m in moves
        if m.seat.row_id
    ]
    sections = [
        [r["section_id"], r["capacity"], r["available"], r["held"], r["sold"]] for r in counted
    ]
    await conn.execute(
        "INSERT INTO seat_changes (event_id, version, seats, sections) VALUES ($1, $2, $3, $4)",
        event.event_id,
        version,
        json.dumps(seats),
        json.dumps(sections),
    )
    if version % 100 == 0:
        await conn.execute(
            "DELETE FROM seat_changes WHERE event_id = $1 AND version <= $2",
            event.event_id,
            version - KEEP_CHANGES,
        )
    _remember(event.event_id, version, plan)
    return replace(event, seat_version=version)


async def _give_back(
    conn: Connection, event: EventState, reservations: Sequence[Reservation]
) -> EventState:
    """The seats of HELD or CONFIRMED seated ``reservations`` are free again."""
    if not event.seated or not reservations:
        return event
    plan = await seat_map(conn, event)
    moves = [
        Move(
            seat,
            SeatState.HELD if r.status is Status.HELD else SeatState.SOLD,
            SeatState.AVAILABLE,
            None,
        )
        for r in reservations
        for seat in r.seats
    ]
    plan.set_state([m.seat.seat_id for m in moves], SeatState.AVAILABLE)
    return await move_seats(conn, event, plan, moves)


async def waitlist(conn: Connection, event_id: uuid.UUID) -> list[Request]:
    """The event's waiting requests, in queue order: by when they were put
    on the waitlist (one transaction at a time, under the event's lock, in
    queue order), then, within one transaction, by their place in the
    partition. (``decided_at`` of a waiting row is when it started waiting.)"""
    rows = await conn.fetch(
        """SELECT reservation_id, event_id, user_id, quantity, idempotency_key, accepted_at,
                  source_partition, source_offset, ask_section, ask_seats, ask_accessible
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
            section_id=row["ask_section"],
            seat_ids=tuple(row["ask_seats"]),
            accessible=row["ask_accessible"],
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
    plan: SeatMap | None = None,
) -> dict[str, Reservation]:
    """Stores new requests as decided (or waitlisted), one statement.
    ``plan``: a seated event's map, for its sections' prices."""
    if not decisions:
        return {}
    columns: tuple[list[object], ...] = tuple([] for _ in range(20))
    seats = event.seats() if event is not None else None
    for d in decisions:
        r = d.request
        holds = d.status is Status.HELD and event is not None and event.hold_ttl is not None
        amount = _amount(event, d, plan)
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
            amount,
            event.currency if event is not None and amount else "",
            seats.lane(r) if seats is not None else 0,
            r.section_id,
            # A text[] column of a text[][] unnest: one string per request.
            "\x1f".join(r.seat_ids),
            r.accessible,
            _seats_json(d.seats),
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    conflict = "ON CONFLICT (reservation_id) DO NOTHING" if keep_existing else ""
    rows = await conn.fetch(
        f"""INSERT INTO reservations (reservation_id, event_id, user_id, quantity, status,
               reject_reason, idempotency_key, accepted_at, decided_at,
               source_partition, source_offset, fence_token, hold_expires_at, amount_minor,
               currency, lane, ask_section, ask_seats, ask_accessible, seats, updated_at, version)
           SELECT r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15, r16, r17,
                  CASE WHEN r18 = '' THEN '{{}}'::text[] ELSE string_to_array(r18, E'\x1f') END,
                  r19, r20::jsonb, $21::timestamptz, 2
           FROM unnest($1::uuid[], $2::uuid[], $3::text[],
               $4::int[], $5::text[], $6::text[], $7::text[], $8::timestamptz[],
               $9::timestamptz[], $10::int[], $11::bigint[], $12::bigint[],
               $13::timestamptz[], $14::bigint[], $15::text[], $16::smallint[],
               $17::text[], $18::text[], $19::boolean[], $20::text[])
               AS u(r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15, r16,
                    r17, r18, r19, r20)
           {conflict}
           RETURNING {RESERVATION_COLUMNS}""",
        *columns,
        now,
    )
    return {str(row["reservation_id"]): Reservation.from_row(row) for row in rows}


def _seats_json(seats: Sequence[SeatRef]) -> str | None:
    return json.dumps([[s.section_id, s.row_id, s.seat_id] for s in seats]) if seats else None


def _amount(event: EventState | None, decision: Decision, plan: SeatMap | None = None) -> int:
    """What the seats cost, for a request that won them: a seated event's
    seats at their section's price, or the event's."""
    if event is None or decision.status not in (Status.HELD, Status.CONFIRMED):
        return 0
    if decision.seats and plan is not None:
        prices = plan.prices()
        total = 0
        for seat in decision.seats:
            price = prices[seat.section_id]
            total += event.price_minor if price is None else price
        return total
    return event.price_minor * decision.request.quantity


async def update_decisions(
    conn: Connection,
    event: EventState,
    decisions: Sequence[Decision],
    token: int,
    now: datetime,
    *,
    plan: SeatMap | None = None,
) -> list[Reservation]:
    """Decides waitlisted requests (rows already stored as QUEUED)."""
    changed = []
    for d in decisions:
        holds = d.status is Status.HELD and event.hold_ttl is not None
        amount = _amount(event, d, plan)
        row = await conn.fetchrow(
            f"""UPDATE reservations
                SET status = $2, reject_reason = $3, decided_at = $4, updated_at = $4,
                    fence_token = $5, hold_expires_at = $6, amount_minor = $7, currency = $8,
                    seats = $9::jsonb, version = version + 1
                WHERE reservation_id = $1 AND status = 'QUEUED'
                RETURNING {RESERVATION_COLUMNS}""",
            uuid.UUID(d.request.reservation_id),
            d.status.value,
            None if d.reject_reason is None else d.reject_reason.value,
            now,
            token,
            now + event.hold_ttl if holds and event.hold_ttl else None,
            amount,
            event.currency if amount else "",
            _seats_json(d.seats),
        )
        if row is not None:
            changed.append(Reservation.from_row(row))
    return changed


_SEAT_OF = {Status.HELD: "HELD", Status.CONFIRMED: "SOLD"}


async def take_seats(
    conn: Connection,
    event: EventState,
    outcome: BatchOutcome,
    *,
    decided_sequence: int = 0,
    plan: SeatMap | None = None,
) -> EventState:
    """Moves the seats ``outcome``'s winners took out of ``available`` (and
    a seated event's seats, which ``plan`` shows taken already), and
    records ``decided_sequence``, the highest line number the batch decided
    (where the gateways' queue positions count from,
    0006_queue_position.sql), in the same statement."""
    if not outcome.seats_taken and not decided_sequence:
        return event
    if event.seated and plan is not None:
        event = await move_seats(
            conn,
            event,
            plan,
            [
                Move(
                    seat,
                    SeatState.AVAILABLE,
                    SeatState(_SEAT_OF[d.status]),
                    d.request.reservation_id,
                )
                for d in outcome.decisions
                for seat in d.seats
            ],
        )
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
    if not event.seated:
        outcome = settle_waitlist(event.seats(), waiting, now, granted)
        changed = await update_decisions(conn, event, outcome.decisions, token, now)
        return await take_seats(conn, event, outcome), changed
    plan = await seat_map(conn, event)
    outcome = settle_seated(event.seats(), plan, waiting, now, granted)
    changed = await update_decisions(conn, event, outcome.decisions, token, now, plan=plan)
    return await take_seats(conn, event, outcome, plan=plan), changed


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
    given_back: list[Reservation] = []
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
        given_back.append(reservation)
    event = await _give_back(conn, event, given_back)
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
    if event.seated and held.seats:
        plan = await seat_map(conn, event)
        plan.set_state([s.seat_id for s in held.seats], SeatState.SOLD)
        event = await move_seats(
            conn,
            event,
            plan,
            [Move(s, SeatState.HELD, SeatState.SOLD, held.reservation_id) for s in held.seats],
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
