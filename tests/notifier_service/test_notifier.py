"""WatchReservation: snapshot first, then every change, through nginx."""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc
import pytest

from ticketing.v1 import notifier_service_pb2
from ticketing.v1 import reservation_pb2 as pb
from ticketing_tools.stack import LocalStack

from ..helpers import (
    CONFIRMED,
    QUEUED,
    REJECTED,
    SOLD_OUT,
    Gateway,
    Notifier,
    Reservations,
    authorized,
    consumers_paused,
    create_event,
    gateway_stub,
    get_event,
    notifier_stub,
    reserve,
    watch,
)


async def test_unknown_reservation_is_not_found(notifier: Notifier) -> None:
    missing = "00000000-0000-4000-8000-0000000000aa"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watch(notifier, missing)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == f"reservation {missing} not found"


async def test_malformed_reservation_id_is_invalid(notifier: Notifier) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watch(notifier, "nope")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("reservation_id: must be a UUID")


async def test_a_late_watcher_gets_the_outcome_at_once_and_the_stream_ends(
    gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=1, per_user_limit=1)
    reply = await reserve(gateway, event.event_id, "gina")
    assert (await watch(notifier, reply.reservation_id))[-1].status == CONFIRMED

    stream = await watch(notifier, reply.reservation_id, timeout=5)
    assert len(stream) == 1
    only = stream[0]
    assert (only.reservation_id, only.event_id, only.user_id, only.quantity) == (
        reply.reservation_id,
        event.event_id,
        "gina",
        1,
    )
    assert only.status == CONFIRMED
    assert only.HasField("accept_time")
    assert only.HasField("decide_time")
    assert only.decide_time.ToNanoseconds() >= only.accept_time.ToNanoseconds()


async def test_a_watcher_of_a_queued_request_sees_queued_then_the_outcome(
    stack: LocalStack,
    gateway: Gateway,
    notifier: Notifier,
    reservations: Reservations,
) -> None:
    event = await create_event(reservations, capacity=2, per_user_limit=2)
    call = None
    with consumers_paused(stack):
        reply = await reserve(gateway, event.event_id, "hank", quantity=2)
        call = notifier.WatchReservation(
            notifier_service_pb2.WatchReservationRequest(reservation_id=reply.reservation_id),
            timeout=60,
        )
        first = await call.read()
        assert isinstance(first, notifier_service_pb2.WatchReservationResponse)
        assert first.reservation.status == QUEUED
        assert first.reservation.quantity == 2
        assert not first.reservation.HasField("decide_time")
    rest = []
    while (message := await call.read()) is not grpc.aio.EOF:  # type: ignore[attr-defined]
        assert isinstance(message, notifier_service_pb2.WatchReservationResponse)
        rest.append(message.reservation)
    assert [r.status for r in rest] == [CONFIRMED]
    assert await call.code() == grpc.StatusCode.OK
    assert (await get_event(reservations, event.event_id)).available == 0


async def test_two_thousand_concurrent_streams_all_get_their_outcome(
    stack: LocalStack, reservations: Reservations
) -> None:
    """2,000 streams are open at once on one notifier (each has received
    QUEUED while the consumers are frozen); then every one gets its outcome."""
    users, seats = 2_000, 100
    event = await create_event(reservations, capacity=seats, per_user_limit=1)
    # nginx takes at most 128 concurrent streams per connection (its HTTP/2
    # bound): 100 per channel.
    lanes = 20
    channels = [authorized(stack.endpoint) for _ in range(lanes)]
    try:
        gateways = [gateway_stub(ch) for ch in channels]
        notifiers = [notifier_stub(ch) for ch in channels]
        opened = 0
        all_open = asyncio.Event()

        async def user(n: int, reservation_id: str) -> list[pb.Reservation]:
            nonlocal opened
            call = notifiers[n % lanes].WatchReservation(
                notifier_service_pb2.WatchReservationRequest(reservation_id=reservation_id),
                timeout=120,
            )
            seen = []
            async for message in call:
                seen.append(message.reservation)
                if len(seen) == 1:
                    opened += 1
                    if opened == users:
                        all_open.set()
            return seen

        with consumers_paused(stack):
            replies = await asyncio.gather(
                *(reserve(gateways[n % lanes], event.event_id, f"fan-{n}") for n in range(users))
            )
            watchers = [
                asyncio.create_task(user(n, r.reservation_id)) for n, r in enumerate(replies)
            ]
            await asyncio.wait_for(all_open.wait(), 60)
            assert all(not w.done() for w in watchers)  # all 2,000 streams open together
        streams = await asyncio.gather(*watchers)
    finally:
        for ch in channels:
            await ch.close(None)

    assert all(s[0].status == QUEUED for s in streams)
    outcomes = Counter((s[-1].status, s[-1].reject_reason) for s in streams)
    assert outcomes == {
        (CONFIRMED, pb.REJECT_REASON_UNSPECIFIED): seats,
        (REJECTED, SOLD_OUT): users - seats,
    }
