"""The payment saga under faults, on a stack of its own whose payment service
pauses between steps (so a kill lands where it is aimed): killed between
authorize and confirm, and between confirm and capture; down for a while;
a payment racing its hold's expiry, each way round; and a capture that keeps
failing, seen by the operator. Every test ends with the seats and the money
balanced, and the provider's books agreeing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

import asyncpg
import grpc
import pytest

from ticketing.v1 import reservation_pb2 as pb
from ticketing_tools.ledger import reconcile
from ticketing_tools.stack import LocalStack, StackConfig

from ..helpers import (
    CONFIRMED,
    EXPIRED,
    HELD,
    authorized,
    create_priced_event,
    gateway_stub,
    get_event,
    notifier_stub,
    pay,
    payments_stub,
    reservations_stub,
    reserve,
    watch,
    watch_until,
)
from .conftest import fault_stack_of

# Each saga step is followed by this pause: the window a kill aims at.
STEP_PAUSE_MS = 1_500
SAGA_SETTINGS = {
    "TICKETING_PAYMENT_FAULT_DELAY_MS": str(STEP_PAUSE_MS),
    # A payment left mid-way by a killed process is taken on again quickly.
    "TICKETING_PAYMENT_PROVIDER_TIMEOUT_S": "2",
    "TICKETING_PAYMENT_LOCK_WAIT_S": "1",
    "TICKETING_PAYMENT_SWEEP_INTERVAL_S": "0.5",
    "TICKETING_CONSUMER_EXPIRY_INTERVAL_S": "0.2",
    # Far longer than the outages below (and a restart on a busy machine): a
    # payment waits them out.
    "TICKETING_PAYMENT_SAGA_TIMEOUT_S": "30",
    # A step that keeps failing needs an operator after a few quick attempts.
    "TICKETING_PAYMENT_RETRY_ATTEMPTS": "3",
    "TICKETING_PAYMENT_RETRY_BACKOFF_S": "0.2",
    "TICKETING_PAYMENT_RETRY_BACKOFF_MAX_S": "0.5",
}


@pytest.fixture(scope="module")
def saga_stack() -> Iterator[LocalStack]:
    config = StackConfig(listen_port=0, gateways=1, consumers=1)
    with fault_stack_of(config, SAGA_SETTINGS) as running:
        yield running


@pytest.fixture(scope="module")
async def saga_channel(saga_stack: LocalStack) -> AsyncIterator[grpc.aio.Channel]:
    async with authorized(saga_stack.endpoint) as channel:
        yield channel


@pytest.fixture
async def saga_pool(saga_stack: LocalStack) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(saga_stack.postgres_dsn, min_size=1, max_size=2) as pool:
        yield pool


async def payment_status(pool: asyncpg.Pool, payment_id: str) -> str:
    status: str = await pool.fetchval(
        "SELECT status FROM payments WHERE payment_id = $1", uuid.UUID(payment_id)
    )
    return status


async def wait_for_status(
    pool: asyncpg.Pool, payment_id: str, status: str, timeout_s: float = 20
) -> None:
    async with asyncio.timeout(timeout_s):
        while await payment_status(pool, payment_id) != status:
            await asyncio.sleep(0.02)


async def provider_books(pool: asyncpg.Pool, payment_id: str) -> set[str]:
    rows = await pool.fetch(
        "SELECT operation FROM provider_operations WHERE payment_id = $1", uuid.UUID(payment_id)
    )
    return {row["operation"] for row in rows}


async def balanced(stack: LocalStack, pool: asyncpg.Pool) -> None:
    ledger = await reconcile(stack.kafka, pool)
    assert ledger.balanced, ledger.missing
    assert ledger.seats_ok, [c for c in ledger.seats if not c.ok]
    assert ledger.money_ok, [c for c in ledger.money if not c.ok]


async def held_seat(
    stack: LocalStack, channel: grpc.aio.Channel, user: str, hold_s: float
) -> tuple[pb.Event, pb.Reservation]:
    event = await create_priced_event(reservations_stub(channel), capacity=1, hold_s=hold_s)
    reply = await reserve(gateway_stub(channel), event.event_id, user)
    seen = await watch_until(
        notifier_stub(channel), reply.reservation_id, lambda r: r.status == HELD
    )
    return event, seen[-1]


def kill_payment_service(stack: LocalStack) -> None:
    child = stack.services["payment_service"][0]
    os.kill(child.pid, signal.SIGKILL)
    child.process.wait()  # type: ignore[union-attr]


async def restart_payment_service(stack: LocalStack) -> None:
    child = stack.services["payment_service"][0]
    await asyncio.to_thread(stack.restart, child)


@pytest.mark.parametrize("window", ["AUTHORIZED", "CAPTURING"])
async def test_a_payment_service_killed_between_steps_ends_confirmed_and_captured(
    saga_stack: LocalStack, saga_channel: grpc.aio.Channel, saga_pool: asyncpg.Pool, window: str
) -> None:
    event, hold = await held_seat(saga_stack, saga_channel, f"kill-{window}", hold_s=60)
    payment = await pay(
        payments_stub(saga_channel), hold.reservation_id, f"kill-{window}", "test-ok"
    )
    await wait_for_status(saga_pool, payment.payment_id, window)
    kill_payment_service(saga_stack)
    # The kill landed in the pause after that step, before the next one.
    assert await payment_status(saga_pool, payment.payment_id) == window
    await restart_payment_service(saga_stack)

    final = (await watch(notifier_stub(saga_channel), hold.reservation_id))[-1]
    assert (final.status, final.payment_status) == (CONFIRMED, pb.PAYMENT_STATUS_CAPTURED)
    assert await provider_books(saga_pool, payment.payment_id) == {"authorized", "captured"}
    seats = await get_event(reservations_stub(saga_channel), event.event_id)
    assert (seats.available, seats.held, seats.confirmed) == (0, 0, 1)
    await balanced(saga_stack, saga_pool)


async def test_while_the_payment_service_is_down_payments_wait_and_then_complete(
    saga_stack: LocalStack, saga_channel: grpc.aio.Channel, saga_pool: asyncpg.Pool
) -> None:
    _, hold = await held_seat(saga_stack, saga_channel, "patient", hold_s=60)
    payments = payments_stub(saga_channel)
    kill_payment_service(saga_stack)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as down:
            await pay(payments, hold.reservation_id, "patient", "test-ok")
        assert down.value.code() == grpc.StatusCode.UNAVAILABLE
        assert (
            await saga_pool.fetchval(
                "SELECT count(*) FROM payments WHERE reservation_id = $1",
                uuid.UUID(hold.reservation_id),
            )
            == 0
        )
    finally:
        await restart_payment_service(saga_stack)
    payment = await pay(payments, hold.reservation_id, "patient", "test-ok")
    # Down again with the payment accepted: the command waits in Kafka.
    kill_payment_service(saga_stack)
    await asyncio.sleep(2.0)  # the outage (a down service cannot be waited on)
    assert await payment_status(saga_pool, payment.payment_id) == "PENDING"
    await restart_payment_service(saga_stack)
    final = (await watch(notifier_stub(saga_channel), hold.reservation_id))[-1]
    assert (final.status, final.payment_status) == (CONFIRMED, pb.PAYMENT_STATUS_CAPTURED)
    await balanced(saga_stack, saga_pool)


async def test_a_hold_that_expires_while_its_payment_is_authorized_gets_the_money_back(
    saga_stack: LocalStack, saga_channel: grpc.aio.Channel, saga_pool: asyncpg.Pool
) -> None:
    # Authorized within the 1 s hold, confirmed only after the pause: too late.
    event, hold = await held_seat(saga_stack, saga_channel, "racer-late", hold_s=1)
    payment = await pay(payments_stub(saga_channel), hold.reservation_id, "racer-late", "test-ok")
    final = (await watch(notifier_stub(saga_channel), hold.reservation_id))[-1]
    assert (final.status, final.payment_status) == (EXPIRED, pb.PAYMENT_STATUS_VOIDED)
    authorized_at: datetime = await saga_pool.fetchval(
        "SELECT at FROM provider_operations WHERE payment_id = $1 AND operation = 'authorized'",
        uuid.UUID(payment.payment_id),
    )
    expires = hold.hold_expire_time.ToDatetime().replace(tzinfo=authorized_at.tzinfo)
    assert authorized_at < expires  # the payment was in time; its confirmation was not
    assert await provider_books(saga_pool, payment.payment_id) == {"authorized", "voided"}
    seats = await get_event(reservations_stub(saga_channel), event.event_id)
    assert (seats.available, seats.held, seats.confirmed) == (1, 0, 0)
    await balanced(saga_stack, saga_pool)


async def test_a_hold_confirmed_before_its_deadline_stays_sold_after_it(
    saga_stack: LocalStack, saga_channel: grpc.aio.Channel, saga_pool: asyncpg.Pool
) -> None:
    # Confirmed inside the 3 s hold; captured after the deadline has passed,
    # with the expiry worker running meanwhile: the seat stays sold.
    event, hold = await held_seat(saga_stack, saga_channel, "racer-early", hold_s=3)
    payment = await pay(payments_stub(saga_channel), hold.reservation_id, "racer-early", "test-ok")
    final = (await watch(notifier_stub(saga_channel), hold.reservation_id))[-1]
    assert (final.status, final.payment_status) == (CONFIRMED, pb.PAYMENT_STATUS_CAPTURED)
    captured_at: datetime = await saga_pool.fetchval(
        "SELECT at FROM provider_operations WHERE payment_id = $1 AND operation = 'captured'",
        uuid.UUID(payment.payment_id),
    )
    expires = hold.hold_expire_time.ToDatetime().replace(tzinfo=captured_at.tzinfo)
    assert captured_at > expires  # the race was real: the deadline passed mid-saga
    seats = await get_event(reservations_stub(saga_channel), event.event_id)
    assert (seats.available, seats.held, seats.confirmed) == (0, 0, 1)
    await balanced(saga_stack, saga_pool)


def admin(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    """``ticketing-admin`` as an operator runs it against the stack."""
    env = {**os.environ, "TICKETING_POSTGRES_DSN": stack.postgres_dsn}
    return subprocess.run(
        [sys.executable, "-m", "ticketing_tools.admin", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_a_capture_that_keeps_failing_is_left_to_the_operator_who_sees_and_retries_it(
    saga_stack: LocalStack, saga_channel: grpc.aio.Channel, saga_pool: asyncpg.Pool
) -> None:
    event, hold = await held_seat(saga_stack, saga_channel, "unlucky", hold_s=60)
    payment = await pay(
        payments_stub(saga_channel), hold.reservation_id, "unlucky", "test-capture-fails"
    )
    async with asyncio.timeout(60):
        while not await saga_pool.fetchval(
            "SELECT attention_since IS NOT NULL FROM payments WHERE payment_id = $1",
            uuid.UUID(payment.payment_id),
        ):
            await asyncio.sleep(0.1)
    # The seats are the buyer's; the money is not captured, and nobody
    # retries it any more.
    seats = await get_event(reservations_stub(saga_channel), event.event_id)
    assert (seats.available, seats.held, seats.confirmed) == (0, 0, 1)
    assert await payment_status(saga_pool, payment.payment_id) == "CAPTURING"
    assert await provider_books(saga_pool, payment.payment_id) == {"authorized"}

    listing = await asyncio.to_thread(admin, saga_stack, "payments", "--json")
    assert listing.returncode == 1, listing.stderr
    (stuck,) = [p for p in json.loads(listing.stdout) if p["payment_id"] == payment.payment_id]
    assert {k: stuck[k] for k in ("why", "reservation_id", "amount_minor", "status")} == {
        "why": "needs attention",
        "reservation_id": hold.reservation_id,
        "amount_minor": event.price.amount_minor,
        "status": "CAPTURING",
    }
    assert stuck["attempts"] == 3
    assert "test-capture-fails" in stuck["last_error"]
    text = await asyncio.to_thread(admin, saga_stack, "payments")
    assert f"{payment.payment_id}  needs attention  reservation={hold.reservation_id}" in (
        text.stdout
    )

    ledger = await reconcile(saga_stack.kafka, saga_pool)
    (money,) = [c for c in ledger.money if c.event_id == event.event_id]
    assert not money.ok
    assert not ledger.money_ok
    assert money.problems[0].startswith(f"payment {payment.payment_id} CAPTURING needs attention")

    # The provider is back (its authorization capturable again); the operator retries.
    await saga_pool.execute(
        "UPDATE payments SET provider_ref = 'local-' || payment_id WHERE payment_id = $1",
        uuid.UUID(payment.payment_id),
    )
    retried = await asyncio.to_thread(admin, saga_stack, "payments", "retry", payment.payment_id)
    assert retried.returncode == 0, retried.stderr
    await wait_for_status(saga_pool, payment.payment_id, "CAPTURED")
    assert await provider_books(saga_pool, payment.payment_id) == {"authorized", "captured"}
    again = await asyncio.to_thread(admin, saga_stack, "payments", "--json")
    assert payment.payment_id not in again.stdout
    await balanced(saga_stack, saga_pool)
