"""Changes to an event's seats happen under its Redis lock, in one
PostgreSQL transaction that first checks the lock's fencing token
(``under_event_lock``); deciding a batch of requests is one such change.

Statements per decided batch, whatever its size: fence check (which also
locks the event row), one lookup of already-decided ids, one lookup of the
users' seats, one ``INSERT ... SELECT FROM unnest(...)`` of the decisions,
one seat update (plus the waitlist's, when requests wait).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg
import structlog

from .. import metrics
from ..decisions import Request, decide, decide_seated, reject_all
from ..domain import RejectReason, Reservation
from ..errors import StaleFencingToken
from ..seating import SeatMap
from . import outbox
from .db import Connection
from .locks import EventLocks, Lease
from .queries import fetch_reservations
from .seats import (
    EVENT_STATE,
    EventState,
    forget,
    insert_decisions,
    kept_after_commit,
    maps_of_transaction,
    seat_map,
    settle,
    take_seats,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")

# What runs inside the fenced transaction: the connection, the fencing token
# and the locked event (None if no such event exists).
Work = Callable[[Connection, int, EventState | None], Awaitable[T]]


async def under_event_lock(
    locks: EventLocks,
    pool: asyncpg.Pool,
    event_id: str,
    work: Work[T],
    *,
    lock_wait_s: float,
    fault_delay_s: float = 0.0,
) -> T:
    """Runs ``work`` in one transaction under the event's lock, after the
    fence check: PostgreSQL refuses the transaction if a newer lock holder
    has written already. If Redis lost its counter (a restart without
    persistence), the verified holder lifts it past what PostgreSQL has seen
    and tries once more with a fresh token."""
    lease = await _acquire(locks, event_id, lock_wait_s)
    try:
        if fault_delay_s:
            await asyncio.sleep(fault_delay_s)  # locked, not written yet
        try:
            return await fenced(pool, event_id, lease.token, work)
        except StaleFencingToken as exc:
            if not await locks.raise_floor(event_id, lease, exc.stored):
                log.warning("fencing_refused", token=exc.token, stored=exc.stored)
                metrics.FENCING_REFUSALS.inc()
                raise
            log.warning("fencing_counter_reset", token=exc.token, stored=exc.stored)
            await locks.release(lease)
            lease = await _acquire(locks, event_id, lock_wait_s)
            return await fenced(pool, event_id, lease.token, work)
    finally:
        await locks.release(lease)


async def _acquire(locks: EventLocks, event_id: str, wait_s: float) -> Lease:
    begun = time.perf_counter()
    try:
        return await locks.acquire(event_id, wait_s=wait_s)
    finally:
        metrics.LOCK_WAIT.observe(time.perf_counter() - begun)


async def fenced(pool: asyncpg.Pool, event_id: str, token: int, work: Work[T]) -> T:
    """One transaction that runs ``work`` if ``token`` is newer than every
    token PostgreSQL has seen for the event, else raises StaleFencingToken
    and changes nothing. The caller holds the lock the token came with."""
    event_uuid = uuid.UUID(event_id)
    with maps_of_transaction() as maps:
        try:
            result = await _fenced(pool, event_uuid, token, work)
        except BaseException:
            # Whatever the cache holds of the event is read again.
            forget(event_uuid)
            raise
        # Committed: the seat maps it changed are the cache's again.
        kept_after_commit(maps)
        return result


async def _fenced(pool: asyncpg.Pool, event_uuid: uuid.UUID, token: int, work: Work[T]) -> T:
    event_id = str(event_uuid)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""UPDATE events SET fence_token = $2
                WHERE event_id = $1 AND fence_token < $2
                RETURNING {EVENT_STATE}""",
            event_uuid,
            token,
        )
        if row is None:
            stored = await conn.fetchval(
                "SELECT fence_token FROM events WHERE event_id = $1", event_uuid
            )
            if stored is not None:
                raise StaleFencingToken(event_id, token, stored)
        return await work(
            conn, token, None if row is None else EventState.from_row(event_uuid, row)
        )


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
    """Decides ``requests`` for ``event_id`` under one lock and one fenced
    transaction. Shared by the consumer (a batch) and the synchronous design
    (a single request; ``log_batch=False`` keeps its line at debug level).
    Returns each request's reservation as stored, in order."""
    changed: list[Reservation] = []
    seats: list[EventState] = []

    async def apply(conn: Connection, token: int, event: EventState | None) -> list[Reservation]:
        changed.clear()  # a retry after a fencing counter reset starts over
        seats.clear()
        return await applier.apply(conn, token, event, requests, changed=changed, seats=seats)

    decided = await under_event_lock(
        locks, applier.pool, event_id, apply, lock_wait_s=lock_wait_s, fault_delay_s=fault_delay_s
    )
    # Committed: now they count.
    metrics.BATCH_SIZE.observe(len(requests))
    metrics.count_decisions(changed)
    for event in seats:
        metrics.EVENT_AVAILABLE.labels(event_id).set(event.available)
    (log.info if log_batch else log.debug)("batch_decided", requests=len(requests))
    return decided


class Applier:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def apply(
        self,
        conn: Connection,
        token: int,
        event: EventState | None,
        requests: Sequence[Request],
        *,
        changed: list[Reservation] | None = None,
        seats: list[EventState] | None = None,
    ) -> list[Reservation]:
        """Decides ``requests`` (all for one event, in queue order) inside the
        fenced transaction; returns each one's reservation as stored, in the
        same order (ids decided before come back with their earlier outcome
        and change nothing). Waiting requests this serves first are announced
        through the outbox, like every change outside a decision. What this
        decided or changed is added to ``changed``, the event's seats as
        they end up to ``seats``."""
        changed = [] if changed is None else changed
        now = datetime.now(UTC)
        waiting, waiting_priority = 0, 0
        if event is not None:
            # One count in the usual case (nobody waits); the waitlist itself
            # is read only when somebody does.
            counts = await conn.fetchrow(
                """SELECT count(*) AS total, count(*) FILTER (WHERE lane = 1) AS priority
                   FROM reservations WHERE event_id = $1 AND status = 'QUEUED'""",
                event.event_id,
            )
            assert counts is not None
            waiting, waiting_priority = counts["total"], counts["priority"]
        if event is not None and waiting:
            # Seats that came back without a settle (none should) go to the
            # waiting requests before any new one. First, so that what is
            # read next (a redelivered waiting request) is as it now stands.
            event, served = await settle(conn, event, token, now)
            await outbox.announce(conn, served)
            changed.extend(served)
            # Every reservation settle changed left the waitlist.
            waiting -= len(served)
            waiting_priority -= sum(1 for r in served if r.priority)
        known = await fetch_reservations(conn, [r.reservation_id for r in requests])
        fresh = [r for r in requests if r.reservation_id not in known]
        plan: SeatMap | None = None
        if event is None:
            outcome = reject_all(fresh, RejectReason.INVALID)
        else:
            users = sorted({r.user_id for r in fresh})
            user_seats = {
                row["user_id"]: row["seats"]
                for row in await conn.fetch(
                    """SELECT user_id, sum(quantity)::int AS seats FROM reservations
                       WHERE event_id = $1 AND user_id = ANY($2::text[])
                         AND status IN ('CONFIRMED', 'HELD', 'QUEUED')
                       GROUP BY user_id""",
                    event.event_id,
                    users,
                )
            }
            if event.seated:
                plan = await seat_map(conn, event)
                outcome = decide_seated(event.seats(), plan, user_seats, fresh, now)
            else:
                outcome = decide(event.seats(waiting, waiting_priority), user_seats, fresh, now)
        decided = await insert_decisions(conn, event, outcome.decisions, token, now, plan=plan)
        changed.extend(decided.values())
        if event is not None:
            numbered = max((r.sequence for r in fresh), default=0)
            event = await take_seats(conn, event, outcome, decided_sequence=numbered, plan=plan)
            if seats is not None:
                seats.append(event)
        known.update(decided)
        return [known[r.reservation_id] for r in requests]

    async def reject(self, requests: Sequence[Request], reason: RejectReason) -> list[Reservation]:
        """Records each request as REJECTED for ``reason`` outside any event
        lock (no seats change), unless its id was decided already; returns
        what is stored for each, in order."""
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            await insert_decisions(
                conn, None, reject_all(requests, reason).decisions, 0, now, keep_existing=True
            )
            stored = await fetch_reservations(conn, [r.reservation_id for r in requests])
        return [stored[r.reservation_id] for r in requests]
