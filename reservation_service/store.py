"""Events and reservations: decided ones in PostgreSQL, queued ones as the
gateway recorded them (Redis)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg

from ticketing_common.domain import Event, Money, Reservation
from ticketing_common.storage import seats
from ticketing_common.storage.accepted import AcceptedRequests, State
from ticketing_common.storage.queries import fetch_event, fetch_reservation, insert_event

from .cancel import Cancellations
from .seating_plan import Plan


class Store:
    def __init__(
        self, pool: asyncpg.Pool, accepted: AcceptedRequests, cancellations: Cancellations
    ) -> None:
        self._pool = pool
        self._accepted = accepted
        self._cancellations = cancellations

    async def create_event(  # noqa: PLR0917 - an event's fields
        self,
        name: str,
        capacity: int,
        per_user_limit: int,
        queue_ttl: timedelta,
        price: Money | None,
        hold_ttl: timedelta | None,
        window: tuple[datetime | None, datetime | None],
        priority_tiers: tuple[str, ...] = (),
        plan: Plan | None = None,
    ) -> Event:
        async with self._pool.acquire() as conn, conn.transaction():
            event = await insert_event(
                conn,
                name,
                capacity,
                per_user_limit,
                queue_ttl,
                price,
                hold_ttl,
                window,
                priority_tiers,
                seated=plan is not None,
            )
            if plan is not None:
                await seats.insert_plan(conn, uuid.UUID(event.event_id), plan.sections)
        return event

    async def cancel(self, reservation: Reservation) -> Reservation:
        return await self._cancellations.cancel(reservation)

    async def get_event(self, event_id: str) -> Event | None:
        return await fetch_event(self._pool, event_id)

    async def get_reservation(self, reservation_id: str) -> Reservation | None:
        """The decided reservation, else the queued request, else None. A
        request whose append the broker has not acknowledged is not queued."""
        decided = await fetch_reservation(self._pool, reservation_id)
        if decided is not None:
            return decided
        accepted = await self._accepted.get(reservation_id)
        if accepted is None or accepted.state is not State.QUEUED:
            return None
        # Decided in the meantime? Then that is the answer, not a stale QUEUED.
        return await fetch_reservation(self._pool, reservation_id) or accepted.as_queued()
