"""Sale control, live: pause, resume, close, and changes to an event's terms.

Each change runs under the event's fenced lock, in the transaction that
settles the waitlist with the new terms (more capacity, a resumed sale: the
waiting requests are served first; a closed sale: they are told
SALE_CLOSED), and announces what changed through the outbox.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from ticketing_common.domain import Event, SaleState
from ticketing_common.errors import FailedPrecondition, NotFound, Reason, Violations
from ticketing_common.storage import outbox, seats
from ticketing_common.storage.applier import Work, under_event_lock
from ticketing_common.storage.db import Connection
from ticketing_common.storage.locks import EventLocks
from ticketing_common.storage.queries import EVENT_COLUMNS
from ticketing_common.storage.seats import EVENT_STATE, EventState, settle

MAX_CAPACITY = 10_000_000


class Keep:
    """A window end the update leaves as it is."""


KEEP = Keep()


@dataclass(frozen=True, slots=True)
class Changes:
    """What an update sets; None (or KEEP for the window's ends, where None
    clears that end) leaves a field as it is."""

    name: str | None = None
    capacity: int | None = None
    per_user_limit: int | None = None
    sale_start_at: datetime | Keep | None = KEEP
    sale_end_at: datetime | Keep | None = KEEP
    priority_tiers: tuple[str, ...] | None = None


class SaleControl:
    def __init__(self, pool: asyncpg.Pool, locks: EventLocks, *, lock_wait_s: float) -> None:
        self._pool = pool
        self._locks = locks
        self._lock_wait_s = lock_wait_s

    async def set_state(self, event_id: str, state: SaleState) -> Event:
        async def work(conn: Connection, token: int, event: EventState | None) -> Event:
            event = _found(event_id, event)
            if event.sale_state is SaleState.CLOSED and state is not SaleState.CLOSED:
                raise FailedPrecondition(
                    f"the sale of event {event_id} is closed; it does not open again",
                    reason=Reason.SALE_CLOSED,
                    metadata={"event_id": event_id},
                )
            await conn.execute(
                "UPDATE events SET sale_state = $2 WHERE event_id = $1",
                event.event_id,
                state.value,
            )
            return await self._settled(conn, token, event.event_id)

        return await self._locked(event_id, work)

    async def update(self, event_id: str, changes: Changes) -> Event:
        async def work(conn: Connection, token: int, event: EventState | None) -> Event:
            event = _found(event_id, event)
            row = await conn.fetchrow(
                "SELECT capacity, held, confirmed, per_user_limit, sale_start_at, sale_end_at "
                "FROM events WHERE event_id = $1",
                event.event_id,
            )
            assert row is not None
            capacity = row["capacity"] if changes.capacity is None else changes.capacity
            limit = (
                row["per_user_limit"] if changes.per_user_limit is None else changes.per_user_limit
            )
            start = (
                row["sale_start_at"]
                if isinstance(changes.sale_start_at, Keep)
                else changes.sale_start_at
            )
            end = (
                row["sale_end_at"] if isinstance(changes.sale_end_at, Keep) else changes.sale_end_at
            )
            if event.seated and capacity != row["capacity"]:
                raise FailedPrecondition(
                    f"event {event_id} is seated: its capacity is its seating plan's "
                    f"({row['capacity']}), which cannot change",
                    reason=Reason.EVENT_SEATED,
                    metadata={"event_id": event_id, "capacity": str(row["capacity"])},
                )
            problems = Violations()
            sold = row["held"] + row["confirmed"]
            if not sold <= capacity <= MAX_CAPACITY or capacity < 1:
                problems.add(
                    "event.capacity",
                    f"must be between the seats held or sold ({sold}, at least 1) and "
                    f"{MAX_CAPACITY}, got {capacity}",
                )
            if not 1 <= limit <= max(capacity, 1):
                problems.add("event.per_user_limit", f"must be between 1 and capacity, got {limit}")
            if start is not None and end is not None and end <= start:
                problems.add("event.sale_end_time", "must be after sale_start_time")
            problems.raise_if_any()
            await conn.execute(
                """UPDATE events SET name = coalesce($2, name), per_user_limit = $3,
                          sale_start_at = $4, sale_end_at = $5,
                          priority_tiers = coalesce($6, priority_tiers)
                   WHERE event_id = $1""",
                event.event_id,
                changes.name,
                limit,
                start,
                end,
                None if changes.priority_tiers is None else list(changes.priority_tiers),
            )
            await seats.resize(conn, event.event_id, capacity)
            return await self._settled(conn, token, event.event_id)

        return await self._locked(event_id, work)

    async def _locked(self, event_id: str, work: Work[Event]) -> Event:
        return await under_event_lock(
            self._locks, self._pool, event_id, work, lock_wait_s=self._lock_wait_s
        )

    @staticmethod
    async def _settled(conn: Connection, token: int, event_uuid: uuid.UUID) -> Event:
        """Settles the waitlist with the event's new terms; the event after it."""
        state = await conn.fetchrow(
            f"SELECT {EVENT_STATE} FROM events WHERE event_id = $1", event_uuid
        )
        assert state is not None
        _, changed = await settle(
            conn, EventState.from_row(event_uuid, state), token, datetime.now(UTC)
        )
        await outbox.announce(conn, changed)
        row = await conn.fetchrow(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = $1", event_uuid
        )
        assert row is not None
        return Event.from_row(row)


def _found(event_id: str, event: EventState | None) -> EventState:
    if event is None:
        raise NotFound(
            f"event {event_id} not found",
            reason=Reason.EVENT_NOT_FOUND,
            metadata={"event_id": event_id},
        )
    return event
