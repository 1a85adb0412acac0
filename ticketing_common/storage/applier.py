"""Applies one event's batch to PostgreSQL in one transaction, fenced.

Statements per batch, whatever its size: fence check (which also locks the
event row), one lookup of already-decided ids, one lookup of the users' seats,
one ``INSERT ... SELECT FROM unnest(...)`` of the decisions, one seat update.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from ..decisions import Decision, Request, Seats, decide, reject_all
from ..domain import DECIDED_VERSION, RejectReason, Reservation
from ..errors import StaleFencingToken
from .db import Connection
from .locks import EventLocks
from .queries import fetch_reservations

log = structlog.get_logger(__name__)


async def decide_fenced(
    locks: EventLocks,
    applier: Applier,
    event_id: str,
    requests: Sequence[Request],
    *,
    lock_wait_s: float,
    fault_delay_s: float = 0.0,
    log_batch: bool = True,
) -> list[Reservation]:
    """One lock acquisition, one fenced transaction: decides ``requests`` for
    ``event_id``. Shared by the consumer (a batch) and the synchronous design
    (a single request; ``log_batch=False`` keeps its line at debug level)."""
    lease = await locks.acquire(event_id, wait_s=lock_wait_s)
    try:
        if fault_delay_s:
            await asyncio.sleep(fault_delay_s)  # locked, not written yet
        try:
            decided = await applier.apply(event_id, lease.token, requests)
        except StaleFencingToken as exc:
            # Still ours in Redis but refused by PostgreSQL: Redis lost its
            # counter (restart without persistence). Lift it past what
            # PostgreSQL has seen and take a fresh token.
            if not await locks.raise_floor(event_id, lease, exc.stored):
                log.warning("fencing_refused", token=exc.token, stored=exc.stored)
                raise
            log.warning("fencing_counter_reset", token=exc.token, stored=exc.stored)
            await locks.release(lease)
            lease = await locks.acquire(event_id, wait_s=lock_wait_s)
            decided = await applier.apply(event_id, lease.token, requests)
    finally:
        await locks.release(lease)
    (log.info if log_batch else log.debug)(
        "batch_decided", requests=len(requests), token=lease.token
    )
    return decided


class Applier:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def apply(
        self, event_id: str, token: int, requests: Sequence[Request]
    ) -> list[Reservation]:
        """Decides ``requests`` (all for ``event_id``, in queue order) and returns
        each one's reservation as stored, in the same order; ids decided before
        come back with their earlier outcome and change nothing."""
        event_uuid = uuid.UUID(event_id)
        now = datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            seats_row = await conn.fetchrow(
                """UPDATE events SET fence_token = $2
                   WHERE event_id = $1 AND fence_token < $2
                   RETURNING available, per_user_limit, queue_ttl_ms""",
                event_uuid,
                token,
            )
            if seats_row is None:
                stored = await conn.fetchval(
                    "SELECT fence_token FROM events WHERE event_id = $1", event_uuid
                )
                if stored is not None:
                    raise StaleFencingToken(event_id, token, stored)

            known = await fetch_reservations(conn, [r.reservation_id for r in requests])
            fresh = [r for r in requests if r.reservation_id not in known]
            if seats_row is None:
                outcome = reject_all(fresh, RejectReason.INVALID)
            else:
                users = sorted({r.user_id for r in fresh})
                user_seats = {
                    row["user_id"]: row["seats"]
                    for row in await conn.fetch(
                        """SELECT user_id, sum(quantity)::int AS seats FROM reservations
                           WHERE event_id = $1 AND user_id = ANY($2::text[])
                             AND status IN ('CONFIRMED', 'HELD')
                           GROUP BY user_id""",
                        event_uuid,
                        users,
                    )
                }
                seats = Seats(
                    available=seats_row["available"],
                    per_user_limit=seats_row["per_user_limit"],
                    queue_ttl=timedelta(milliseconds=seats_row["queue_ttl_ms"]),
                )
                outcome = decide(seats, user_seats, fresh, now)
            decided = await self._insert(conn, outcome.decisions, token, now)
            if outcome.seats_confirmed:
                await conn.execute(
                    """UPDATE events SET available = available - $2, confirmed = confirmed + $2
                       WHERE event_id = $1""",
                    event_uuid,
                    outcome.seats_confirmed,
                )
        known.update(decided)
        return [known[r.reservation_id] for r in requests]

    async def reject(self, requests: Sequence[Request], reason: RejectReason) -> list[Reservation]:
        """Records each request as REJECTED for ``reason`` outside any event
        lock (no seats change), unless its id was decided already; returns
        what is stored for each, in order."""
        now = datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            await self._insert(
                conn,
                reject_all(requests, reason).decisions,
                token=0,
                now=now,
                keep_existing=True,
            )
            stored = await fetch_reservations(conn, [r.reservation_id for r in requests])
        return [stored[r.reservation_id] for r in requests]

    @staticmethod
    async def _insert(
        conn: Connection,
        decisions: Sequence[Decision],
        token: int,
        now: datetime,
        *,
        keep_existing: bool = False,
    ) -> dict[str, Reservation]:
        if not decisions:
            return {}
        columns: tuple[list[object], ...] = tuple([] for _ in range(12))
        result: dict[str, Reservation] = {}
        for d in decisions:
            r = d.request
            reason = None if d.reject_reason is None else d.reject_reason.value
            values = (
                uuid.UUID(r.reservation_id),
                uuid.UUID(r.event_id),
                r.user_id,
                r.quantity,
                d.status.value,
                reason,
                r.idempotency_key,
                r.accepted_at,
                now,
                r.partition,
                r.offset,
                token,
            )
            for column, value in zip(columns, values, strict=True):
                column.append(value)
            result[r.reservation_id] = Reservation(
                r.reservation_id,
                r.event_id,
                r.user_id,
                r.quantity,
                d.status,
                d.reject_reason,
                r.accepted_at,
                now,
                DECIDED_VERSION,
                now,
            )
        conflict = "ON CONFLICT (reservation_id) DO NOTHING" if keep_existing else ""
        await conn.execute(
            f"""INSERT INTO reservations (reservation_id, event_id, user_id, quantity, status,
                   reject_reason, idempotency_key, accepted_at, decided_at,
                   source_partition, source_offset, fence_token, updated_at, version)
               SELECT *, $13::timestamptz, $14::int FROM unnest($1::uuid[], $2::uuid[], $3::text[],
                   $4::int[], $5::text[], $6::text[], $7::text[], $8::timestamptz[],
                   $9::timestamptz[], $10::int[], $11::bigint[], $12::bigint[])
               {conflict}""",
            *columns,
            now,
            DECIDED_VERSION,
        )
        return result
