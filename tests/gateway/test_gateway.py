"""Gateway behaviour seen by a client: validation, unknown events, idempotent retries."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2

from ticketing.v1 import gateway_service_pb2 as gw
from ticketing_common.status import detail, reason
from ticketing_tools.ledger import end_offsets
from ticketing_tools.stack import LocalStack

from ..helpers import (
    CONFIRMED,
    LIMIT_EXCEEDED,
    QUEUED,
    REJECTED,
    SOLD_OUT,
    Gateway,
    Notifier,
    Reservations,
    as_user,
    create_event,
    get_event,
    queue_drained,
    reservation_rows,
    reserve,
    watch,
)

VALID = {"quantity": 1, "idempotency_key": "key-1"}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"event_id": ""}, "event_id", "event_id: is required"),
        ({"event_id": "not-a-uuid"}, "event_id", "event_id: must be a UUID"),
        ({"idempotency_key": "bad\nkey"}, "idempotency_key", "must not contain control characters"),
        ({"quantity": 0}, "quantity", "quantity: must be at least 1, got 0"),
        ({"quantity": -3}, "quantity", "quantity: must be at least 1, got -3"),
        ({"idempotency_key": ""}, "idempotency_key", "idempotency_key: is required"),
        ({"idempotency_key": "k" * 129}, "idempotency_key", "idempotency_key: must be at most"),
    ],
)
async def test_every_invalid_field_is_named_and_nothing_is_enqueued(
    stack: LocalStack,
    gateway: Gateway,
    reservations: Reservations,
    changes: dict[str, object],
    field: str,
    message: str,
) -> None:
    event = await create_event(reservations)
    request = gw.ReserveRequest(**{"event_id": event.event_id, **VALID, **changes})  # type: ignore[arg-type]
    before = await end_offsets(stack.kafka, stack.kafka.requests_topic)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.Reserve(request, timeout=10)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert details.startswith(f"{field}: ")
    assert message in details
    assert await end_offsets(stack.kafka, stack.kafka.requests_topic) == before
    assert (await get_event(reservations, event.event_id)).available == event.capacity


async def test_unknown_event_is_not_found_and_nothing_is_enqueued(
    stack: LocalStack, gateway: Gateway
) -> None:
    before = await end_offsets(stack.kafka, stack.kafka.requests_topic)
    missing = "00000000-0000-4000-8000-000000000000"
    for _ in range(3):  # the second and third answers come from the negative cache
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await reserve(gateway, missing, "alice")
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert caught.value.details() == f"event {missing} not found"
    assert await end_offsets(stack.kafka, stack.kafka.requests_topic) == before


async def test_retried_reserve_returns_the_same_id_and_takes_one_seat(
    stack: LocalStack,
    gateway: Gateway,
    notifier: Notifier,
    reservations: Reservations,
) -> None:
    event = await create_event(reservations, capacity=5, per_user_limit=2)
    first = await reserve(gateway, event.event_id, "bob", quantity=2, key="checkout-42")
    # Retries arrive while the first is queued, concurrently, and after it was decided.
    again = await asyncio.gather(
        *(reserve(gateway, event.event_id, "bob", quantity=2, key="checkout-42") for _ in range(5))
    )
    final = (await watch(notifier, first.reservation_id))[-1]
    late = await reserve(gateway, event.event_id, "bob", quantity=2, key="checkout-42")

    assert first.status == QUEUED
    expected = stack.reservation_id("bob", "checkout-42", event.event_id)
    assert first.reservation_id == expected
    assert {r.reservation_id for r in [*again, late]} == {expected}
    assert final.status == CONFIRMED
    assert (await watch(notifier, late.reservation_id))[-1].status == CONFIRMED

    await queue_drained(stack)  # all seven copies decided
    after = await get_event(reservations, event.event_id)
    assert (after.available, after.confirmed) == (3, 2)
    rows = await reservation_rows(stack.postgres_dsn, expected)
    assert len(rows) == 1
    assert rows[0]["status"] == "CONFIRMED"
    assert rows[0]["quantity"] == 2


async def test_a_new_key_is_a_new_request_within_the_per_user_limit(
    gateway: Gateway,
    notifier: Notifier,
    reservations: Reservations,
) -> None:
    event = await create_event(reservations, capacity=10, per_user_limit=3)
    first = await reserve(gateway, event.event_id, "carol", quantity=2, key="a")
    assert (await watch(notifier, first.reservation_id))[-1].status == CONFIRMED
    second = await reserve(gateway, event.event_id, "carol", quantity=2, key="b")
    outcome = (await watch(notifier, second.reservation_id))[-1]
    assert (outcome.status, outcome.reject_reason) == (REJECTED, LIMIT_EXCEEDED)  # 2 + 2 > 3
    third = await reserve(gateway, event.event_id, "carol", quantity=1, key="c")
    assert (await watch(notifier, third.reservation_id))[-1].status == CONFIRMED
    after = await get_event(reservations, event.event_id)
    assert (after.available, after.confirmed) == (7, 3)


async def test_reserve_sync_decides_inline_with_the_same_rules(
    stack: LocalStack, gateway: Gateway, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=10, per_user_limit=1)

    async def sync(n: int) -> gw.ReserveSyncResponse | grpc.StatusCode:
        try:
            return await gateway.ReserveSync(
                gw.ReserveSyncRequest(event_id=event.event_id, quantity=1, idempotency_key="k"),
                timeout=30,
                metadata=as_user(f"s{n}"),
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code()

    answers = await asyncio.gather(*(sync(n) for n in range(50)))
    decided = [a.reservation for a in answers if isinstance(a, gw.ReserveSyncResponse)]
    busy = [a for a in answers if not isinstance(a, gw.ReserveSyncResponse)]
    assert set(busy) <= {grpc.StatusCode.UNAVAILABLE}  # lock not acquired in time
    assert sum(r.status == CONFIRMED for r in decided) == 10
    assert all(
        (r.status, r.reject_reason) == (REJECTED, SOLD_OUT)
        for r in decided
        if r.status != CONFIRMED
    )
    after = await get_event(reservations, event.event_id)
    assert (after.available, after.confirmed) == (0, 10)
    # A retry gets the stored outcome, not a second decision.
    again = await sync(0)
    assert isinstance(again, gw.ReserveSyncResponse)
    earlier = [r for r in decided if r.user_id == "s0"]
    assert [r.status for r in earlier] in ([], [again.reservation.status])
    assert again.reservation.reservation_id == stack.reservation_id("s0", "k", event.event_id)
    assert (await get_event(reservations, event.event_id)).confirmed == 10


async def test_three_bad_fields_are_listed_together_in_bad_request(
    stack: LocalStack, gateway: Gateway
) -> None:
    before = await end_offsets(stack.kafka, stack.kafka.requests_topic)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.Reserve(
            gw.ReserveRequest(event_id="nope", quantity=0, idempotency_key=""), timeout=10
        )
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad = detail(error, error_details_pb2.BadRequest)
    assert bad is not None
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("event_id", "must be a UUID, got 'nope'"),
        ("quantity", "must be at least 1, got 0"),
        ("idempotency_key", "is required"),
    ]
    assert reason(error) == "INVALID_REQUEST"
    assert await end_offsets(stack.kafka, stack.kafka.requests_topic) == before


async def test_an_unknown_event_names_its_reason_and_id(gateway: Gateway) -> None:
    missing = "00000000-0000-4000-8000-00000000000e"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await reserve(gateway, missing, "alice")
    info = detail(caught.value, error_details_pb2.ErrorInfo)
    assert info is not None
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "EVENT_NOT_FOUND",
        "ticketing.v1",
        {"event_id": missing},
    )


async def test_a_key_reused_with_another_quantity_is_refused(
    stack: LocalStack,
    gateway: Gateway,
    notifier: Notifier,
    reservations: Reservations,
) -> None:
    event = await create_event(reservations, capacity=10, per_user_limit=4)
    first = await reserve(gateway, event.event_id, "dora", quantity=1, key="basket-7")
    before = await end_offsets(stack.kafka, stack.kafka.requests_topic)
    for moment in ("queued or decided", "after the outcome"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await reserve(gateway, event.event_id, "dora", quantity=3, key="basket-7")
        error = caught.value
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, moment
        assert error.details() == (
            "idempotency_key 'basket-7' was used for quantity 1 on this event; "
            "use a new key for another request"
        )
        info = detail(error, error_details_pb2.ErrorInfo)
        assert info is not None
        assert info.reason == "IDEMPOTENCY_KEY_REUSED"
        assert dict(info.metadata) == {"reservation_id": first.reservation_id, "quantity": "1"}
        await watch(notifier, first.reservation_id)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.ReserveSync(
            gw.ReserveSyncRequest(event_id=event.event_id, quantity=3, idempotency_key="basket-7"),
            timeout=10,
            metadata=as_user("dora"),
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(caught.value) == "IDEMPOTENCY_KEY_REUSED"
    assert await end_offsets(stack.kafka, stack.kafka.requests_topic) == before
    # The same key with the same parameters is still the same request.
    again = await reserve(gateway, event.event_id, "dora", quantity=1, key="basket-7")
    assert again.reservation_id == first.reservation_id
    await queue_drained(stack)
    after = await get_event(reservations, event.event_id)
    assert (after.available, after.confirmed) == (9, 1)
