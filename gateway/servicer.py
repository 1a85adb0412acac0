"""``GatewayService``: accept fast, never claim what the broker did not take."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
import grpc
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from ticketing.v1 import gateway_service_pb2 as pb
from ticketing.v1 import gateway_service_pb2_grpc as pb_grpc
from ticketing_common.decisions import Request
from ticketing_common.domain import Status, reservation_id_for
from ticketing_common.errors import (
    BrokerUnavailable,
    DependencyUnavailable,
    NotFound,
    Unimplemented,
)
from ticketing_common.kafka import encode_request

from .events import EventDirectory
from .sync import SyncReserver
from .validation import ValidReserve, validate_reserve

log = structlog.get_logger(__name__)

QUEUED = Status.QUEUED.to_proto()
# Leave the caller this much of its deadline to receive our UNAVAILABLE.
DEADLINE_MARGIN_S = 0.05
BROKER_CIRCUIT = "broker"


class GatewayServicer(pb_grpc.GatewayServiceServicer):
    def __init__(
        self,
        *,
        events: EventDirectory,
        producer: AIOKafkaProducer,
        requests_topic: str,
        publish_timeout_s: float,
        breaker_threshold: int,
        breaker_reset_s: float,
        fault_delay_s: float = 0.0,
        sync: SyncReserver | None = None,
    ) -> None:
        self._events = events
        self._producer = producer
        self._topic = requests_topic
        self._publish_timeout_s = publish_timeout_s
        self._retry_after_s = breaker_reset_s
        self._fault_delay_s = fault_delay_s
        self._sync = sync
        # Publish timeouts and broker errors count; after `threshold` in a row
        # calls fail fast for `breaker_reset_s`, then one is let through.
        self._breaker = AsyncCircuitBreakerFactory(
            default_threshold=breaker_threshold, default_ttl=breaker_reset_s
        )

    async def ReserveSync(
        self,
        request: pb.ReserveSyncRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ReserveSyncResponse:
        if self._sync is None:
            raise Unimplemented("ReserveSync is not enabled on this gateway")
        valid = await self._known_event(validate_reserve(request))
        reservation = await self._sync.reserve(valid)
        return pb.ReserveSyncResponse(reservation=reservation.to_proto())

    async def _known_event(self, valid: ValidReserve) -> ValidReserve:
        try:
            known = await self._events.exists(valid.event_id)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DependencyUnavailable("event directory unavailable, retry") from exc
        if not known:
            raise NotFound(f"event {valid.event_id} not found")
        return valid

    async def Reserve(
        self,
        request: pb.ReserveRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ReserveResponse:
        valid = await self._known_event(validate_reserve(request))

        reservation_id = reservation_id_for(valid.user_id, valid.idempotency_key, valid.event_id)
        accepted = Request(
            reservation_id=reservation_id,
            event_id=valid.event_id,
            user_id=valid.user_id,
            quantity=valid.quantity,
            idempotency_key=valid.idempotency_key,
            accepted_at=datetime.now(UTC),
        )
        timeout = self._publish_timeout_s
        remaining = context.time_remaining()
        if remaining is not None:
            timeout = min(timeout, remaining - DEADLINE_MARGIN_S)
        if timeout <= 0:
            raise BrokerUnavailable(
                "too little of the deadline left to wait for the queue",
                retry_after_s=self._retry_after_s,
            )
        try:
            async with await self._breaker.get_breaker(BROKER_CIRCUIT):
                metadata = await asyncio.wait_for(
                    self._producer.send_and_wait(
                        self._topic, encode_request(accepted), key=valid.event_id.encode()
                    ),
                    timeout,
                )
        except OpenedState as exc:
            # The broker failed us repeatedly just now: answer at once instead
            # of making every caller wait out its deadline.
            raise BrokerUnavailable(
                "the queue is unavailable; retry with the same idempotency_key",
                retry_after_s=self._retry_after_s,
            ) from exc
        except (TimeoutError, KafkaError) as exc:
            log.warning(
                "reserve_unavailable",
                reservation_id=reservation_id,
                event_id=valid.event_id,
                error=type(exc).__name__,
            )
            raise BrokerUnavailable(
                "the queue did not acknowledge the request in time (it may still be applied); "
                "retry with the same idempotency_key",
                retry_after_s=self._retry_after_s,
            ) from exc
        if self._fault_delay_s:
            await asyncio.sleep(self._fault_delay_s)  # acknowledged, not answered yet
        log.info(
            "reserve_queued",
            reservation_id=reservation_id,
            event_id=valid.event_id,
            partition=metadata.partition,
            offset=metadata.offset,
        )
        return pb.ReserveResponse(reservation_id=reservation_id, status=QUEUED)
