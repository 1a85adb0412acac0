"""The real grpcurl binary, through nginx, knowing nothing but reflection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ticketing_tools.stack import LocalStack

from ..helpers import TEST_KEY_FILE

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


def test_list_shows_the_three_services_through_nginx(stack: LocalStack) -> None:
    listed = grpcurl(stack, "list")
    assert listed.returncode == 0, listed.stderr
    services = set(listed.stdout.split())
    assert {
        "ticketing.v1.GatewayService",
        "ticketing.v1.NotifierService",
        "ticketing.v1.ReservationService",
        "grpc.health.v1.Health",
    } <= services


def test_describe_works_for_each_service(stack: LocalStack) -> None:
    expected = {
        "ticketing.v1.GatewayService": "rpc Reserve ( .ticketing.v1.ReserveRequest )",
        "ticketing.v1.NotifierService": "returns ( stream .ticketing.v1.WatchReservationResponse )",
        "ticketing.v1.ReservationService": "rpc CreateEvent ( .ticketing.v1.CreateEventRequest )",
    }
    for service, fragment in expected.items():
        described = grpcurl(stack, "describe", service)
        assert described.returncode == 0, described.stderr
        assert fragment in described.stdout
    message = grpcurl(stack, "describe", "ticketing.v1.ReserveRequest")
    assert "string idempotency_key = 4;" in message.stdout


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
