"""Abuse limits at a real gateway (one started with its limits on): a flooding
subject or address is refused with RESOURCE_EXHAUSTED and a RetryInfo, while
other callers go on."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from ticketing.v1 import gateway_service_pb2 as gw
from ticketing_common.status import reason, retry_delay_s
from ticketing_tools.stack import LocalStack

from ..helpers import Reservations, as_user, create_event, gateway_of_its_own, gateway_stub

PER_SUBJECT = 5
PER_ADDRESS = 12
WINDOW_S = 2.0


@pytest.fixture(scope="module")
async def limited(stack: LocalStack) -> AsyncIterator[grpc.aio.Channel]:
    """A gateway of its own with limits on, reached directly (its peer
    address is the test's)."""
    limits = {
        "TICKETING_GATEWAY_RATE_PER_SUBJECT": str(PER_SUBJECT),
        "TICKETING_GATEWAY_RATE_PER_ADDRESS": str(PER_ADDRESS),
        "TICKETING_GATEWAY_RATE_WINDOW_S": str(WINDOW_S),
    }
    async with gateway_of_its_own(stack, limits) as channel:
        yield channel


async def reserve_as(
    channel: grpc.aio.Channel, event_id: str, user: str
) -> grpc.StatusCode | grpc.aio.AioRpcError:
    try:
        await gateway_stub(channel).Reserve(
            gw.ReserveRequest(event_id=event_id, quantity=1, idempotency_key=uuid.uuid4().hex),
            metadata=as_user(user),
            timeout=10,
        )
    except grpc.aio.AioRpcError as exc:
        return exc
    return grpc.StatusCode.OK


async def next_window() -> None:
    """Waits for the start of a fresh rate window (the gateway's windows are
    aligned to wall-clock multiples), so a test's calls share one."""
    await asyncio.sleep(WINDOW_S - time.time() % WINDOW_S + 0.01)


async def test_a_flooding_subject_is_refused_while_others_go_on(
    limited: grpc.aio.Channel, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=100, per_user_limit=100)
    await next_window()
    answers = [await reserve_as(limited, event.event_id, "flooder") for _ in range(PER_SUBJECT + 3)]
    assert answers[:PER_SUBJECT] == [grpc.StatusCode.OK] * PER_SUBJECT
    refused = answers[PER_SUBJECT:]
    assert all(isinstance(a, grpc.aio.AioRpcError) for a in refused)
    first = refused[0]
    assert isinstance(first, grpc.aio.AioRpcError)
    assert first.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason(first) == "RATE_LIMITED"
    delay = retry_delay_s(first)
    assert delay is not None and 0 < delay <= WINDOW_S
    # Someone else is not held back by the flood.
    assert await reserve_as(limited, event.event_id, "bystander") == grpc.StatusCode.OK


async def test_one_address_is_limited_across_its_subjects(
    limited: grpc.aio.Channel, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=100, per_user_limit=100)
    await next_window()
    answers = [
        await reserve_as(limited, event.event_id, f"bot-{n}") for n in range(PER_ADDRESS + 2)
    ]
    assert answers[:PER_ADDRESS] == [grpc.StatusCode.OK] * PER_ADDRESS
    for refused in answers[PER_ADDRESS:]:
        assert isinstance(refused, grpc.aio.AioRpcError)
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused.details() == (
            f"too many calls from this address: at most {PER_ADDRESS} per {WINDOW_S:g} s; "
            "retry later"
        )
