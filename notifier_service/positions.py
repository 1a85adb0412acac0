"""Where each queued request stands in its event's queue, and how long it is
likely to wait: kept in memory from the two feeds the notifier reads anyway,
so a position costs a few bisections, not a query.

An event's queue is its waitlist (requests decided QUEUED, e.g. while the
sale is paused or seats are held) and its requests still in the requests
topic. Decisions go lane by lane, the priority lane first, and within a lane
in queue order, which is the order of the requests topic (an event's
requests are all on one partition; a waitlisted request was read before any
request still in the topic). So a request's position is the number of queued
requests in higher lanes plus those ahead of it in its own.

- The requests feed adds a request (its first record: a retry appended
  later keeps the first one's place). Its lane comes from its caller's tier
  and the event's priority tiers, re-read every ``refresh_s``.
- The results feed moves a request to the waitlist (QUEUED; the lane is on
  the result) or takes it out (any other state): that is a departure. The
  two feeds are read independently, so a result may come before its request:
  it is remembered (``EARLY``, for ``EARLY_S``) and applied when the request
  comes.
- What the feeds cannot say is made good from the consumers' committed
  offsets: a request below them has been decided, so one still held as
  undecided (decided before this notifier started, or its result is still
  on the way) is looked up in PostgreSQL. At start-up the waitlist is
  loaded from PostgreSQL.

The estimated wait is ``(position + 1) / rate``, where the rate is the
event's departures per second over the last ``window_s`` (from the first
departure in the window until now, so a queue that stops moving sees its
rate fall). No estimate while the sale is paused, before a second of
departures has been seen, or when nothing departed within the window.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import asyncpg
import structlog
from sortedcontainers import SortedList

from ticketing.v1 import reservation_pb2 as pb
from ticketing_common.domain import DECIDED_VERSION, SaleState
from ticketing_common.failures import is_transient

log = structlog.get_logger(__name__)

# Waitlisted requests' lanes are on their results; these stand for them
# beside the tiers of requests still in the topic.
WAITLIST = ("\x00standard", "\x00priority")
# The shortest span of departures an estimate is made from.
MIN_SPAN_S = 1.0
# Results whose request has not been read yet, remembered at most this many
# and this long.
EARLY = 100_000
EARLY_S = 60.0
# Departures are counted in slots this long (a window holds a few hundred at
# most, however fast the queue moves), and an event's rate is recomputed at
# most this often, however many watchers ask.
SLOT_S = 0.1

# (partition, offset) of the request's first record, and its id.
Key = tuple[int, int, str]
Committed = Callable[[], Awaitable[dict[int, int]]]


@dataclass(slots=True)
class _Entry:
    event_id: str
    key: Key
    group: str  # the caller's tier, or a WAITLIST marker
    added: float


@dataclass(slots=True)
class _Line:
    """One event's queued requests, by group, each group in queue order."""

    groups: dict[str, SortedList[Key]] = field(default_factory=dict)
    # (slot start, how many) departures, oldest first.
    departures: deque[tuple[float, int]] = field(default_factory=deque)
    priority_tiers: frozenset[str] = frozenset()
    paused: bool = False
    # (when computed, departures per second or None).
    rate: tuple[float, float | None] = (float("-inf"), None)

    def lane(self, group: str) -> int:
        if group in WAITLIST:
            return WAITLIST.index(group)
        return 1 if group and group in self.priority_tiers else 0

    def add(self, group: str, key: Key) -> None:
        self.groups.setdefault(group, SortedList()).add(key)

    def remove(self, group: str, key: Key) -> None:
        keys = self.groups.get(group)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self.groups[group]

    def __len__(self) -> int:
        return sum(len(keys) for keys in self.groups.values())


@dataclass(frozen=True, slots=True)
class Place:
    position: int
    # Seconds, or None when there is no basis for an estimate.
    wait_s: float | None

    def to_proto(self) -> pb.QueuePosition:
        place = pb.QueuePosition(position=self.position)
        if self.wait_s is not None:
            place.estimated_wait.FromMilliseconds(round(self.wait_s * 1000))
        return place


LEFT = Place(0, 0.0)  # no longer in the queue


class QueuePositions:
    def __init__(
        self,
        *,
        window_s: float,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window_s = window_s
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lines: dict[str, _Line] = {}
        # Results that came before their requests: (when, the waitlist group
        # it is in, or None: it has left the queue).
        self._early: OrderedDict[str, tuple[float, str | None]] = OrderedDict()

    # -- what the feeds say ------------------------------------------------

    def queued(
        self, reservation_id: str, event_id: str, partition: int, offset: int, tier: str
    ) -> None:
        """A request read from the requests topic (a retry's record is ignored)."""
        if reservation_id in self._entries:
            return
        early = self._early.pop(reservation_id, None)
        if early is not None:
            if early[1] is None:
                return  # decided already
            tier = early[1]
        key = (partition, offset, reservation_id)
        self._entries[reservation_id] = _Entry(event_id, key, tier, self._clock())
        self._line(event_id).add(tier, key)

    def waitlisted(self, reservation_id: str, priority: bool) -> None:
        """A request decided QUEUED: it waits on, in the waitlist's lane."""
        group = WAITLIST[int(priority)]
        entry = self._entries.get(reservation_id)
        if entry is None:
            return
        if entry.group != group:
            line = self._line(entry.event_id)
            line.remove(entry.group, entry.key)
            entry.group = group
            line.add(group, entry.key)

    def left(self, reservation_id: str, *, departed: bool = True) -> None:
        """A request decided otherwise: it leaves the queue."""
        entry = self._entries.pop(reservation_id, None)
        if entry is None:
            return
        line = self._lines[entry.event_id]
        line.remove(entry.group, entry.key)
        if departed:
            self._depart(line)
        if not line.groups and not line.departures:
            del self._lines[entry.event_id]

    def _depart(self, line: _Line) -> None:
        now = self._clock()
        if line.departures and now - line.departures[-1][0] < SLOT_S:
            slot, count = line.departures[-1]
            line.departures[-1] = (slot, count + 1)
        else:
            line.departures.append((now, 1))

    def _remember(self, reservation_id: str, group: str | None) -> None:
        now = self._clock()
        self._early[reservation_id] = (now, group)
        self._early.move_to_end(reservation_id)
        while self._early and (
            len(self._early) > EARLY or next(iter(self._early.values()))[0] < now - EARLY_S
        ):
            self._early.popitem(last=False)

    def on_result(self, reservation: pb.Reservation) -> None:
        reservation_id = reservation.reservation_id
        queued = reservation.status == pb.RESERVATION_STATUS_QUEUED
        if reservation_id in self._entries:
            if queued:
                self.waitlisted(reservation_id, reservation.priority)
            else:
                self.left(reservation_id)
        elif reservation.version <= DECIDED_VERSION or reservation_id in self._early:
            # A decision before its request (its first, or a later one of a
            # request remembered so): applied when the request comes.
            self._remember(reservation_id, WAITLIST[reservation.priority] if queued else None)
            if not queued:
                self._depart(self._line(reservation.event_id))

    # -- what watchers ask -------------------------------------------------

    def place(self, reservation_id: str) -> Place | None:
        """Where the request stands now; None if it is not known here."""
        entry = self._entries.get(reservation_id)
        if entry is None:
            return None
        line = self._lines[entry.event_id]
        lane = line.lane(entry.group)
        position = 0
        for group, keys in line.groups.items():
            other = line.lane(group)
            if other > lane:
                position += len(keys)
            elif other == lane:
                position += keys.bisect_left(entry.key)  # those before it
        rate = None if line.paused else self._rate(line)
        return Place(position, None if rate is None else (position + 1) / rate)

    def _rate(self, line: _Line) -> float | None:
        """Departures per second: those after the window's first slot, over
        the time since it began."""
        now = self._clock()
        computed, rate = line.rate
        if now - computed < SLOT_S:
            return rate
        departures = line.departures
        while departures and departures[0][0] < now - self._window_s:
            departures.popleft()
        rate = None
        span = now - departures[0][0] if departures else 0.0
        if span >= MIN_SPAN_S:
            after_first = sum(n for _, n in departures) - departures[0][1]
            rate = after_first / span if after_first else None
        line.rate = (now, rate)
        return rate

    # -- upkeep ------------------------------------------------------------

    async def load_waitlist(self, pool: asyncpg.Pool) -> None:
        """The waitlist as PostgreSQL holds it (at start-up, once the results
        feed is positioned: later changes arrive on it)."""
        rows = await pool.fetch(
            """SELECT reservation_id, event_id, lane, source_partition, source_offset
               FROM reservations WHERE status = 'QUEUED'"""
        )
        for row in rows:
            reservation_id = str(row["reservation_id"])
            event_id = str(row["event_id"])
            self.queued(
                reservation_id,
                event_id,
                row["source_partition"],
                row["source_offset"],
                WAITLIST[row["lane"]],
            )
        log.info("waitlist_loaded", requests=len(rows))

    async def refresh(self, pool: asyncpg.Pool, committed: dict[int, int] | None) -> None:
        """Re-reads the terms of events with queued requests, settles the
        requests below the consumers' ``committed`` offsets that are still
        held as undecided, and forgets requests older than the TTL."""
        self.forget_stale()
        if not self._lines:
            return
        rows = await pool.fetch(
            "SELECT event_id, priority_tiers, sale_state FROM events "
            "WHERE event_id = ANY($1::uuid[])",
            [uuid.UUID(e) for e in self._lines],
        )
        for row in rows:
            line = self._lines.get(str(row["event_id"]))
            if line is not None:
                line.priority_tiers = frozenset(row["priority_tiers"])
                line.paused = row["sale_state"] == SaleState.PAUSED.value
        if committed:
            await self._settle_decided(pool, self._undecided_below(committed))

    def forget_stale(self) -> None:
        """Forgets requests still held as undecided longer than the TTL (their
        results were lost and the commit check could not settle them; the
        waitlisted wait as long as the sale lets them), and lines nobody
        waits in that have not moved within the window."""
        quiet = self._clock() - self._window_s
        for event_id in [
            e
            for e, line in self._lines.items()
            if not line.groups and (not line.departures or line.departures[-1][0] < quiet)
        ]:
            del self._lines[event_id]
        horizon = self._clock() - self._ttl_s
        stale: list[str] = []
        for reservation_id, entry in self._entries.items():  # oldest first
            if entry.added >= horizon:
                break
            if entry.group not in WAITLIST:
                stale.append(reservation_id)
        for reservation_id in stale:
            self.left(reservation_id, departed=False)

    def _undecided_below(self, committed: dict[int, int]) -> list[str]:
        """Requests still held as undecided whose offsets the consumers have
        committed past (usually none: their results came first)."""
        found: list[str] = []
        for line in self._lines.values():
            for group, keys in line.groups.items():
                if group in WAITLIST:
                    continue
                for partition, offset in committed.items():
                    below = keys.irange((partition, -1, ""), (partition, offset, ""), (True, False))
                    found.extend(key[2] for key in below)
        return found

    async def _settle_decided(self, pool: asyncpg.Pool, reservation_ids: Iterable[str]) -> None:
        ids = list(reservation_ids)
        if not ids:
            return
        rows = await pool.fetch(
            "SELECT reservation_id, status, lane FROM reservations "
            "WHERE reservation_id = ANY($1::uuid[])",
            [uuid.UUID(r) for r in ids],
        )
        found = {str(row["reservation_id"]): row for row in rows}
        for reservation_id in ids:
            row = found.get(reservation_id)
            if row is not None and row["status"] == "QUEUED":
                self.waitlisted(reservation_id, row["lane"] == 1)
            else:
                # Decided (or dead-lettered) without our seeing the result.
                self.left(reservation_id, departed=False)
        log.info("queue_positions_settled", requests=len(ids))

    async def run(self, pool: asyncpg.Pool, committed: Committed, *, refresh_s: float) -> None:
        """``refresh`` every ``refresh_s``, for ever; failures are logged and
        retried next round (positions are advice: they may lag meanwhile)."""
        while True:
            await asyncio.sleep(refresh_s)
            offsets: dict[int, int] | None = None
            if self._entries:
                # Kafka not answering must not keep the terms from being read.
                try:
                    async with asyncio.timeout(max(1.0, refresh_s)):
                        offsets = await committed()
                except Exception as exc:  # noqa: BLE001 - logged; the terms go on
                    log.warning("queue_positions_offsets_failed", error=repr(exc))
            try:
                await self.refresh(pool, offsets)
            except Exception as exc:
                if is_transient(exc):
                    log.warning("queue_positions_refresh_failed", error=repr(exc))
                else:
                    log.exception("queue_positions_refresh_failed")

    def _line(self, event_id: str) -> _Line:
        line = self._lines.get(event_id)
        if line is None:
            line = self._lines[event_id] = _Line()
        return line

    def __len__(self) -> int:
        return len(self._entries)
