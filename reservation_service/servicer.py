"""``ReservationService``: maps protobuf to the store and errors to status codes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg
import grpc
import structlog

from ticketing.v1 import reservation_pb2
from ticketing.v1 import reservation_service_pb2 as pb
from ticketing.v1 import reservation_service_pb2_grpc as pb_grpc
from ticketing_common.auth import ADMIN, caller
from ticketing_common.domain import (
    QUEUED_VERSION,
    Money,
    SaleState,
    Status,
    from_timestamp,
    parse_uuid,
)
from ticketing_common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Reason,
    Violations,
)

from .listing import list_events, list_reservations, page_size
from .sale import KEEP, Changes, SaleControl
from .store import Store

log = structlog.get_logger(__name__)

MAX_NAME = 200
MAX_CAPACITY = 10_000_000
DEFAULT_QUEUE_TTL = timedelta(minutes=10)
MIN_QUEUE_TTL = timedelta(seconds=1)
MAX_QUEUE_TTL = timedelta(hours=24)
MIN_HOLD_TTL = timedelta(seconds=1)
MAX_HOLD_TTL = timedelta(hours=24)
MAX_PRICE_MINOR = 10**12
CURRENCY = re.compile(r"^[A-Z]{3}$")

Context = grpc.aio.ServicerContext[Any, Any]


class ReservationServicer(pb_grpc.ReservationServiceServicer):
    def __init__(self, store: Store, sale: SaleControl, pool: asyncpg.Pool) -> None:
        self._store = store
        self._sale = sale
        self._pool = pool

    async def CreateEvent(
        self,
        request: pb.CreateEventRequest,
        context: Context,
    ) -> pb.CreateEventResponse:
        caller().require(ADMIN)
        problems = Violations()
        name = request.name.strip()
        if not name:
            problems.add("name", "is required")
        elif len(name) > MAX_NAME:
            problems.add("name", f"must be at most {MAX_NAME} characters")
        elif not name.isprintable():
            problems.add("name", "must not contain control characters")
        if not 1 <= request.capacity <= MAX_CAPACITY:
            problems.add(
                "capacity", f"must be between 1 and {MAX_CAPACITY}, got {request.capacity}"
            )
        if not 1 <= request.per_user_limit <= max(request.capacity, 1):
            problems.add(
                "per_user_limit", f"must be between 1 and capacity, got {request.per_user_limit}"
            )
        queue_ttl = DEFAULT_QUEUE_TTL
        if request.HasField("queue_ttl"):
            queue_ttl = request.queue_ttl.ToTimedelta()
            if not MIN_QUEUE_TTL <= queue_ttl <= MAX_QUEUE_TTL:
                problems.add("queue_ttl", "must be between 1s and 24h")
        price = _price(request, problems)
        hold_ttl = None
        if request.HasField("hold_ttl"):
            hold_ttl = request.hold_ttl.ToTimedelta()
            if not MIN_HOLD_TTL <= hold_ttl <= MAX_HOLD_TTL:
                problems.add("hold_ttl", "must be between 1s and 24h")
            elif price is None:
                problems.add("hold_ttl", "is for priced events: a free event has no holds")
        elif price is not None:
            problems.add("hold_ttl", "is required with a price (how long a seat waits for payment)")
        tiers = _tiers(request.priority_tiers, "priority_tiers", problems)
        window = (_moment(request, "sale_start_time"), _moment(request, "sale_end_time"))
        if window[0] is not None and window[1] is not None and window[1] <= window[0]:
            problems.add("sale_end_time", "must be after sale_start_time")
        problems.raise_if_any()
        event = await self._store.create_event(
            name,
            request.capacity,
            request.per_user_limit,
            queue_ttl,
            price,
            hold_ttl,
            window,
            tiers,
        )
        log.info(
            "event_created",
            event_id=event.event_id,
            capacity=event.capacity,
            per_user_limit=event.per_user_limit,
        )
        return pb.CreateEventResponse(event=event.to_proto())

    async def GetEvent(
        self,
        request: pb.GetEventRequest,
        context: Context,
    ) -> pb.GetEventResponse:
        event_id = parse_uuid("event_id", request.event_id)
        event = await self._store.get_event(event_id)
        if event is None:
            raise NotFound(
                f"event {event_id} not found",
                reason=Reason.EVENT_NOT_FOUND,
                metadata={"event_id": event_id},
            )
        return pb.GetEventResponse(event=event.to_proto())

    async def GetReservation(
        self,
        request: pb.GetReservationRequest,
        context: Context,
    ) -> pb.GetReservationResponse:
        reservation_id = parse_uuid("reservation_id", request.reservation_id)
        reservation = await self._store.get_reservation(reservation_id)
        # Someone else's reservation does not exist for this caller: an
        # answer that differed would tell which ids are taken.
        if reservation is None or not caller().may_see(reservation.user_id):
            raise _reservation_not_found(reservation_id)
        return pb.GetReservationResponse(reservation=reservation.to_proto())

    async def CancelReservation(
        self,
        request: pb.CancelReservationRequest,
        context: Context,
    ) -> pb.CancelReservationResponse:
        reservation_id = parse_uuid("reservation_id", request.reservation_id)
        reservation = await self._store.get_reservation(reservation_id)
        if reservation is None or not caller().may_see(reservation.user_id):
            raise _reservation_not_found(reservation_id)
        if reservation.version == QUEUED_VERSION:
            raise FailedPrecondition(
                f"reservation {reservation_id} is still in the queue; cancel it once it is "
                "decided (WatchReservation tells when)",
                reason=Reason.RESERVATION_NOT_CANCELLABLE,
                metadata={"status": reservation.status.value},
            )
        cancelled = await self._store.cancel(reservation)
        log.info(
            "reservation_cancel",
            reservation_id=reservation_id,
            status=cancelled.status.value,
            payment_status=cancelled.payment_status and cancelled.payment_status.value,
        )
        return pb.CancelReservationResponse(reservation=cancelled.to_proto())

    async def UpdateEvent(
        self, request: pb.UpdateEventRequest, context: Context
    ) -> pb.UpdateEventResponse:
        caller().require(ADMIN)
        problems = Violations()
        event_id = problems.check(parse_uuid, "event.event_id", request.event.event_id)
        paths = list(request.update_mask.paths)
        unknown = sorted(set(paths) - UPDATABLE)
        if not paths:
            problems.add(
                "update_mask", f"must name the fields to change: {', '.join(sorted(UPDATABLE))}"
            )
        elif unknown:
            problems.add(
                "update_mask",
                f"cannot change {', '.join(unknown)}; updatable: {', '.join(sorted(UPDATABLE))}",
            )
        given = request.event
        name = given.name.strip() if "name" in paths else None
        if name is not None and not (1 <= len(name) <= MAX_NAME and name.isprintable()):
            problems.add("event.name", f"must be 1 to {MAX_NAME} characters, no control characters")
        tiers = (
            _tiers(given.priority_tiers, "event.priority_tiers", problems)
            if "priority_tiers" in paths
            else None
        )
        problems.raise_if_any()
        assert event_id is not None
        changes = Changes(
            name=name,
            capacity=given.capacity if "capacity" in paths else None,
            per_user_limit=given.per_user_limit if "per_user_limit" in paths else None,
            sale_start_at=_moment(given, "sale_start_time") if "sale_start_time" in paths else KEEP,
            sale_end_at=_moment(given, "sale_end_time") if "sale_end_time" in paths else KEEP,
            priority_tiers=tiers,
        )
        event = await self._sale.update(event_id, changes)
        log.info("event_updated", event_id=event_id, fields=paths)
        return pb.UpdateEventResponse(event=event.to_proto())

    async def PauseSale(
        self, request: pb.PauseSaleRequest, context: Context
    ) -> pb.PauseSaleResponse:
        return pb.PauseSaleResponse(
            event=await self._sale_state(request.event_id, SaleState.PAUSED)
        )

    async def ResumeSale(
        self, request: pb.ResumeSaleRequest, context: Context
    ) -> pb.ResumeSaleResponse:
        return pb.ResumeSaleResponse(event=await self._sale_state(request.event_id, SaleState.OPEN))

    async def CloseSale(
        self, request: pb.CloseSaleRequest, context: Context
    ) -> pb.CloseSaleResponse:
        return pb.CloseSaleResponse(
            event=await self._sale_state(request.event_id, SaleState.CLOSED)
        )

    async def _sale_state(self, raw_event_id: str, state: SaleState) -> reservation_pb2.Event:
        caller().require(ADMIN)
        event_id = parse_uuid("event_id", raw_event_id)
        event = await self._sale.set_state(event_id, state)
        log.info("sale_state_changed", event_id=event_id, state=state.value)
        return event.to_proto()

    async def ListEvents(
        self, request: pb.ListEventsRequest, context: Context
    ) -> pb.ListEventsResponse:
        size = page_size(request.page_size)
        events, token = await list_events(self._pool, size, request.page_token)
        return pb.ListEventsResponse(events=[e.to_proto() for e in events], next_page_token=token)

    async def ListReservations(
        self, request: pb.ListReservationsRequest, context: Context
    ) -> pb.ListReservationsResponse:
        who = caller()
        problems = Violations()
        size = problems.check(page_size, request.page_size)
        event_id = None
        if request.event_id:
            event_id = problems.check(parse_uuid, "event_id", request.event_id)
        elif who.is_admin:
            problems.add("event_id", "is required for an administrator (one event's list)")
        try:
            statuses = [Status.from_proto(s) for s in request.statuses if s]
        except ValueError:
            problems.add("statuses", "holds a value that is not a ReservationStatus")
            statuses = []
        problems.raise_if_any()
        assert size is not None
        reservations, token = await list_reservations(
            self._pool,
            event_id=event_id,
            # A customer sees their own, whatever else they ask.
            user_id=None if who.is_admin else who.subject,
            statuses=statuses,
            size=size,
            token=request.page_token,
        )
        return pb.ListReservationsResponse(
            reservations=[r.to_proto() for r in reservations], next_page_token=token
        )


UPDATABLE = frozenset(
    {"name", "capacity", "per_user_limit", "sale_start_time", "sale_end_time", "priority_tiers"}
)
MAX_TIERS = 16
MAX_TIER = 64


def _tiers(given: Sequence[str], field: str, problems: Violations) -> tuple[str, ...]:
    """The priority tiers, checked: at most 16, each 1 to 64 printable characters."""
    tiers = tuple(dict.fromkeys(given))
    if len(tiers) > MAX_TIERS:
        problems.add(field, f"at most {MAX_TIERS} tiers")
    for tier in tiers:
        if not 1 <= len(tier) <= MAX_TIER or not tier.isprintable():
            problems.add(
                field, f"a tier is 1 to {MAX_TIER} printable characters, got {tier[:80]!r}"
            )
    return tiers


def _moment(
    message: reservation_pb2.Event | pb.CreateEventRequest,
    field: Literal["sale_start_time", "sale_end_time"],
) -> datetime | None:
    """A timestamp field of ``message``; None when unset."""
    if not message.HasField(field):
        return None
    try:
        return from_timestamp(getattr(message, field))
    except (ValueError, OverflowError):
        prefix = "event." if isinstance(message, reservation_pb2.Event) else ""
        raise InvalidArgument(f"{prefix}{field}", "is out of range") from None


def _price(request: pb.CreateEventRequest, problems: Violations) -> Money | None:
    """The seat price, or None for a free event (no price, or amount 0)."""
    if not request.HasField("price") or request.price.amount_minor == 0:
        return None
    price = request.price
    if not 0 < price.amount_minor <= MAX_PRICE_MINOR:
        problems.add("price.amount_minor", f"must be between 1 and {MAX_PRICE_MINOR}")
    if not CURRENCY.match(price.currency_code):
        problems.add(
            "price.currency_code",
            f"must be an ISO 4217 code such as EUR, got {price.currency_code[:16]!r}",
        )
    return Money(price.currency_code, price.amount_minor)


def _reservation_not_found(reservation_id: str) -> NotFound:
    """Also the answer for someone else's reservation: an answer that
    differed would tell which ids are taken."""
    return NotFound(
        f"reservation {reservation_id} not found",
        reason=Reason.RESERVATION_NOT_FOUND,
        metadata={"reservation_id": reservation_id},
    )
