"""Events and reservations in PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg

from ticketing_common.domain import Event, Reservation
from ticketing_common.storage.queries import EVENT_COLUMNS, fetch_event, fetch_reservation


class Store:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create_event(
        self, name: str, capacity: int, per_user_limit: int, queue_ttl: timedelta
    ) -> Event:
        row = await self._pool.fetchrow(
            f"""INSERT INTO events
                    (event_id, name, capacity, available, per_user_limit, queue_ttl_ms)
                VALUES ($1, $2, $3, $3, $4, $5) RETURNING {EVENT_COLUMNS}""",
            uuid.uuid4(),
            name,
            capacity,
            per_user_limit,
            int(queue_ttl.total_seconds() * 1000),
        )
        assert row is not None  # INSERT ... RETURNING always returns the row
        return Event.from_row(row)

    async def get_event(self, event_id: str) -> Event | None:
        return await fetch_event(self._pool, event_id)

    async def get_reservation(self, reservation_id: str) -> Reservation | None:
        return await fetch_reservation(self._pool, reservation_id)
