"""Client-side helpers the integration tests share."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import secrets
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import asyncpg
import grpc

from ticketing.v1 import (
    gateway_service_pb2,
    gateway_service_pb2_grpc,
    notifier_service_pb2,
    notifier_service_pb2_grpc,
    payment_service_pb2,
    payment_service_pb2_grpc,
    reservation_service_pb2,
    reservation_service_pb2_grpc,
)
from ticketing.v1 import reservation_pb2 as pb
from ticketing_common.auth import ADMIN, CUSTOMER
from ticketing_common.record_keys import RecordKeys
from ticketing_common.storage.db import migrate_database
from ticketing_tools.ledger import committed_offsets, end_offsets
from ticketing_tools.stack import LocalStack
from ticketing_tools.tokens import SigningKey, authorized_channel, bearer

if TYPE_CHECKING:  # the asyncio flavour of the stubs, as mypy-protobuf types it
    Gateway: TypeAlias = gateway_service_pb2_grpc.GatewayServiceAsyncStub
    Notifier: TypeAlias = notifier_service_pb2_grpc.NotifierServiceAsyncStub
    Reservations: TypeAlias = reservation_service_pb2_grpc.ReservationServiceAsyncStub
    Payments: TypeAlias = payment_service_pb2_grpc.PaymentServiceAsyncStub
else:
    Gateway = gateway_service_pb2_grpc.GatewayServiceStub
    Notifier = notifier_service_pb2_grpc.NotifierServiceStub
    Reservations = reservation_service_pb2_grpc.ReservationServiceStub
    Payments = payment_service_pb2_grpc.PaymentServiceStub


def gateway_stub(channel: grpc.aio.Channel) -> Gateway:
    return gateway_service_pb2_grpc.GatewayServiceStub(channel)


def notifier_stub(channel: grpc.aio.Channel) -> Notifier:
    return notifier_service_pb2_grpc.NotifierServiceStub(channel)


def reservations_stub(channel: grpc.aio.Channel) -> Reservations:
    return reservation_service_pb2_grpc.ReservationServiceStub(channel)


def payments_stub(channel: grpc.aio.Channel) -> Payments:
    return payment_service_pb2_grpc.PaymentServiceStub(channel)


# One signing key for every stack the tests start (StackConfig.signing_key_file),
# so a test mints a caller's token without asking which stack it talks to.
TEST_KEY = SigningKey.generate()
TEST_KEY_FILE, _ = TEST_KEY.write(Path(tempfile.mkdtemp(prefix="ticketing-test-key-")))
# A record key of a rotation in progress that every test stack's gateways
# and consumers accept besides the stack's own (TICKETING_RESERVATION_KEY_ID
# "stack"): tests sign records with it as a gateway on the other key would.
PREVIOUS_RECORD_KEYS = RecordKeys.single("previous", secrets.token_hex(32).encode())
# What every test stack's services get besides the launcher's own settings.
TEST_SERVICE_ENV = {
    "TICKETING_GATEWAY_SYNC_ENABLED": "true",
    "TICKETING_RESERVATION_VERIFY_KEYS": json.dumps(
        {"previous": PREVIOUS_RECORD_KEYS.secret.decode()}
    ),
    # A payment the provider never answers is given up on after 2 s, and the
    # slow test method answers after 3 s (past the shortest holds).
    "TICKETING_PAYMENT_SAGA_TIMEOUT_S": "2",
    "TICKETING_PAYMENT_SLOW_DELAY_S": "3",
}
ADMIN_TOKEN = TEST_KEY.mint("test-admin", roles=(ADMIN,), ttl_s=24 * 3600)


@functools.lru_cache(maxsize=100_000)
def token(user: str, *, admin: bool = False) -> str:
    return TEST_KEY.mint(user, roles=(ADMIN,) if admin else (CUSTOMER,), ttl_s=24 * 3600)


def as_user(user: str) -> tuple[tuple[str, str]]:
    """Call metadata that makes ``user`` the caller."""
    return bearer(token(user))


def authorized(endpoint: str) -> grpc.aio.Channel:
    """A channel whose calls are the test administrator's unless they say
    otherwise (``metadata=as_user(...)``)."""
    return authorized_channel(endpoint, ADMIN_TOKEN)


# What reflection lists on every server and at the load balancer, written
# out rather than taken from ticketing_common.reflection, so that a service
# missing there fails the tests.
PUBLIC_SERVICES = {
    "ticketing.v1.GatewayService",
    "ticketing.v1.NotifierService",
    "ticketing.v1.PaymentService",
    "ticketing.v1.ReservationService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
}

CONFIRMED = pb.RESERVATION_STATUS_CONFIRMED
HELD = pb.RESERVATION_STATUS_HELD
EXPIRED = pb.RESERVATION_STATUS_EXPIRED
CANCELLED = pb.RESERVATION_STATUS_CANCELLED
REJECTED = pb.RESERVATION_STATUS_REJECTED
QUEUED = pb.RESERVATION_STATUS_QUEUED
SOLD_OUT = pb.REJECT_REASON_SOLD_OUT
LIMIT_EXCEEDED = pb.REJECT_REASON_LIMIT_EXCEEDED


async def create_event(
    reservations: Reservations, capacity: int = 10, per_user_limit: int = 4
) -> pb.Event:
    reply = await reservations.CreateEvent(
        reservation_service_pb2.CreateEventRequest(
            name="Test event", capacity=capacity, per_user_limit=per_user_limit
        ),
        timeout=10,
    )
    return reply.event


async def create_priced_event(
    reservations: Reservations,
    *,
    capacity: int,
    hold_s: float,
    per_user_limit: int | None = None,
    price_minor: int = 2_500,
    currency: str = "EUR",
) -> pb.Event:
    """An event whose seats cost ``price_minor`` (EUR cents unless
    ``currency`` says otherwise), held ``hold_s`` for payment."""
    request = reservation_service_pb2.CreateEventRequest(
        name="Priced event",
        capacity=capacity,
        per_user_limit=per_user_limit or min(capacity, 4),
        price=pb.Money(currency_code=currency, amount_minor=price_minor),
    )
    request.hold_ttl.FromMilliseconds(round(hold_s * 1000))
    return (await reservations.CreateEvent(request, timeout=10)).event


async def pay(
    payments: Payments, reservation_id: str, user_id: str, method: str, key: str = "pay-1"
) -> payment_service_pb2.Payment:
    reply = await payments.Pay(
        payment_service_pb2.PayRequest(
            reservation_id=reservation_id, payment_method=method, idempotency_key=key
        ),
        timeout=10,
        metadata=as_user(user_id),
    )
    return reply.payment


async def watch_until(
    notifier: Notifier,
    reservation_id: str,
    done: Callable[[pb.Reservation], bool],
    timeout: float = 30,
) -> list[pb.Reservation]:
    """The states one WatchReservation stream sends, up to the first for
    which ``done`` is true (or the stream's end)."""
    seen: list[pb.Reservation] = []
    call = notifier.WatchReservation(
        notifier_service_pb2.WatchReservationRequest(reservation_id=reservation_id),
        timeout=timeout,
    )
    async for message in call:
        seen.append(message.reservation)
        if done(message.reservation):
            call.cancel()
            break
    return seen


async def get_event(reservations: Reservations, event_id: str) -> pb.Event:
    reply = await reservations.GetEvent(
        reservation_service_pb2.GetEventRequest(event_id=event_id), timeout=10
    )
    return reply.event


async def reserve(
    gateway: Gateway,
    event_id: str,
    user_id: str,
    quantity: int = 1,
    key: str | None = None,
    timeout: float = 30,
) -> gateway_service_pb2.ReserveResponse:
    return await gateway.Reserve(
        gateway_service_pb2.ReserveRequest(
            event_id=event_id, quantity=quantity, idempotency_key=key or uuid.uuid4().hex
        ),
        timeout=timeout,
        metadata=as_user(user_id),
    )


async def hold_for(
    gateway: Gateway, notifier: Notifier, event_id: str, user_id: str, quantity: int = 1
) -> pb.Reservation:
    """A new reservation of a priced event, once it is HELD (its seats wait for payment)."""
    reply = await reserve(gateway, event_id, user_id, quantity)
    last = (await watch_until(notifier, reply.reservation_id, lambda r: r.status == HELD))[-1]
    assert last.status == HELD, last
    return last


async def watch(
    notifier: Notifier, reservation_id: str, timeout: float = 60
) -> list[pb.Reservation]:
    """Every message of one WatchReservation stream, until it ends."""
    call = notifier.WatchReservation(
        notifier_service_pb2.WatchReservationRequest(reservation_id=reservation_id),
        timeout=timeout,
    )
    return [message.reservation async for message in call]


def is_terminal(reservation: pb.Reservation) -> bool:
    return reservation.settled


async def queue_drained(stack: LocalStack, timeout_s: float = 30) -> None:
    """Waits until the consumer group has committed every record the requests
    topic holds now: every accepted request is decided, published and
    acknowledged."""
    topic = stack.kafka.requests_topic
    ends = await end_offsets(stack.kafka, topic)
    async with asyncio.timeout(timeout_s):
        while True:
            done = await committed_offsets(stack.kafka, stack.kafka.consumer_group, topic, ends)
            if all(done.get(p, 0) >= end for p, end in ends.items()):
                return
            await asyncio.sleep(0.1)


async def reservation_rows(dsn: str, reservation_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(
            "SELECT * FROM reservations WHERE reservation_id = $1", uuid.UUID(reservation_id)
        )
    finally:
        await conn.close()


@contextmanager
def consumers_paused(stack: LocalStack) -> Iterator[None]:
    """Freezes the running consumer processes (SIGSTOP) so requests stay queued."""
    pids = [child.pid for child in stack.services["consumer_service"] if child.alive()]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


@asynccontextmanager
async def gateway_of_its_own(
    stack: LocalStack, settings: Mapping[str, str]
) -> AsyncIterator[grpc.aio.Channel]:
    """One more gateway with ``settings`` of its own, reached directly (not
    through nginx, so its peer address is the test's); stopped after."""
    child = stack.start_service("gateway", settings)
    address = stack.addresses["gateway"][-1]
    await asyncio.to_thread(stack.wait_healthy, child, address)
    try:
        async with authorized(address) as channel:
            yield channel
    finally:
        await asyncio.to_thread(stack.stop_service, child)


@asynccontextmanager
async def own_database(stack: LocalStack, prefix: str) -> AsyncIterator[str]:
    """A migrated database of its own on the stack's PostgreSQL (the stack's
    services never see what a test writes there); its DSN. Dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(stack.admin_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    dsn = stack.admin_dsn.rsplit("/", 1)[0] + "/" + name
    try:
        await migrate_database(dsn)
        yield dsn
    finally:
        admin = await asyncpg.connect(stack.admin_dsn)
        try:
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        finally:
            await admin.close()
