"""A gateway learns a sell-out, and seats coming back, from PostgreSQL's
notification at commit, not from its periodic re-read: here a gateway whose
re-read is an hour away follows both within seconds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_tools.stack import LocalStack

from ..helpers import (
    CONFIRMED,
    QUEUED,
    REJECTED,
    SOLD_OUT,
    Notifier,
    Reservations,
    create_event,
    gateway_of_its_own,
    gateway_stub,
    reserve,
    watch,
)


@pytest.fixture(scope="module")
async def slow_rereading(stack: LocalStack) -> AsyncIterator[grpc.aio.Channel]:
    """A gateway of its own that re-reads an event's terms only every hour."""
    async with gateway_of_its_own(stack, {"TICKETING_GATEWAY_EVENT_REFRESH_S": "3600"}) as channel:
        yield channel


async def test_a_gateway_follows_a_sell_out_and_seats_coming_back_at_commit(
    slow_rereading: grpc.aio.Channel, notifier: Notifier, reservations: Reservations
) -> None:
    gateway = gateway_stub(slow_rereading)
    event = await create_event(reservations, capacity=1, per_user_limit=1)
    winner = await reserve(gateway, event.event_id, "feed-winner")
    assert winner.status == QUEUED  # the gateway has read the terms: a seat is free
    assert (await watch(notifier, winner.reservation_id))[-1].status == CONFIRMED

    # Sold out: the gateway answers itself, an hour before its re-read.
    async with asyncio.timeout(5):
        n = 0
        while True:
            n += 1
            reply = await reserve(gateway, event.event_id, f"feed-late-{n}")
            if (reply.status, reply.reject_reason) == (REJECTED, SOLD_OUT):
                break
            # Taken before the gateway knew: the consumer refuses it.
            assert (await watch(notifier, reply.reservation_id))[-1].reject_reason == SOLD_OUT
            await asyncio.sleep(0.05)

    # The seat comes back: the gateway queues again.
    await reservations.CancelReservation(
        rs.CancelReservationRequest(reservation_id=winner.reservation_id), timeout=10
    )
    async with asyncio.timeout(5):
        n = 0
        while True:
            n += 1
            reply = await reserve(gateway, event.event_id, f"feed-back-{n}")
            if reply.status == QUEUED:
                break
            await asyncio.sleep(0.05)
    assert (await watch(notifier, reply.reservation_id))[-1].status == CONFIRMED
