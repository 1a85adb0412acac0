"""The real grpcurl binary, through nginx, knowing nothing but reflection."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ticketing_tools.stack import LocalStack

from ..helpers import (
    CONFIRMED,
    HELD,
    PUBLIC_SERVICES,
    TEST_KEY_FILE,
    Gateway,
    Notifier,
    Reservations,
    create_priced_event,
    is_terminal,
    reserve,
    watch_until,
)

GRPCURL = Path(sys.executable).parent / "grpcurl"


def grpcurl(
    stack: LocalStack,
    *command: str,
    data: str | None = None,
    flags: tuple[str, ...] = (),
    transport: tuple[str, ...] = ("-plaintext",),
) -> subprocess.CompletedProcess[str]:
    """``grpcurl <transport> [flags] [-d data] <endpoint> command...``"""
    body = ("-d", data) if data is not None else ()
    return subprocess.run(
        [str(GRPCURL), *transport, *flags, *body, stack.endpoint, *command],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_list_shows_every_public_service_through_nginx(stack: LocalStack) -> None:
    listed = grpcurl(stack, "list")
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) == PUBLIC_SERVICES


def test_describe_works_for_each_service(stack: LocalStack) -> None:
    expected = {
        "ticketing.v1.GatewayService": "rpc Reserve ( .ticketing.v1.ReserveRequest )",
        "ticketing.v1.NotifierService": "returns ( stream .ticketing.v1.WatchReservationResponse )",
        "ticketing.v1.ReservationService": "rpc CreateEvent ( .ticketing.v1.CreateEventRequest )",
        "ticketing.v1.PaymentService": "rpc Pay ( .ticketing.v1.PayRequest )",
    }
    for service, fragment in expected.items():
        described = grpcurl(stack, "describe", service)
        assert described.returncode == 0, described.stderr
        assert fragment in described.stdout
    message = grpcurl(stack, "describe", "ticketing.v1.ReserveRequest")
    assert "string idempotency_key = 4;" in message.stdout


def test_describe_methods_and_the_error_details(stack: LocalStack) -> None:
    """A method by its full name (as ghz asks for it), and the error detail
    types, all by reflection through nginx."""
    pay = grpcurl(stack, "describe", "ticketing.v1.PaymentService.Pay")
    assert pay.returncode == 0, pay.stderr
    assert "ticketing.v1.PaymentService.Pay is a method:" in pay.stdout
    assert "rpc Pay ( .ticketing.v1.PayRequest ) returns ( .ticketing.v1.PayResponse );" in (
        pay.stdout
    )
    request = grpcurl(stack, "describe", "ticketing.v1.PayRequest")
    assert request.returncode == 0, request.stderr
    info = grpcurl(stack, "describe", "google.rpc.ErrorInfo")
    assert info.returncode == 0, info.stderr
    assert "string reason = 1;" in info.stdout


def as_caller(user: str, *, admin: bool = False) -> tuple[str, ...]:
    """grpcurl's header flag with a token ``ticketing-admin token`` minted."""
    minted = subprocess.run(
        [
            str(Path(sys.executable).parent / "ticketing-admin"),
            "token",
            "--subject",
            user,
            *(("--role", "admin") if admin else ()),
            "--ttl",
            "10m",
        ],
        env={**os.environ, "TICKETING_STACK_SIGNING_KEY_FILE": str(TEST_KEY_FILE)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return ("-H", f"authorization: Bearer {minted.stdout.strip()}")


def test_create_event_reserve_and_watch_with_grpcurl(stack: LocalStack) -> None:
    created = grpcurl(
        stack,
        "ticketing.v1.ReservationService/CreateEvent",
        data='{"name": "grpcurl show", "capacity": 5, "per_user_limit": 2}',
        flags=as_caller("ops", admin=True),
    )
    assert created.returncode == 0, created.stderr
    event = json.loads(created.stdout)["event"]
    assert (event["capacity"], event["available"]) == (5, 5)

    ivy = as_caller("ivy")
    reserved = grpcurl(
        stack,
        "ticketing.v1.GatewayService/Reserve",
        data=json.dumps({"event_id": event["event_id"], "quantity": 2, "idempotency_key": "cli-1"}),
        flags=ivy,
    )
    assert reserved.returncode == 0, reserved.stderr
    reply = json.loads(reserved.stdout)
    assert reply["status"] == "RESERVATION_STATUS_QUEUED"

    watched = grpcurl(
        stack,
        "ticketing.v1.NotifierService/WatchReservation",
        data=json.dumps({"reservation_id": reply["reservation_id"]}),
        flags=(*ivy, "-max-time", "30"),
    )
    assert watched.returncode == 0, watched.stderr
    assert '"status": "RESERVATION_STATUS_CONFIRMED"' in watched.stdout

    invalid = grpcurl(
        stack,
        "ticketing.v1.GatewayService/Reserve",
        data=json.dumps({"event_id": event["event_id"], "idempotency_key": "k"}),
        flags=ivy,
    )
    assert invalid.returncode != 0
    assert "Code: InvalidArgument" in invalid.stdout + invalid.stderr
    assert "quantity: must be at least 1, got 0" in invalid.stdout + invalid.stderr


def test_health_through_nginx(stack: LocalStack) -> None:
    checked = grpcurl(stack, "grpc.health.v1.Health/Check")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout) == {"status": "SERVING"}


INVALID_RESERVE = json.dumps(
    {"event_id": "00000000-0000-4000-8000-000000000000", "quantity": 0, "idempotency_key": "k"}
)


def test_invalid_argument_details_decoded_by_reflection_and_by_protoset(
    stack: LocalStack, pytestconfig: pytest.Config
) -> None:
    """grpcurl prints the ErrorInfo and BadRequest of an INVALID_ARGUMENT as
    messages, whether it learnt the types by reflection or from the protoset."""
    protoset = pytestconfig.rootpath / "protos" / "ticketing.protoset"
    for flags in ((), ("-protoset", str(protoset))):
        invalid = grpcurl(
            stack,
            "ticketing.v1.GatewayService/Reserve",
            data=INVALID_RESERVE,
            flags=(*flags, *as_caller("ivy")),
        )
        shown = invalid.stdout + invalid.stderr
        assert invalid.returncode != 0
        assert "Code: InvalidArgument" in shown, shown
        assert "is not recognized" not in shown, shown
        assert '"@type":"type.googleapis.com/google.rpc.ErrorInfo"' in shown, shown
        assert '"reason":"INVALID_REQUEST"' in shown, shown
        assert '"field":"quantity"' in shown, shown


async def test_pay_by_reflection_through_nginx(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    """PaymentService needs no protoset: grpcurl pays for a hold by reflection
    alone, and the seats are confirmed."""
    event = await create_priced_event(reservations, capacity=2, hold_s=120)
    reply = await reserve(gateway, event.event_id, "pia")
    states = await watch_until(notifier, reply.reservation_id, lambda r: r.status == HELD)
    assert states[-1].status == HELD
    paid = await asyncio.to_thread(
        grpcurl,
        stack,
        "ticketing.v1.PaymentService/Pay",
        data=json.dumps(
            {
                "reservation_id": reply.reservation_id,
                "payment_method": "test-ok",
                "idempotency_key": "grpcurl-pay-1",
            }
        ),
        flags=as_caller("pia"),
    )
    assert paid.returncode == 0, paid.stderr
    assert json.loads(paid.stdout)["payment"]["reservation_id"] == reply.reservation_id
    states = await watch_until(notifier, reply.reservation_id, is_terminal)
    assert states[-1].status == CONFIRMED


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_seated_plan() -> str:
    """The CreateEvent body of the README's seated example, as written there."""
    text = README.read_text()
    example = text[text.index("## Seated events") :]
    start = example.index("-d '") + len("-d '")
    return example[start : example.index("' \\", start)]


def test_the_readme_s_seated_event_by_grpcurl(stack: LocalStack) -> None:
    created = grpcurl(
        stack,
        "ticketing.v1.ReservationService/CreateEvent",
        data=readme_seated_plan(),
        flags=as_caller("ops", admin=True),
    )
    assert created.returncode == 0, created.stderr
    event = json.loads(created.stdout)["event"]
    # As the README says: 12 seats, one of them blocked, and 200 standing places.
    assert (event["capacity"], event["seated"]) == (211, True)
    ivy = as_caller("ivy")
    for body in (
        {"event_id": event["event_id"], "quantity": 2, "idempotency_key": "pair-1"},
        {"event_id": event["event_id"], "seat_ids": ["A-2-1"], "idempotency_key": "chosen-1"},
    ):
        reserved = grpcurl(
            stack, "ticketing.v1.GatewayService/Reserve", data=json.dumps(body), flags=ivy
        )
        assert reserved.returncode == 0, reserved.stderr
        watched = grpcurl(
            stack,
            "ticketing.v1.NotifierService/WatchReservation",
            data=json.dumps({"reservation_id": json.loads(reserved.stdout)["reservation_id"]}),
            flags=(*ivy, "-max-time", "30"),
        )
        assert '"status": "RESERVATION_STATUS_CONFIRMED"' in watched.stdout, watched.stdout
    mapped = grpcurl(
        stack,
        "ticketing.v1.ReservationService/GetSeatMap",
        data=json.dumps({"event_id": event["event_id"]}),
        flags=ivy,
    )
    assert mapped.returncode == 0, mapped.stderr
    seat_map = json.loads(mapped.stdout)["seat_map"]
    states = {s["seat_id"]: s["state"] for s in seat_map["seats"]}
    sold = sorted(seat for seat, state in states.items() if state == "SEAT_STATE_SOLD")
    # The pair nearest the middle of the front row, and the chosen seat.
    assert sold == ["A-1-3", "A-1-4", "A-2-1"]
    assert states["A-2-6"] == "SEAT_STATE_BLOCKED"
    assert seat_map["sections"][0] == {
        "section_id": "A",
        "capacity": 11,
        "available": 8,
        "sold": 3,
    }
    assert seat_map["sections"][1]["capacity"] == 200
    streamed = grpcurl(
        stack,
        "ticketing.v1.NotifierService/WatchSeatMap",
        data=json.dumps({"event_id": event["event_id"], "from_version": "1"}),
        flags=(*ivy, "-max-time", "3"),
    )
    # Cut off by -max-time after what it had: the change after version 1.
    assert '"version": "2"' in streamed.stdout, streamed.stdout + streamed.stderr
