"""ReservationService: events and reservation queries."""

from __future__ import annotations

import grpc
import pytest

from ticketing.v1 import reservation_service_pb2 as rs

from ..helpers import CONFIRMED, Gateway, Notifier, Reservations, create_event, reserve, watch


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
    stored = (
        await reservations.GetReservation(
            rs.GetReservationRequest(reservation_id=reply.reservation_id), timeout=10
        )
    ).reservation
    assert stored == streamed
    assert (stored.status, stored.quantity, stored.user_id) == (CONFIRMED, 3, "jack")
