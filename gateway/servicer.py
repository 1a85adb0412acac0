"""``GatewayService``: accept fast, never claim what the broker did not take."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import grpc
import structlog

from ticketing.v1 import gateway_service_pb2 as pb
from ticketing.v1 import gateway_service_pb2_grpc as pb_grpc
from ticketing.v1 import reservation_pb2
from ticketing_common.auth import caller
from ticketing_common.codecs import encode_request
from ticketing_common.decisions import Request
from ticketing_common.domain import RejectReason, Status
from ticketing_common.errors import (
    BrokerUnavailable,
    Cancelled,
    DeadlineExceeded,
    NotFound,
    Reason,
    TicketingError,
    Unimplemented,
)
from ticketing_common.record_keys import RecordKeys
from ticketing_common.storage.rate_limits import RateLimits

from . import metrics
from .addresses import ClientAddresses
from .broker import BrokerGate
from .events import EventDirectory, SaleTerms
from .idempotency import IdempotencyKeys
from .sync import SyncReserver
from .validation import ValidReserve, check_seats, validate_reserve

log = structlog.get_logger(__name__)

QUEUED = Status.QUEUED.to_proto()
REJECTED = Status.REJECTED.to_proto()
SOLD_OUT = RejectReason.SOLD_OUT.to_proto()
# Leave the caller this much of its deadline to receive our UNAVAILABLE.
DEADLINE_MARGIN_S = 0.1


class GatewayServicer(pb_grpc.GatewayServiceServicer):
    def __init__(
        self,
        *,
        events: EventDirectory,
        broker: BrokerGate,
        keys: IdempotencyKeys,
        limits: RateLimits,
        addresses: ClientAddresses,
        record_keys: RecordKeys,
        publish_timeout_s: float,
        fault_delay_s: float = 0.0,
        sync: SyncReserver | None = None,
        sold_out_fast_path: bool = True,
    ) -> None:
        self._sold_out_fast_path = sold_out_fast_path
        self._events = events
        self._broker = broker
        self._keys = keys
        self._limits = limits
        self._addresses = addresses
        self._record_keys = record_keys
        self._publish_timeout_s = publish_timeout_s
        self._fault_delay_s = fault_delay_s
        self._sync = sync

    async def ReserveSync(
        self,
        request: pb.ReserveSyncRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ReserveSyncResponse:
        if self._sync is None:
            raise Unimplemented("ReserveSync is not enabled on this gateway")
        subject = caller().subject
        await self._limits.admit(subject=subject, address=self._addresses.of(context))
        valid = validate_reserve(request, subject)
        await self._known_event(valid)
        # The same key rules as Reserve: another quantity under it is refused.
        reservation = await self._sync.reserve(await self._keys.admit(await self._request(valid)))
        return pb.ReserveSyncResponse(reservation=reservation.to_proto())

    async def _request(self, valid: ValidReserve) -> Request:
        """The request a valid call stands for, accepted now; its id binds the
        caller, the key and the event (a retry gets the same one)."""
        return Request(
            reservation_id=await self._reservation_id(valid),
            event_id=valid.event_id,
            user_id=valid.user_id,
            quantity=valid.quantity,
            idempotency_key=valid.idempotency_key,
            accepted_at=datetime.now(UTC),
            tier=caller().tier,
            section_id=valid.section_id,
            seat_ids=valid.seat_ids,
            accessible=valid.accessible,
        )

    async def _reservation_id(self, valid: ValidReserve) -> str:
        """The id derived with the current record key, unless a gateway on
        another key (mid-rotation) gave this request its id already: a retry
        keeps the id it was first given, so it is not a second request."""
        for earlier in self._record_keys.earlier_ids(
            valid.user_id, valid.idempotency_key, valid.event_id
        ):
            if await self._keys.known(earlier):
                return earlier
        return self._record_keys.reservation_id(
            valid.user_id, valid.idempotency_key, valid.event_id
        )

    async def _known_event(self, valid: ValidReserve) -> SaleTerms:
        # A PostgreSQL outage here reaches the client as UNAVAILABLE through
        # the interceptor's one classification.
        terms = await self._events.terms(valid.event_id)
        if terms is None:
            raise _event_not_found(valid.event_id)
        tier_refused = terms.tier_refusal(valid.event_id, caller().tier)
        if tier_refused is not None:
            raise tier_refused
        terms.check(valid.event_id, datetime.now(UTC))
        return terms

    async def Reserve(
        self,
        request: pb.ReserveRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ReserveResponse:
        subject = caller().subject
        await self._limits.admit(subject=subject, address=self._addresses.of(context))
        valid = validate_reserve(request, subject)
        terms = await self._events.terms(valid.event_id)
        if terms is None:
            raise _event_not_found(valid.event_id)
        check_seats(valid, terms.plan)
        fresh = await self._request(valid)
        # A tier the event does not favour is refused like a closed sale.
        refused = terms.tier_refusal(valid.event_id, caller().tier) or terms.refusal(
            valid.event_id, fresh.accepted_at
        )
        sold_out = self._sold_out_fast_path and terms.sold_out
        # A retry (the key already stands for a request) goes to the queue as
        # before, whatever the sale's terms now: the consumer judges it by its
        # first accept time, and it may well be decided already. A new request
        # the terms refuse is refused here, and not recorded: the same key
        # may try again once the sale takes it.
        if (refused or sold_out) and not await self._keys.known(fresh.reservation_id):
            if refused is not None:
                raise refused
            # The sold-out fast path: answered here, queued nowhere.
            log.debug("reserve_sold_out", reservation_id=fresh.reservation_id)
            metrics.SOLD_OUT_FAST_PATH.inc()
            return pb.ReserveResponse(
                reservation_id=fresh.reservation_id, status=REJECTED, reject_reason=SOLD_OUT
            )
        accepted = await self._keys.admit(fresh, decided_sequence=terms.decided_sequence)
        reservation_id = accepted.reservation_id
        timeout = self._publish_timeout_s
        remaining = context.time_remaining()
        if remaining is not None:
            timeout = min(timeout, remaining - DEADLINE_MARGIN_S)
        try:
            metadata = await self._broker.publish(
                valid.event_id.encode(),
                encode_request(accepted, self._record_keys),
                timeout,
                caller_gone=lambda: caller_gone(context),
            )
        except BrokerUnavailable as exc:
            log.warning(
                "reserve_unavailable",
                reservation_id=reservation_id,
                event_id=valid.event_id,
                error=exc.message,
            )
            raise
        remaining = context.time_remaining()
        await self._keys.queued(
            reservation_id, within_s=None if remaining is None else remaining - DEADLINE_MARGIN_S
        )
        if self._fault_delay_s:
            await asyncio.sleep(self._fault_delay_s)  # acknowledged, not answered yet
        # debug, not info: at thousands of calls a second a line per call costs
        # more than the call (TICKETING_LOG_LEVEL=debug shows them).
        log.debug(
            "reserve_queued",
            reservation_id=reservation_id,
            event_id=valid.event_id,
            partition=metadata.partition,
            offset=metadata.offset,
        )
        return pb.ReserveResponse(
            reservation_id=reservation_id,
            status=QUEUED,
            queue_position=(
                reservation_pb2.QueuePosition(position=terms.position(accepted.sequence))
                # A retry whose number was passed (its first append failed,
                # later ones were decided): it is at the tail, place unknown.
                if accepted.sequence > terms.decided_sequence
                else None
            ),
        )


def caller_gone(context: grpc.aio.ServicerContext[Any, Any]) -> TicketingError | None:
    """Why a request must not be appended any more: its caller cancelled, or
    its deadline leaves too little to hear the answer. An append the caller
    cannot learn of would be queued and decided behind the caller's back."""
    if context.cancelled():
        return Cancelled("the call was cancelled before its request was queued; nothing was queued")
    remaining = context.time_remaining()
    if remaining is not None and remaining <= DEADLINE_MARGIN_S:
        return DeadlineExceeded(
            "the deadline passed before the request was queued; nothing was queued, retry "
            "with the same idempotency_key and a longer deadline"
        )
    return None


def _event_not_found(event_id: str) -> NotFound:
    return NotFound(
        f"event {event_id} not found",
        reason=Reason.EVENT_NOT_FOUND,
        metadata={"event_id": event_id},
    )
