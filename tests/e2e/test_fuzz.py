"""Hostile input to every RPC, from outside through nginx.

For each method of every public service, requests built from its input
message's descriptor (``tests.hostile``) are sent as a customer and as an
administrator. No answer may be INTERNAL or UNKNOWN, no call may hang (every
call has a deadline; a stream is read for its first message only, which
every stream sends at once, or its error), and the ledger balances after.
Derandomized, a fixed number of examples per method: the same requests on
every run.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import asyncpg
import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, Phase, given, settings

from ticketing.v1 import (
    gateway_service_pb2,
    gateway_service_pb2_grpc,
    notifier_service_pb2,
    payment_service_pb2,
    payment_service_pb2_grpc,
    reservation_service_pb2,
    reservation_service_pb2_grpc,
)
from ticketing.v1 import gateway_service_pb2 as gw
from ticketing.v1 import payment_service_pb2 as ps
from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_common.grpc_server import MAX_MESSAGE_BYTES
from ticketing_tools.ledger import reconcile
from ticketing_tools.stack import LocalStack

from ..helpers import queue_drained, token
from ..hostile import Builder

EXAMPLES = 50
UNARY_DEADLINE_S = 10.0
# A stream's first message (or its error) comes at once, but for an id the
# notifier has not seen: that waits for the queue (0.5 s) and then for a
# catch-up with the broker (TICKETING_NOTIFIER_CATCH_UP_TIMEOUT_S, 3 s).
STREAM_DEADLINE_S = 10.0
# Callers of each role, each for a run of calls; every customer among them
# owns a confirmed and two held reservations.
SUBJECTS = 4
CALLS_PER_SUBJECT = 15
CUSTOMERS = [f"fuzz-customer-{n}" for n in range(SUBJECTS)]
NEVER = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})

SERVICES = [
    service
    for module in (
        gateway_service_pb2,
        reservation_service_pb2,
        notifier_service_pb2,
        payment_service_pb2,
    )
    for service in module.DESCRIPTOR.services_by_name.values()
]
METHODS = [method for service in SERVICES for method in service.methods]


def test_the_fuzzing_covers_every_rpc_of_every_public_service() -> None:
    assert {s.full_name for s in SERVICES} == {
        "ticketing.v1.GatewayService",
        "ticketing.v1.ReservationService",
        "ticketing.v1.NotifierService",
        "ticketing.v1.PaymentService",
    }
    assert len(METHODS) == 18


@dataclass(frozen=True)
class World:
    """Real things for the hostile requests to name."""

    channel: grpc.Channel
    known: dict[str, list[str]]


def _metadata(subject: str, *, admin: bool = False) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token(subject, admin=admin)}"),)


def _callers(role: str) -> Iterator[tuple[tuple[str, str]]]:
    """The metadata of each call in turn: a few subjects of the role, each
    for a run of calls, so Pay's per-subject rate limit leaves most of the
    examples to reach the code behind it."""
    for n in itertools.count():
        subject = f"fuzz-{role}-{(n // CALLS_PER_SUBJECT) % SUBJECTS}"
        yield _metadata(subject, admin=role == "admin")


def _wait_decided(
    reservations: Any, reservation_id: str, metadata: tuple[tuple[str, str]]
) -> pb.Reservation:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = reservations.GetReservation(
            rs.GetReservationRequest(reservation_id=reservation_id),
            metadata=metadata,
            timeout=10,
        ).reservation
        if found.status != pb.RESERVATION_STATUS_QUEUED:
            return cast(pb.Reservation, found)
        time.sleep(0.05)
    raise AssertionError(f"{reservation_id} was not decided in time")


@pytest.fixture(scope="module")
def world(stack: LocalStack) -> Iterator[World]:
    """A free event and a priced one, each customer's confirmed and held
    reservations on them, and a declined payment."""
    with grpc.insecure_channel(stack.endpoint) as channel:
        admin = _metadata("fuzz-admin", admin=True)
        reservations = reservation_service_pb2_grpc.ReservationServiceStub(channel)
        gateway = gateway_service_pb2_grpc.GatewayServiceStub(channel)
        payments = payment_service_pb2_grpc.PaymentServiceStub(channel)
        free = reservations.CreateEvent(
            rs.CreateEventRequest(name="Fuzzed", capacity=200, per_user_limit=20),
            metadata=admin,
            timeout=10,
        ).event
        priced_request = rs.CreateEventRequest(
            name="Fuzzed, priced",
            capacity=50,
            per_user_limit=10,
            price=pb.Money(currency_code="EUR", amount_minor=1_000),
            priority_tiers=["vip"],
        )
        priced_request.hold_ttl.FromSeconds(120)
        priced = reservations.CreateEvent(priced_request, metadata=admin, timeout=10).event
        seating = pb.SeatingPlan()
        section = seating.sections.add(section_id="A", name="Stalls")
        for r in (1, 2):
            section.rows.add(
                row_id=f"A-{r}",
                seat_ids=[f"A-{r}-{n}" for n in range(1, 6)],
                accessible_seat_ids=[f"A-{r}-1"],
            )
        seating.sections.add(section_id="GA", name="Standing", capacity=10)
        seated = reservations.CreateEvent(
            rs.CreateEventRequest(name="Fuzzed, seated", per_user_limit=4, seating_plan=seating),
            metadata=admin,
            timeout=10,
        ).event
        owned: list[tuple[str, tuple[tuple[str, str]]]] = []
        for customer in CUSTOMERS:
            metadata = _metadata(customer)
            for event in (free, priced, priced):
                reply = gateway.Reserve(
                    gw.ReserveRequest(
                        event_id=event.event_id, quantity=1, idempotency_key=uuid.uuid4().hex
                    ),
                    metadata=metadata,
                    timeout=10,
                )
                owned.append((reply.reservation_id, metadata))
        decided = [_wait_decided(reservations, r, metadata) for r, metadata in owned]
        assert [d.status for d in decided] == [
            pb.RESERVATION_STATUS_CONFIRMED,
            pb.RESERVATION_STATUS_HELD,
            pb.RESERVATION_STATUS_HELD,
        ] * SUBJECTS
        declined = payments.Pay(
            ps.PayRequest(
                reservation_id=owned[2][0], payment_method="test-declined", idempotency_key="no"
            ),
            metadata=owned[2][1],
            timeout=10,
        ).payment
        yield World(
            channel=channel,
            known={
                "event_id": [free.event_id, priced.event_id, seated.event_id],
                "section_id": ["A", "GA"],
                "row_id": ["A-1", "A-2"],
                "seat_ids": [f"A-{r}-{n}" for r in (1, 2) for n in range(1, 6)],
                "reservation_id": [r for r, _ in owned],
                "payment_id": [declined.payment_id],
            },
        )


def _call(
    channel: grpc.Channel,
    method: MethodDescriptor,
    request: Message,
    metadata: tuple[tuple[str, str]],
) -> None:
    """One call; fails on INTERNAL, UNKNOWN or a hang."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    response = GetMessageClass(method.output_type)
    try:
        if method.server_streaming:
            stream = channel.unary_stream(
                path,
                request_serializer=type(request).SerializeToString,
                response_deserializer=response.FromString,
            )(request, metadata=metadata, timeout=STREAM_DEADLINE_S)
            try:
                for _ in stream:
                    break  # the first message, or the stream's end
            finally:
                stream.cancel()  # type: ignore[no-untyped-call]
        else:
            channel.unary_unary(
                path,
                request_serializer=type(request).SerializeToString,
                response_deserializer=response.FromString,
            )(request, metadata=metadata, timeout=UNARY_DEADLINE_S)
    except grpc.RpcError as error:
        _clear(method, request, error)


def _clear(method: MethodDescriptor, request: Message, error: grpc.RpcError) -> None:
    """Fails unless ``error`` is a clear answer of ours: a status with the
    ErrorInfo that names its reason (not a proxy's 502 or a bug's INTERNAL)."""
    code = error.code()
    what = f"{method.name}: {code.name} {(error.details() or '')[:300]!r} for {str(request)[:2000]}"
    if code == grpc.StatusCode.CANCELLED and method.server_streaming:
        return  # our own cancel after the first message
    assert code not in NEVER, what
    # A stream is read for its first message only: it never waits for a change.
    assert code != grpc.StatusCode.DEADLINE_EXCEEDED, f"hung: {what}"
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and request.ByteSize() > MAX_MESSAGE_BYTES:
        return  # refused by gRPC itself before any of our code
    status = rpc_status.from_call(cast(grpc.Call, error))
    assert status is not None, f"no google.rpc.Status: {what}"
    infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    assert infos, f"no ErrorInfo: {what}"
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        bad = [d for d in status.details if d.Is(error_details_pb2.BadRequest.DESCRIPTOR)]
        assert bad, f"no BadRequest: {what}"


@pytest.mark.parametrize("role", ["customer", "admin"])
@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_hostile_requests_never_get_internal_unknown_or_a_hang(
    world: World, method: MethodDescriptor, role: str
) -> None:
    callers = _callers(role)

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(Builder(world.known).messages(method.input_type))
    def hostile(request: Message) -> None:
        _call(world.channel, method, request, next(callers))

    hostile()


async def test_the_ledger_balances_after_the_fuzzing(stack: LocalStack, world: World) -> None:
    await queue_drained(stack)
    pool = await asyncpg.create_pool(stack.postgres_dsn, min_size=1, max_size=2)
    try:
        # Payments the fuzzing started may still be under way: their saga
        # ends within its timeout.
        deadline = time.monotonic() + 60
        while True:
            ledger = await reconcile(stack.kafka, pool)
            settled = ledger.balanced and ledger.seats_ok and ledger.money_ok
            if settled or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    finally:
        await pool.close()
    assert ledger.balanced, ledger.missing
    assert ledger.seats_ok, [c for c in ledger.seats if not c.ok]
    assert ledger.money_ok, [c for c in ledger.money if not c.ok]
