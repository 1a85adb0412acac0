"""``ReservationService``: maps protobuf to the store and errors to status codes."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import grpc
import structlog

from ticketing.v1 import reservation_pb2
from ticketing.v1 import reservation_service_pb2 as pb
from ticketing.v1 import reservation_service_pb2_grpc as pb_grpc
from ticketing_common.auth import ADMIN, caller
from ticketing_common.domain import (
    QUEUED_VERSION,
    SaleState,
    Status,
    parse_uuid,
)
from ticketing_common.errors import (
    FailedPrecondition,
    NotFound,
    Reason,
    Violations,
)
from ticketing_common.storage.seat_maps import read_map

from .listing import PageTokens, list_events, list_reservations, page_size
from .sale import SaleControl
from .store import Store
from .validation import validate_create, validate_update

log = structlog.get_logger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]


class ReservationServicer(pb_grpc.ReservationServiceServicer):
    def __init__(
        self, store: Store, sale: SaleControl, pool: asyncpg.Pool, page_tokens: PageTokens
    ) -> None:
        self._store = store
        self._sale = sale
        self._pool = pool
        self._page_tokens = page_tokens

    async def CreateEvent(
        self,
        request: pb.CreateEventRequest,
        context: Context,
    ) -> pb.CreateEventResponse:
        caller().require(ADMIN)
        new = validate_create(request)
        event = await self._store.create_event(
            new.name,
            new.capacity,
            new.per_user_limit,
            new.queue_ttl,
            new.price,
            new.hold_ttl,
            new.window,
            new.priority_tiers,
            new.plan,
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
        event_id, paths, changes = validate_update(request)
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

    async def GetSeatMap(
        self, request: pb.GetSeatMapRequest, context: Context
    ) -> pb.GetSeatMapResponse:
        event_id = parse_uuid("event_id", request.event_id)
        async with self._pool.acquire() as conn:
            seat_map = await read_map(conn, uuid.UUID(event_id))
        if seat_map is not None:
            return pb.GetSeatMapResponse(seat_map=seat_map)
        if await self._store.get_event(event_id) is None:
            raise NotFound(
                f"event {event_id} not found",
                reason=Reason.EVENT_NOT_FOUND,
                metadata={"event_id": event_id},
            )
        raise FailedPrecondition(
            f"event {event_id} has no seating plan (general admission): GetEvent shows its seats",
            reason=Reason.EVENT_NOT_SEATED,
            metadata={"event_id": event_id},
        )

    async def ListEvents(
        self, request: pb.ListEventsRequest, context: Context
    ) -> pb.ListEventsResponse:
        size = page_size(request.page_size)
        events, token = await list_events(self._pool, self._page_tokens, size, request.page_token)
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
            self._page_tokens,
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


def _reservation_not_found(reservation_id: str) -> NotFound:
    """Also the answer for someone else's reservation: an answer that
    differed would tell which ids are taken."""
    return NotFound(
        f"reservation {reservation_id} not found",
        reason=Reason.RESERVATION_NOT_FOUND,
        metadata={"reservation_id": reservation_id},
    )
