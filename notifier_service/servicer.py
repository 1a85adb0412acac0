"""``NotifierService.WatchReservation``: snapshot first, then every change.

The watcher subscribes to the live feed *before* reading the snapshot, so a
decision committed after the snapshot read is already on its way to the
watcher's queue: nothing falls between snapshot and feed. Updates equal to
what was last sent are skipped, so overlap is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import grpc
import structlog

from ticketing.v1 import notifier_service_pb2 as pb
from ticketing.v1 import notifier_service_pb2_grpc as pb_grpc
from ticketing.v1 import reservation_pb2
from ticketing_common.auth import Identity, caller
from ticketing_common.domain import DECIDED_VERSION, parse_uuid
from ticketing_common.errors import (
    DependencyUnavailable,
    FailedPrecondition,
    NotFound,
    Reason,
    ResourceExhausted,
    Unavailable,
    Violations,
)
from ticketing_common.failures import is_transient
from ticketing_common.status import DEPENDENCY_RETRY_AFTER_S
from ticketing_common.storage.queries import fetch_reservation

from .events import EventWatch
from .feeds import Feed
from .hub import PendingRequests, WatchHub
from .positions import LEFT, Place, QueuePositions
from .seat_maps import SeatMapWatch

log = structlog.get_logger(__name__)

# How long an id unknown to us waits for its request on the live feed before
# the (slower) catch-up with the broker.
QUEUED_ARRIVAL_WAIT_S = 0.5
# Advised to a watcher the notifier could not answer yet: about one catch-up.
CATCH_UP_RETRY_AFTER_S = 0.5


class NotifierServicer(pb_grpc.NotifierServiceServicer):
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        hub: WatchHub,
        pending: PendingRequests,
        requests_feed: Feed,
        recheck_s: float,
        catch_up_timeout_s: float,
        events: EventWatch,
        seat_maps: SeatMapWatch,
        positions: QueuePositions,
        position_interval_s: float,
        max_watches_per_subject: int = 0,
    ) -> None:
        self._events = events
        self._seat_maps = seat_maps
        self._positions = positions
        self._position_interval_s = position_interval_s
        self._pool = pool
        self._max_watches = max_watches_per_subject
        # Open streams per customer; a subject leaves when its last one ends.
        self._watches: Counter[str] = Counter()
        self._hub = hub
        self._pending = pending
        self._requests_feed = requests_feed
        self._recheck_s = recheck_s
        self._catch_up_timeout_s = catch_up_timeout_s

    async def _stored(self, reservation_id: str) -> reservation_pb2.Reservation | None:
        with _store_outage("reservation store"):
            stored = await fetch_reservation(self._pool, reservation_id)
        return None if stored is None else stored.to_proto()

    async def _snapshot(
        self, reservation_id: str, updates: asyncio.Queue[reservation_pb2.Reservation]
    ) -> reservation_pb2.Reservation:
        current = await self._stored(reservation_id) or self._pending.get(reservation_id)
        if current is not None:
            return current
        # Accepted a moment ago, perhaps, and not read by our requests feed
        # yet: it usually arrives on the live feed within milliseconds.
        try:
            return await asyncio.wait_for(updates.get(), QUEUED_ARRIVAL_WAIT_S)
        except TimeoutError:
            pass
        # Not within that: make sure we have read all the broker holds now.
        caught_up = await self._requests_feed.catch_up(self._catch_up_timeout_s)
        current = await self._stored(reservation_id) or self._pending.get(reservation_id)
        if current is None and not updates.empty():
            current = updates.get_nowait()
        if current is not None:
            return current
        if not caught_up:
            # It may be queued and we are behind: do not claim it does not exist.
            raise Unavailable(
                "the notifier is catching up with the queue; retry the watch",
                reason=Reason.NOTIFIER_CATCHING_UP,
                retry_after_s=CATCH_UP_RETRY_AFTER_S,
            )
        raise _not_found(reservation_id)

    @contextlib.contextmanager
    def _counted(self, who: Identity) -> Iterator[None]:
        """Holds one of ``who``'s watch slots for the stream's life."""
        if who.is_admin or not self._max_watches:
            yield
            return
        if self._watches[who.subject] >= self._max_watches:
            raise ResourceExhausted(
                f"at most {self._max_watches} open watches per caller; close one first",
                reason=Reason.TOO_MANY_STREAMS,
                retry_after_s=1.0,
            )
        self._watches[who.subject] += 1
        try:
            yield
        finally:
            self._watches[who.subject] -= 1
            if not self._watches[who.subject]:
                del self._watches[who.subject]

    async def WatchReservation(
        self,
        request: pb.WatchReservationRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.WatchReservationResponse]:
        reservation_id = parse_uuid("reservation_id", request.reservation_id)
        with (
            self._counted(caller()),
            structlog.contextvars.bound_contextvars(reservation_id=reservation_id),
            self._hub.subscribe(reservation_id) as updates,
        ):
            current = await self._snapshot(reservation_id, updates)
            if not caller().may_see(current.user_id):
                # As if it did not exist: the answer must not tell whose it is.
                raise _not_found(reservation_id)
            place = self._place(current)
            yield _response(current, place)
            loop = asyncio.get_running_loop()
            recheck_at = loop.time() + self._recheck_s
            place_at = loop.time() + self._position_interval_s
            while not current.settled:
                queued = current.status == reservation_pb2.RESERVATION_STATUS_QUEUED
                wake_at = min(recheck_at, place_at) if queued else recheck_at
                update: reservation_pb2.Reservation | None = None
                try:
                    update = await asyncio.wait_for(updates.get(), max(0.0, wake_at - loop.time()))
                except TimeoutError:
                    if loop.time() >= recheck_at:
                        # The next one a whole interval on, whatever this finds.
                        recheck_at = loop.time() + self._recheck_s
                        # Safety net under the live feed: a result record lost
                        # on the way (e.g. a broker that forgot it) must not
                        # leave the watcher waiting forever. If the store is
                        # down too, the live feed may still deliver: keep the
                        # stream.
                        try:
                            update = await self._stored(reservation_id)
                        except DependencyUnavailable:
                            log.warning("recheck_failed")
                if update is not None:
                    recheck_at = loop.time() + self._recheck_s
                # Only a newer state goes out: a late QUEUED copy from the
                # requests feed, or a state the recheck found again, does not.
                if update is not None and update.version > current.version:
                    current = update
                    place = self._place(current)
                    yield _response(current, place)
                elif queued and loop.time() >= place_at:
                    # Its place alone, at most once per interval, if it moved.
                    place_at = loop.time() + self._position_interval_s
                    moved = self._place(current)
                    if _differs(moved, place):
                        place = moved
                        yield _response(current, place)
            log.info(
                "watch_finished", status=reservation_pb2.ReservationStatus.Name(current.status)
            )

    def _place(self, reservation: reservation_pb2.Reservation) -> Place | None:
        if reservation.status != reservation_pb2.RESERVATION_STATUS_QUEUED:
            return LEFT
        if reservation.version >= DECIDED_VERSION:
            # On the waitlist, as the state read says: its lane is on it
            # (the results feed may not have told us yet).
            self._positions.waitlisted(reservation.reservation_id, reservation.priority)
        return self._positions.place(reservation.reservation_id)

    async def WatchEvent(
        self,
        request: pb.WatchEventRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.WatchEventResponse]:
        event_id = parse_uuid("event_id", request.event_id)
        with self._counted(caller()), self._events.subscribe(event_id) as updates:
            with _store_outage("event store"):
                current = await self._events.read([event_id])
            if not current:
                raise NotFound(
                    f"event {event_id} not found",
                    reason=Reason.EVENT_NOT_FOUND,
                    metadata={"event_id": event_id},
                )
            last = current[0].to_proto()
            yield pb.WatchEventResponse(event=last)
            while True:
                update = await updates.get()
                if update != last:
                    last = update
                    yield pb.WatchEventResponse(event=update)

    async def WatchSeatMap(
        self,
        request: pb.WatchSeatMapRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.WatchSeatMapResponse]:
        problems = Violations()
        event_id = problems.check(parse_uuid, "event_id", request.event_id)
        if request.from_version < 0:
            problems.add("from_version", f"must be 0 or a version seen, got {request.from_version}")
        problems.raise_if_any()
        assert event_id is not None
        with self._counted(caller()):
            with _store_outage("event store"):
                start = await self._seat_maps.start(uuid.UUID(event_id), request.from_version)
                if start is None:
                    events = await self._events.read([event_id])
            if start is None:
                if not events:
                    raise NotFound(
                        f"event {event_id} not found",
                        reason=Reason.EVENT_NOT_FOUND,
                        metadata={"event_id": event_id},
                    )
                raise FailedPrecondition(
                    f"event {event_id} has no seating plan (general admission): "
                    "WatchEvent shows its seats",
                    reason=Reason.EVENT_NOT_SEATED,
                    metadata={"event_id": event_id},
                )
            version, first, latest = start
            with _store_outage("event store"):
                async for update in self._seat_maps.watch(
                    uuid.UUID(event_id), version, first, latest
                ):
                    yield update


def _response(
    reservation: reservation_pb2.Reservation, place: Place | None
) -> pb.WatchReservationResponse:
    return pb.WatchReservationResponse(
        reservation=reservation, queue_position=None if place is None else place.to_proto()
    )


def _differs(new: Place | None, old: Place | None) -> bool:
    """Worth a message: the position moved, or the estimate appeared,
    vanished or changed by a second and a tenth of itself."""
    if new is None or old is None:
        return new is not old
    if new.position != old.position or (new.wait_s is None) != (old.wait_s is None):
        return True
    if new.wait_s is None or old.wait_s is None:
        return False
    return abs(new.wait_s - old.wait_s) >= max(1.0, 0.1 * old.wait_s)


@contextlib.contextmanager
def _store_outage(store: str) -> Iterator[None]:
    """A transient failure of PostgreSQL reaches the watcher as UNAVAILABLE
    with a RetryInfo."""
    try:
        yield
    except Exception as exc:
        if is_transient(exc):
            raise DependencyUnavailable(
                f"{store} unavailable; retry the watch", retry_after_s=DEPENDENCY_RETRY_AFTER_S
            ) from exc
        raise


def _not_found(reservation_id: str) -> NotFound:
    return NotFound(
        f"reservation {reservation_id} not found",
        reason=Reason.RESERVATION_NOT_FOUND,
        metadata={"reservation_id": reservation_id},
    )
