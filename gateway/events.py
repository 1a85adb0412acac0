"""Which events exist and whether their sale takes requests, without a
database round trip per call.

A known event's sale terms (state, window, priority tiers, and whether it is
sold out) are kept, and re-read when PostgreSQL says they changed: a trigger
notifies the ``ticketing_event_terms`` channel at the commit of any change
to an event's free or held seats, its sale state or its window
(``0007_event_terms_notify.sql``), and ``follow`` marks the event's terms
stale. A stale event is re-read by the next call that wants it, at most
every ``MIN_REREAD_S`` however many changes a rush commits, so a sell-out,
or seats coming back, reach every gateway within about that. They are also
re-read every ``refresh_s`` regardless: what no seat change announces (new
priority tiers, the last waiting request leaving the waitlist), or a
notification missed while the listening connection was down. If a re-read
fails, the terms already known are used (the consumers check the sale again
when they decide). Events are never deleted, and only administrators create
them, so known events are few. An unknown id is remembered briefly, so a
flood of calls for a bad id costs one query per TTL, and concurrent misses
for one id share one query. Unknown ids are bounded too (``MAX_UNKNOWN``,
oldest forgotten first): a flood of random ids cannot grow the gateway
without bound.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog

from ticketing_common.auth import STANDARD_TIER
from ticketing_common.domain import SaleState
from ticketing_common.errors import FailedPrecondition, PermissionDenied, Reason
from ticketing_common.failures import is_transient

from .validation import PlanIds

log = structlog.get_logger(__name__)

# Unknown event ids remembered at most (a few MB).
MAX_UNKNOWN = 10_000
# What the terms trigger notifies (0007_event_terms_notify.sql).
CHANNEL = "ticketing_event_terms"
# A stale event's terms are re-read at most this often.
MIN_REREAD_S = 0.1


@dataclass(frozen=True, slots=True)
class SaleTerms:
    state: SaleState
    start: datetime | None
    end: datetime | None
    # Availability when read: no seat free, none held, nobody waiting is a
    # sell-out the gateway answers itself.
    available: int = 1
    held: int = 0
    waitlisted: int = 0
    # The highest line number decided, read with the waitlist in one statement.
    decided_sequence: int = 0
    # The tiers the event favours: a token of another tier is not for it.
    priority_tiers: frozenset[str] = frozenset()
    # A seated event's plan ids (a plan never changes); None: general admission.
    plan: PlanIds | None = None

    def position(self, sequence: int) -> int:
        """An upper bound on the place of the request numbered ``sequence``:
        the waitlist and every number between the last decided one and it,
        as of this reading. Decisions since only make it smaller; a
        number given out but never queued (a failed append) makes it larger."""
        return self.waitlisted + max(0, sequence - self.decided_sequence - 1)

    @property
    def sold_out(self) -> bool:
        """Nothing can come of a request: no seat is free or may come back
        from a hold, and the sale is not paused (a paused sale keeps
        requests waiting for an administrator to add seats)."""
        return (
            self.state is SaleState.OPEN
            and self.available == 0
            and self.held == 0
            and self.waitlisted == 0
        )

    def check(self, event_id: str, now: datetime) -> None:
        """Refuses a request the sale cannot take now (nothing is queued)."""
        refused = self.refusal(event_id, now)
        if refused is not None:
            raise refused

    def tier_refusal(self, event_id: str, tier: str) -> PermissionDenied | None:
        """Why a caller of ``tier`` may not ask for this event, if it may not:
        a tier other than the standard one must be one the event favours."""
        if tier == STANDARD_TIER or tier in self.priority_tiers:
            return None
        return PermissionDenied(
            f"the caller's tier {tier!r} is not one of the priority tiers of event {event_id}",
            reason=Reason.TIER_NOT_OFFERED,
            metadata={"event_id": event_id, "tier": tier},
        )

    def refusal(self, event_id: str, now: datetime) -> FailedPrecondition | None:
        """Why the sale cannot take a request now, if it cannot."""
        if self.state is SaleState.CLOSED:
            return FailedPrecondition(
                f"the sale of event {event_id} is closed",
                reason=Reason.SALE_CLOSED,
                metadata={"event_id": event_id},
            )
        if self.start is not None and now < self.start:
            return FailedPrecondition(
                f"the sale of event {event_id} starts at {self.start.isoformat()}",
                reason=Reason.SALE_NOT_STARTED,
                metadata={"event_id": event_id, "sale_start_time": self.start.isoformat()},
            )
        if self.end is not None and now > self.end:
            return FailedPrecondition(
                f"the sale of event {event_id} ended at {self.end.isoformat()}",
                reason=Reason.SALE_ENDED,
                metadata={"event_id": event_id, "sale_end_time": self.end.isoformat()},
            )
        return None


class EventDirectory:
    def __init__(self, pool: asyncpg.Pool, *, unknown_ttl_s: float, refresh_s: float) -> None:
        self._pool = pool
        self._unknown_ttl_s = unknown_ttl_s
        self._refresh_s = refresh_s
        # Known events: their terms and when they were read (monotonic).
        self._known: dict[str, tuple[SaleTerms, float]] = {}
        self._unknown_until: OrderedDict[str, float] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[SaleTerms | None]] = {}
        # Known events PostgreSQL said changed since their terms were read.
        self._stale: set[str] = set()
        # Seated events' plans (known events only, so few).
        self._plans: dict[str, PlanIds] = {}

    async def terms(self, event_id: str) -> SaleTerms | None:
        """The event's sale terms, or None if no such event exists."""
        now = time.monotonic()
        known = self._known.get(event_id)
        if known is not None:
            age = now - known[1]
            fresh = event_id not in self._stale or age < MIN_REREAD_S
            if age < self._refresh_s and fresh:
                return known[0]
        until = self._unknown_until.get(event_id)
        if known is None and until is not None and until > now:
            return None
        lookup = self._inflight.get(event_id)
        if lookup is None:
            # Its own task, shared by every caller that misses meanwhile: a
            # caller that gives up (deadline, disconnect) cancels only its wait.
            # A change notified while it reads marks the event stale again.
            self._stale.discard(event_id)
            lookup = asyncio.create_task(self._lookup(event_id))
            # Retrieved here in case every caller gave up before it finished.
            lookup.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._inflight[event_id] = lookup
        try:
            return await asyncio.shield(lookup)
        except Exception as exc:
            if known is None or not is_transient(exc):
                raise
            log.warning("event_terms_stale", event_id=event_id, error=repr(exc))
            return known[0]

    async def follow(self, dsn: str) -> None:
        """Listens on ``CHANNEL`` for ever (on a connection of its own),
        marking the terms of each event it names stale; reconnects after a
        failure, and then marks every known event stale (it may have missed
        their changes)."""
        while True:
            try:
                conn = await asyncpg.connect(dsn, timeout=10)
                closed = asyncio.Event()
                try:
                    conn.add_termination_listener(lambda _, done=closed: done.set())
                    await conn.add_listener(CHANNEL, self._changed)
                    self._stale.update(self._known)
                    await closed.wait()
                finally:
                    await conn.close()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("event_terms_listen_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(1.0)

    def _changed(self, _conn: object, _pid: int, _channel: str, event_id: object) -> None:
        if isinstance(event_id, str) and event_id in self._known:
            self._stale.add(event_id)

    async def exists(self, event_id: str) -> bool:
        return await self.terms(event_id) is not None

    async def _lookup(self, event_id: str) -> SaleTerms | None:
        try:
            found = await self._query(event_id)
        finally:
            del self._inflight[event_id]
        if found is not None:
            self._known[event_id] = (found, time.monotonic())
            self._unknown_until.pop(event_id, None)
        else:
            self._unknown_until[event_id] = time.monotonic() + self._unknown_ttl_s
            self._unknown_until.move_to_end(event_id)
            while len(self._unknown_until) > MAX_UNKNOWN:
                self._unknown_until.popitem(last=False)
        return found

    async def _query(self, event_id: str) -> SaleTerms | None:
        async with self._pool.acquire(timeout=5) as conn:
            row = await conn.fetchrow(
                """SELECT sale_state, sale_start_at, sale_end_at, available, held, decided_sequence,
                          priority_tiers, seated,
                          (SELECT count(*) FROM reservations w WHERE w.event_id = events.event_id
                             AND w.status = 'QUEUED')::int AS waitlisted
                   FROM events WHERE event_id = $1""",
                uuid.UUID(event_id),
                timeout=5,
            )
        if row is None:
            return None
        plan = None
        if row["seated"]:
            plan = self._plans.get(event_id) or await self._plan(event_id)
        return SaleTerms(
            SaleState(row["sale_state"]),
            row["sale_start_at"],
            row["sale_end_at"],
            row["available"],
            row["held"],
            row["waitlisted"],
            row["decided_sequence"],
            frozenset(row["priority_tiers"]),
            plan,
        )

    async def _plan(self, event_id: str) -> PlanIds:
        """A seated event's ids, read once: a plan does not change."""
        async with self._pool.acquire(timeout=5) as conn:
            sections = await conn.fetch(
                "SELECT section_id FROM event_sections WHERE event_id = $1",
                uuid.UUID(event_id),
                timeout=5,
            )
            seats = await conn.fetch(
                "SELECT seat_id FROM event_seats WHERE event_id = $1 AND row_id <> ''",
                uuid.UUID(event_id),
                timeout=5,
            )
        plan = PlanIds(
            frozenset(r["section_id"] for r in sections), frozenset(r["seat_id"] for r in seats)
        )
        self._plans[event_id] = plan
        return plan
