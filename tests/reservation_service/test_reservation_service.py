"""ReservationService: events and reservation queries."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_common.status import detail, reason
from ticketing_tools.stack import LocalStack

from ..helpers import (
    CONFIRMED,
    QUEUED,
    Gateway,
    Notifier,
    Reservations,
    consumers_paused,
    create_event,
    reserve,
    watch,
)


async def get_reservation(reservations: Reservations, reservation_id: str) -> pb.Reservation:
    reply = await reservations.GetReservation(
        rs.GetReservationRequest(reservation_id=reservation_id), timeout=10
    )
    return reply.reservation


async def test_create_and_get_event(reservations: Reservations) -> None:
    created = await create_event(reservations, capacity=250, per_user_limit=6)
    assert (created.capacity, created.available, created.confirmed, created.held) == (
        250,
        250,
        0,
        0,
    )
    assert created.per_user_limit == 6
    assert created.HasField("create_time")
    fetched = (
        await reservations.GetEvent(rs.GetEventRequest(event_id=created.event_id), timeout=10)
    ).event
    assert fetched == created


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"name": "", "capacity": 10, "per_user_limit": 1}, "name"),
        ({"name": "x" * 201, "capacity": 10, "per_user_limit": 1}, "name"),
        ({"name": "A", "capacity": 0, "per_user_limit": 1}, "capacity"),
        ({"name": "A", "capacity": -5, "per_user_limit": 1}, "capacity"),
        ({"name": "A", "capacity": 10, "per_user_limit": 0}, "per_user_limit"),
        ({"name": "A", "capacity": 10, "per_user_limit": 11}, "per_user_limit"),
    ],
)
async def test_create_event_names_the_invalid_field(
    reservations: Reservations, request_fields: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await reservations.CreateEvent(rs.CreateEventRequest(**request_fields), timeout=10)  # type: ignore[arg-type]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(f"{field}: ")


async def test_unknown_and_malformed_ids(reservations: Reservations) -> None:
    missing = "00000000-0000-4000-8000-0000000000bb"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await reservations.GetEvent(rs.GetEventRequest(event_id=missing), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == f"event {missing} not found"

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await reservations.GetReservation(
            rs.GetReservationRequest(reservation_id=missing), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await reservations.GetEvent(rs.GetEventRequest(event_id="42"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("event_id: must be a UUID")


async def test_get_reservation_returns_the_decided_reservation(
    gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=3, per_user_limit=3)
    reply = await reserve(gateway, event.event_id, "jack", quantity=3)
    streamed = (await watch(notifier, reply.reservation_id))[-1]
    stored = await get_reservation(reservations, reply.reservation_id)
    assert stored == streamed
    assert (stored.status, stored.quantity, stored.user_id) == (CONFIRMED, 3, "jack")


async def test_a_queued_request_polls_as_queued_then_as_decided(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=3, per_user_limit=3)
    with consumers_paused(stack):
        reply = await reserve(gateway, event.event_id, "kim", quantity=2)
        queued = await get_reservation(reservations, reply.reservation_id)
    assert (queued.status, queued.quantity, queued.user_id, queued.event_id) == (
        QUEUED,
        2,
        "kim",
        event.event_id,
    )
    assert queued.version == 1
    assert queued.update_time == queued.accept_time
    assert not queued.HasField("decide_time")

    decided = (await watch(notifier, reply.reservation_id))[-1]
    polled = await get_reservation(reservations, reply.reservation_id)
    assert polled == decided
    assert (polled.status, polled.version) == (CONFIRMED, 2)
    assert polled.accept_time == queued.accept_time
    assert polled.update_time == polled.decide_time
    assert polled.update_time.ToDatetime() >= queued.update_time.ToDatetime()


async def test_an_unknown_reservation_is_not_found_with_its_reason(
    reservations: Reservations,
) -> None:
    missing = "00000000-0000-4000-8000-0000000000aa"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await reservations.GetReservation(
            rs.GetReservationRequest(reservation_id=missing), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert reason(caught.value) == "RESERVATION_NOT_FOUND"


async def test_create_event_lists_every_bad_field(reservations: Reservations) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await reservations.CreateEvent(
            rs.CreateEventRequest(name=" ", capacity=0, per_user_limit=5), timeout=10
        )
    bad = detail(caught.value, error_details_pb2.BadRequest)
    assert bad is not None
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("name", "is required"),
        ("capacity", "must be between 1 and 10000000, got 0"),
        ("per_user_limit", "must be between 1 and capacity, got 5"),
    ]
