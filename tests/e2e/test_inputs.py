"""Each input rule, from outside through nginx: a bad field is
INVALID_ARGUMENT with a BadRequest naming it, never INTERNAL, never the
proxy's 502, never accepted."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2

from ticketing.v1 import gateway_service_pb2 as gw
from ticketing.v1 import payment_service_pb2 as ps
from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_common.status import detail

from ..helpers import (
    Gateway,
    Notifier,
    Payments,
    Reservations,
    as_user,
    create_event,
    create_priced_event,
    hold_for,
    reserve,
    watch_until,
)


async def refused(call: Awaitable[Any]) -> dict[str, str]:
    """The field violations of a call that must be INVALID_ARGUMENT."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    bad = detail(error, error_details_pb2.BadRequest)
    assert bad is not None
    return {v.field: v.description for v in bad.field_violations}


def event_request(**fields: Any) -> rs.CreateEventRequest:
    request = rs.CreateEventRequest(name="Inputs", capacity=10, per_user_limit=2)
    for name, value in fields.items():
        if isinstance(value, list):
            getattr(request, name).extend(value)
        elif hasattr(value, "CopyFrom"):
            getattr(request, name).CopyFrom(value)
        else:
            setattr(request, name, value)
    return request


async def test_a_pay_key_is_checked_like_a_reserve_key(
    gateway: Gateway, notifier: Notifier, reservations: Reservations, payments: Payments
) -> None:
    """A NUL in the key reached PostgreSQL (which cannot store one) and came
    back INTERNAL; a key past Reserve's 128 characters was taken."""
    event = await create_priced_event(reservations, capacity=2, hold_s=60)
    held = await hold_for(gateway, notifier, event.event_id, "ines")

    def pay(key: str, method: str = "test-ok") -> Awaitable[Any]:
        return payments.Pay(
            ps.PayRequest(
                reservation_id=held.reservation_id, payment_method=method, idempotency_key=key
            ),
            metadata=as_user("ines"),
            timeout=10,
        )

    for key, problem in [
        ("key\x00", "must not contain control characters"),
        ("k" * 129, "must be at most 128 characters, got 129"),
        (" ", "is required"),
    ]:
        assert await refused(pay(key)) == {"idempotency_key": problem}
    assert await refused(pay("k", method="test-ok\x00")) == {
        "payment_method": "must not contain control characters"
    }
    # The hold is still payable: nothing of the refused calls was stored.
    paid = await pay("k" * 128)
    assert paid.payment.reservation_id == held.reservation_id


async def test_many_long_bad_fields_are_invalid_argument_not_the_proxys_502(
    reservations: Reservations,
) -> None:
    """Sixteen bad tiers echoed back made a status larger than nginx takes in
    a trailer: the client got UNAVAILABLE ('Received http2 header with
    status: 502') instead of the problems."""
    tiers = [f"{n}\x1b" + "🎫" * 70 for n in range(16)]
    found = await refused(
        reservations.CreateEvent(event_request(priority_tiers=tiers, name="\x00"), timeout=10)
    )
    assert set(found) == {"name", "priority_tiers"}


@pytest.mark.parametrize("size", [100_000, 2_000_000])
async def test_a_request_too_large_is_resource_exhausted_not_unknown(
    gateway: Gateway, size: int
) -> None:
    """Past the services' message bound (64 KiB at the gateway) they refuse
    it; past nginx's body bound (client_max_body_size) nginx did, with an
    HTTP 413 that a gRPC client reads as UNKNOWN ('Received http2 header
    with status: 413')."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.Reserve(
            gw.ReserveRequest(event_id="x" * size, quantity=1, idempotency_key="k"),
            timeout=10,
            metadata=as_user("big"),
        )
    error = caught.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (error.code(), error.details())


async def test_a_plan_past_what_create_event_takes_is_resource_exhausted(
    reservations: Reservations,
) -> None:
    """CreateEvent takes a seating plan, up to 4 MiB (the load balancer and
    the reservation service alike); past that it is refused unread. Under
    it, a long name is the field's problem, not the message's."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await reservations.CreateEvent(event_request(name="x" * 5_000_000), timeout=30)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, caught.value.details()
    assert set(
        await refused(reservations.CreateEvent(event_request(name="x" * 2_000_000), timeout=30))
    ) == {"name"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        # OverflowError inside the conversion: INTERNAL before.
        ({"queue_ttl": Duration(seconds=2**63 - 1)}, "queue_ttl"),
        ({"hold_ttl": Duration(seconds=5, nanos=-(2**31))}, "hold_ttl"),
        ({"sale_start_time": Timestamp(seconds=-(2**63))}, "sale_start_time"),
        ({"sale_end_time": Timestamp(seconds=1_800_000_000, nanos=-1)}, "sale_end_time"),
    ],
)
async def test_timestamps_and_durations_out_of_range_are_named(
    reservations: Reservations, fields: dict[str, Any], field: str
) -> None:
    found = await refused(reservations.CreateEvent(event_request(**fields), timeout=10))
    assert field in found


@pytest.mark.parametrize("code", ["ZZZ", "XXX", "XAU", "eur", "DEM"])
async def test_a_price_is_in_an_iso_4217_currency(reservations: Reservations, code: str) -> None:
    """Any three capitals made an event before (ZZZ, XXX): a price nobody can pay."""
    request = event_request(price=pb.Money(currency_code=code, amount_minor=100))
    request.hold_ttl.FromSeconds(60)
    found = await refused(reservations.CreateEvent(request, timeout=10))
    assert found == {
        "price.currency_code": f"must be an ISO 4217 currency code in use, such as EUR, "
        f"got {code!r}"
    }
    request.price.currency_code = "JPY"
    assert (await reservations.CreateEvent(request, timeout=10)).event.price.currency_code == "JPY"


async def test_an_update_mask_names_real_fields_and_its_values_are_in_range(
    reservations: Reservations,
) -> None:
    event = await create_event(reservations)

    def update(paths: list[str], **fields: Any) -> Awaitable[Any]:
        changed = pb.Event(event_id=event.event_id, **fields)
        return reservations.UpdateEvent(
            rs.UpdateEventRequest(event=changed, update_mask=FieldMask(paths=paths)), timeout=10
        )

    for paths in (["available"], ["price"], ["event.capacity"], ["name", "no_such_field"]):
        assert set(await refused(update(paths))) == {"update_mask"}
    found = await refused(
        update(["sale_end_time"], sale_end_time=Timestamp(seconds=2**63 - 1, nanos=2**31 - 1))
    )
    assert set(found) == {"event.sale_end_time"}
    assert (await update(["capacity"], capacity=12)).event.capacity == 12


async def test_a_forged_page_token_is_invalid_argument(
    gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    """A token was base64 JSON anyone could rewrite (start elsewhere, or
    anywhere): now its MAC refuses every change."""
    event = await create_event(reservations, capacity=5, per_user_limit=5)
    for n in range(3):
        done = await reserve(gateway, event.event_id, f"paging-{n}")
        await watch_until(notifier, done.reservation_id, lambda r: r.settled)
    first = await reservations.ListReservations(
        rs.ListReservationsRequest(event_id=event.event_id, page_size=1), timeout=10
    )
    token = first.next_page_token
    assert token
    payload, mac = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["t"] = "1970-01-01T00:00:00+00:00"  # from the very start again
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")

    def page(token: str) -> Awaitable[Any]:
        return reservations.ListReservations(
            rs.ListReservationsRequest(event_id=event.event_id, page_size=1, page_token=token),
            timeout=10,
        )

    for bad in (f"{forged}.{mac}", payload, "garbage", token + "x", "x" * 10_000):
        assert set(await refused(page(bad))) == {"page_token"}
    second = await page(token)
    assert [r.reservation_id for r in second.reservations] != [
        r.reservation_id for r in first.reservations
    ]
