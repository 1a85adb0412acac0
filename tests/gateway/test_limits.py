"""Abuse limits at a real gateway (one started with its limits on): a flooding
subject or address is refused with RESOURCE_EXHAUSTED and a RetryInfo, while
other callers go on; an address a caller claims is not believed; and a Redis
that does not answer refuses calls rather than let them through uncounted."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from gateway.settings import GatewaySettings
from ticketing.v1 import gateway_service_pb2 as gw
from ticketing_common.config import variable
from ticketing_common.status import reason, retry_delay_s
from ticketing_tools.stack import LocalStack

from ..helpers import (
    Reservations,
    as_user,
    create_event,
    gateway_of_its_own,
    gateway_stub,
    get_event,
    queue_drained,
)

PER_SUBJECT = 5
PER_ADDRESS = 12
WINDOW_S = 2.0


@pytest.fixture(scope="module")
async def limited(stack: LocalStack) -> AsyncIterator[grpc.aio.Channel]:
    """A gateway of its own with limits on, reached directly (its peer
    address is the test's), which trusts no proxy on this machine."""
    limits = {
        "TICKETING_GATEWAY_RATE_PER_SUBJECT": str(PER_SUBJECT),
        "TICKETING_GATEWAY_RATE_PER_ADDRESS": str(PER_ADDRESS),
        "TICKETING_GATEWAY_RATE_WINDOW_S": str(WINDOW_S),
        variable(GatewaySettings, "trusted_proxies"): "192.0.2.0/24",
    }
    async with gateway_of_its_own(stack, limits) as channel:
        yield channel


async def reserve_as(
    channel: grpc.aio.Channel, event_id: str, user: str, *claimed: tuple[str, str]
) -> grpc.StatusCode | grpc.aio.AioRpcError:
    try:
        await gateway_stub(channel).Reserve(
            gw.ReserveRequest(event_id=event_id, quantity=1, idempotency_key=uuid.uuid4().hex),
            metadata=(*as_user(user), *claimed),
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


async def test_an_address_a_caller_claims_is_not_believed(
    limited: grpc.aio.Channel, reservations: Reservations
) -> None:
    # Each call claims another address; the gateway trusts no proxy here, so
    # every one counts against the caller's own (loopback) address.
    event = await create_event(reservations, capacity=100, per_user_limit=100)
    await next_window()
    answers = [
        await reserve_as(limited, event.event_id, f"spoofer-{n}", ("x-real-ip", f"198.51.100.{n}"))
        for n in range(PER_ADDRESS + 2)
    ]
    assert answers[:PER_ADDRESS] == [grpc.StatusCode.OK] * PER_ADDRESS
    for refused in answers[PER_ADDRESS:]:
        assert isinstance(refused, grpc.aio.AioRpcError)
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason(refused) == "RATE_LIMITED"


@pytest.fixture(scope="module")
def silent_redis() -> Iterator[int]:
    """A port that takes connections and never answers: a Redis that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


async def test_limits_refuse_calls_when_redis_does_not_answer(
    stack: LocalStack, reservations: Reservations, silent_redis: int
) -> None:
    settings = {
        "TICKETING_GATEWAY_RATE_PER_SUBJECT": str(PER_SUBJECT),
        "TICKETING_GATEWAY_IDEMPOTENCY_TIMEOUT_S": "0.3",
        # The counters live where the record of accepted requests does.
        variable(GatewaySettings, "accepted_redis_url"): f"redis://127.0.0.1:{silent_redis}/0",
    }
    event = await create_event(reservations, capacity=10, per_user_limit=10)
    async with gateway_of_its_own(stack, settings) as channel:
        started = time.monotonic()
        answer = await reserve_as(channel, event.event_id, "uncounted")
        assert time.monotonic() - started < 5
    assert isinstance(answer, grpc.aio.AioRpcError)
    assert answer.code() == grpc.StatusCode.UNAVAILABLE
    assert reason(answer) == "DEPENDENCY_UNAVAILABLE"
    delay = retry_delay_s(answer)
    assert delay is not None and delay > 0
    # Nothing was queued for it.
    await queue_drained(stack)
    assert (await get_event(reservations, event.event_id)).available == 10
