"""Property-based tests against the running stack: whatever a client sends to
the gateway, and whatever bytes land on the requests topic, the system answers
cleanly and keeps every promise."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import grpc
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticketing.v1 import gateway_service_pb2 as gw
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_tools.ledger import reconcile
from ticketing_tools.stack import LocalStack

from ..helpers import (
    CONFIRMED,
    Gateway,
    Notifier,
    Reservations,
    authorized,
    create_event,
    gateway_stub,
    get_event,
    queue_drained,
    reservations_stub,
    reserve,
    watch,
)

FIELDS = {"event_id", "quantity", "idempotency_key"}


async def call_reserve(endpoint: str, request: gw.ReserveRequest) -> tuple[grpc.StatusCode, str]:
    async with authorized(endpoint) as channel:
        try:
            reply = await gateway_stub(channel).Reserve(request, timeout=10)
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
        return grpc.StatusCode.OK, reply.reservation_id


async def test_any_reserve_request_gets_a_clean_answer(
    stack: LocalStack, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=10_000, per_user_limit=10_000)
    texts = st.text(max_size=140)
    requests = st.builds(
        gw.ReserveRequest,
        event_id=st.one_of(st.just(event.event_id), st.uuids().map(str), texts),
        quantity=st.integers(min_value=-(2**31), max_value=2**31 - 1),
        idempotency_key=texts,
    )
    queued: list[str] = []

    # Hypothesis runs (and shrinks) in a thread of its own; each example is a
    # real call through nginx on a fresh event loop.
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(requests)
    def property_holds(request: gw.ReserveRequest) -> None:
        code, detail = asyncio.run(call_reserve(stack.endpoint, request))
        assert code in {
            grpc.StatusCode.OK,
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.NOT_FOUND,
            # Examples repeat keys: a key reused with another quantity.
            grpc.StatusCode.FAILED_PRECONDITION,
        }, (code, detail)
        if code == grpc.StatusCode.FAILED_PRECONDITION:
            assert detail.startswith("idempotency_key "), detail
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            assert detail.split(":", 1)[0] in FIELDS, detail
        if code == grpc.StatusCode.NOT_FOUND:
            assert detail.startswith("event ") and detail.endswith(" not found")
        if code == grpc.StatusCode.OK:
            assert request.quantity >= 1
            queued.append(detail)

    await asyncio.to_thread(property_holds)
    for reservation_id in queued:  # every QUEUED answer reaches an outcome
        assert (await watch(notifier, reservation_id))[-1].reservation_id == reservation_id
    after = await get_event(reservations, event.event_id)
    assert after.capacity == after.available + after.confirmed + after.held


async def test_any_event_or_lookup_request_gets_a_clean_answer(stack: LocalStack) -> None:
    """CreateEvent (as an administrator), GetEvent and GetReservation with
    arbitrary fields: a result or INVALID_ARGUMENT / NOT_FOUND naming the
    problem, never INTERNAL."""
    texts = st.text(max_size=260)
    ints = st.integers(min_value=-(2**31), max_value=2**31 - 1)
    requests = st.one_of(
        st.builds(rs.CreateEventRequest, name=texts, capacity=ints, per_user_limit=ints),
        st.builds(rs.GetEventRequest, event_id=st.one_of(texts, st.uuids().map(str))),
        st.builds(rs.GetReservationRequest, reservation_id=st.one_of(texts, st.uuids().map(str))),
    )

    async def call(request: Any) -> tuple[grpc.StatusCode, str]:
        async with authorized(stack.endpoint) as channel:
            stub = reservations_stub(channel)
            methods: dict[type, Callable[..., Awaitable[Any]]] = {
                rs.CreateEventRequest: stub.CreateEvent,
                rs.GetEventRequest: stub.GetEvent,
                rs.GetReservationRequest: stub.GetReservation,
            }
            try:
                await methods[type(request)](request, timeout=10)
            except grpc.aio.AioRpcError as exc:
                return exc.code(), exc.details() or ""
            return grpc.StatusCode.OK, ""

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(requests)
    def property_holds(request: Any) -> None:
        code, detail = asyncio.run(call(request))
        assert code in {
            grpc.StatusCode.OK,
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.NOT_FOUND,
        }, (code, detail)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            fields = {"name", "capacity", "per_user_limit", "event_id", "reservation_id"}
            assert detail.split(":", 1)[0] in fields, detail

    await asyncio.to_thread(property_holds)


async def test_arbitrary_bytes_on_the_requests_topic_break_nothing(
    stack: LocalStack,
    producer: AIOKafkaProducer,
    gateway: Gateway,
    notifier: Notifier,
    reservations: Reservations,
) -> None:
    event = await create_event(reservations, capacity=5, per_user_limit=5)
    values: list[bytes] = []

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=400))
    def collect(value: bytes) -> None:
        values.append(value)

    collect()
    for value in values:
        await producer.send_and_wait(stack.kafka.requests_topic, value, key=event.event_id.encode())
    # The partition still flows, and everything is accounted for.
    after = await reserve(gateway, event.event_id, "rachel", quantity=2)
    assert (await watch(notifier, after.reservation_id))[-1].status == CONFIRMED
    await queue_drained(stack)
    async with asyncpg.create_pool(stack.postgres_dsn, min_size=1, max_size=2) as pool:
        ledger = await reconcile(stack.kafka, pool)
    assert ledger.balanced, ledger.missing
    assert ledger.seats_ok
    # No consumer died on them (one may have left on purpose, with exit code 0).
    assert all(
        c.alive() or (c.process is not None and c.process.returncode == 0)
        for c in stack.services["consumer_service"]
    )
