"""The saga and its store against a real PostgreSQL (a database of its own on
the test stack's server, so that the stack's payment service never takes
these payments on): a capture that always fails spends its retry budget
and then waits for an operator; payments are ordered by their sequence, not
by the clocks that stamped them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as redis
from prometheus_client import REGISTRY

from payment_service.provider import Authorization, Charge, Outcome, ProviderError
from payment_service.retries import RetryBudget
from payment_service.saga import Saga, Sweeper
from payment_service.store import fetch_payment, insert_payment, transition
from ticketing_common.domain import PaymentStatus
from ticketing_common.storage.locks import EventLocks
from ticketing_tools.payments import retry, stuck_payments
from ticketing_tools.stack import LocalStack

from .conftest import PRICE, new_reservation

ATTEMPTS = 3


class FailingCaptures:
    """A provider that authorizes, voids and refunds, and fails every capture."""

    name = "local"

    def __init__(self) -> None:
        self.captures = 0

    def check_method(self, method: str) -> str | None:
        return None

    def check_amount(self, currency: str, amount_minor: int) -> str | None:
        return None

    async def authorize(self, charge: Charge) -> Authorization:
        return Authorization(Outcome.APPROVED, reference=f"ref-{charge.payment_id}")

    async def status(self, charge: Charge, reference: str) -> Authorization:
        return Authorization(Outcome.APPROVED, reference=reference)

    async def capture(self, charge: Charge, reference: str, *, attempt: int = 0) -> None:
        self.captures += 1
        raise ProviderError(f"capture {self.captures} failed: the provider is unavailable")

    async def void(self, charge: Charge, reference: str | None, *, attempt: int = 0) -> None:
        return None

    async def refund(self, charge: Charge, reference: str, *, attempt: int = 0) -> str:
        return f"refund-{charge.payment_id}"


async def capturing_payment(pool: asyncpg.Pool) -> str:
    """A payment whose seats are confirmed and whose capture is next."""
    reservation = await new_reservation(pool, "CONFIRMED")
    payment_id = uuid.uuid4()
    now = datetime.now(UTC)
    await pool.execute(
        """INSERT INTO payments (payment_id, reservation_id, user_id, idempotency_key, method,
                                 amount_minor, currency, status, provider_ref, created_at,
                                 updated_at, deadline, event_id)
           VALUES ($1, $2, 'buyer', 'pay-1', 'card', $3, 'EUR', 'CAPTURING', 'ref', $4, $4, $4,
                   $5)""",
        payment_id,
        uuid.UUID(reservation.reservation_id),
        PRICE,
        now,
        uuid.UUID(reservation.event_id),
    )
    return str(payment_id)


def attention_gauge() -> float | None:
    return REGISTRY.get_sample_value("ticketing_payments_needing_attention")


async def test_a_capture_that_always_fails_needs_an_operator_after_its_attempts_and_no_more(
    stack: LocalStack, pool: asyncpg.Pool
) -> None:
    provider = FailingCaptures()
    saga = Saga(
        pool,
        EventLocks(redis.Redis.from_url(stack.redis_url), owner="test"),
        provider,
        # No wait between attempts: each sweep is one attempt.
        budget=RetryBudget(
            attempts=ATTEMPTS,
            window=timedelta(hours=1),
            backoff=timedelta(0),
            backoff_max=timedelta(0),
        ),
        lock_wait_s=1,
        provider_timeout_s=5,
    )
    sweeper = Sweeper(pool, saga, interval_s=0.1, stale_after=timedelta(0), running=set())
    payment_id = await capturing_payment(pool)

    for attempt in range(1, ATTEMPTS + 1):
        assert await sweeper.sweep_once() == 1
        payment = await fetch_payment(pool, payment_id)
        assert payment is not None
        assert (payment.status, payment.attempts, provider.captures) == (
            PaymentStatus.CAPTURING,
            attempt,
            attempt,
        )
        assert payment.last_error == (
            f"ProviderError: capture {attempt} failed: the provider is unavailable"
        )
        # Not before the budget is spent; at once when it is.
        assert payment.needs_attention == (attempt == ATTEMPTS)

    # Not retried after: neither by the sweeper nor by a command.
    assert await sweeper.sweep_once() == 0
    assert await saga.advance(payment_id) is PaymentStatus.CAPTURING
    assert provider.captures == ATTEMPTS
    assert attention_gauge() == 1.0
    (listed,) = [p for p in await stuck_payments(pool) if p.payment_id == payment_id]
    assert (listed.why, listed.status, listed.attempts, listed.amount_minor) == (
        "needs attention",
        "CAPTURING",
        ATTEMPTS,
        PRICE,
    )

    # The operator's retry: a new budget, and the saga told at once.
    assert await retry(pool, payment_id) == "CAPTURING"
    commands = await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE topic = 'payments' AND key = $1",
        listed.reservation_id.encode(),
    )
    assert commands == 1
    with pytest.raises(ProviderError):
        await saga.advance(payment_id)
    payment = await fetch_payment(pool, payment_id)
    assert payment is not None
    assert (provider.captures, payment.attempts, payment.needs_attention) == (
        ATTEMPTS + 1,
        1,
        False,
    )
    await sweeper.sweep_once()  # the gauge follows
    assert attention_gauge() == 0.0


async def test_a_reservation_shows_its_latest_payment_by_sequence_whatever_the_clocks(
    pool: asyncpg.Pool,
) -> None:
    """Two attempts taken on two hosts: the first host's clock is an hour
    ahead, so the first payment's created_at is later than the second's."""
    reservation = await new_reservation(pool, "HELD")
    timeout = timedelta(minutes=1)
    async with pool.acquire() as conn, conn.transaction():
        first = await insert_payment(
            conn,
            reservation,
            idempotency_key="a",
            method="card",
            saga_timeout=timeout,
            provider="local",
        )
        assert first is not None
        await conn.execute(
            "UPDATE payments SET created_at = created_at + interval '1 hour' WHERE payment_id = $1",
            uuid.UUID(first.payment_id),
        )
    async with pool.acquire() as conn, conn.transaction():
        second = await insert_payment(
            conn,
            reservation,
            idempotency_key="b",
            method="card",
            saga_timeout=timeout,
            provider="local",
        )
        assert second is not None
    first_now = await fetch_payment(pool, first.payment_id)
    assert first_now is not None
    assert first_now.created_at > second.created_at  # the clocks disagree
    assert second.seq > first_now.seq  # the sequence does not

    async def shown() -> tuple[str, str]:
        row = await pool.fetchrow(
            "SELECT payment_id, payment_status FROM reservations WHERE reservation_id = $1",
            uuid.UUID(reservation.reservation_id),
        )
        assert row is not None
        return str(row["payment_id"]), row["payment_status"]

    assert await shown() == (second.payment_id, "PENDING")
    # A late change of the older attempt does not replace the newer one.
    async with pool.acquire() as conn, conn.transaction():
        assert await transition(conn, first_now, PaymentStatus.VOIDING) is not None
    assert await shown() == (second.payment_id, "PENDING")


async def test_a_capture_in_flight_past_its_bound_is_listed_as_stuck(pool: asyncpg.Pool) -> None:
    """No payment service took it forward (none running, say): the operator's
    list still shows it once it has been capturing longer than the bound."""
    payment_id = await capturing_payment(pool)
    assert payment_id not in {p.payment_id for p in await stuck_payments(pool)}
    await pool.execute(
        "UPDATE payments SET updated_at = now() - interval '20 minutes' WHERE payment_id = $1",
        uuid.UUID(payment_id),
    )
    listed = {p.payment_id: p for p in await stuck_payments(pool)}
    assert (listed[payment_id].why, listed[payment_id].attempts) == ("past its bound", 0)
    longer = await stuck_payments(pool, step_bound=timedelta(hours=1))
    assert payment_id not in {p.payment_id for p in longer}
