"""The saga with the Stripe provider, over real HTTP, against Stripe-shaped
answers (``fake_stripe``) and a real PostgreSQL: an outage is retried under
the same idempotency key until Stripe answers; a refused API key needs an
operator and is never a decline; a card decline keeps the hold; an
authorization Stripe never answers is released by asking again under its
key and cancelling what that finds."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
import redis.asyncio as redis

from payment_service.provider import ProviderError
from payment_service.retries import RetryBudget
from payment_service.saga import Saga
from payment_service.store import Payment, fetch_payment, insert_payment
from payment_service.stripe_provider import StripeProvider
from ticketing_common.domain import PaymentStatus
from ticketing_common.storage.locks import EventLocks
from ticketing_tools.stack import LocalStack

from .conftest import PRICE, new_reservation
from .fake_stripe import FakeStripe, Reply, error_body, payment_intent


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeStripe]:
    server = FakeStripe()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def saga(stack: LocalStack, pool: asyncpg.Pool, fake: FakeStripe) -> AsyncIterator[Saga]:
    fake.reset()
    provider = StripeProvider("sk_test_saga", api_base=fake.url, timeout_s=5)
    client = redis.Redis.from_url(stack.redis_url)
    yield Saga(
        pool,
        EventLocks(client, owner="stripe-saga-test"),
        provider,
        budget=RetryBudget(
            attempts=5,
            window=timedelta(hours=1),
            backoff=timedelta(0),
            backoff_max=timedelta(0),
        ),
        lock_wait_s=2,
        provider_timeout_s=3,
    )
    await provider.close()
    await client.aclose()


async def paying(pool: asyncpg.Pool, *, saga_timeout_s: float = 30) -> Payment:
    reservation = await new_reservation(pool, "HELD")
    async with pool.acquire() as conn, conn.transaction():
        payment = await insert_payment(
            conn,
            reservation,
            idempotency_key="k",
            method="pm_card_visa",
            saga_timeout=timedelta(seconds=saga_timeout_s),
            provider="stripe",
        )
    assert payment is not None
    return payment


async def current(pool: asyncpg.Pool, payment: Payment) -> Payment:
    found = await fetch_payment(pool, payment.payment_id)
    assert found is not None
    return found


async def reservation_status(pool: asyncpg.Pool, payment: Payment) -> str:
    status: str = await pool.fetchval(
        "SELECT status FROM reservations WHERE reservation_id = $1",
        uuid.UUID(payment.reservation_id),
    )
    return status


async def test_an_outage_at_stripe_is_retried_under_the_same_key_until_it_answers(
    pool: asyncpg.Pool, fake: FakeStripe, saga: Saga
) -> None:
    payment = await paying(pool)
    fake.answer_each(
        "POST",
        "/v1/payment_intents",
        Reply(503, error_body("api_error", message="Stripe is down")),
        Reply(429, error_body("invalid_request_error", code="rate_limit")),
        Reply(200, payment_intent("pi_outage", amount=PRICE)),
    )
    fake.answer(
        "POST",
        "/v1/payment_intents/pi_outage/capture",
        200,
        payment_intent("pi_outage", status="succeeded"),
    )
    for attempt in (1, 2):
        with pytest.raises(ProviderError) as failed:
            await saga.advance(payment.payment_id)
        assert failed.value.retriable
        waiting = await current(pool, payment)
        assert (waiting.status, waiting.attempts, waiting.needs_attention) == (
            PaymentStatus.PENDING,
            attempt,
            False,
        )
    assert await saga.advance(payment.payment_id) is PaymentStatus.CAPTURED

    creates = [r for r in fake.requests if r.path == "/v1/payment_intents"]
    assert [r.idempotency_key for r in creates] == [payment.payment_id] * 3
    assert len({tuple(sorted(r.form.items())) for r in creates}) == 1  # the same call each time
    assert creates[0].form["amount"] == str(PRICE)
    assert creates[0].form["currency"] == "eur"
    (capture,) = [r for r in fake.requests if r.path.endswith("/capture")]
    assert (capture.idempotency_key, capture.form) == (
        f"{payment.payment_id}:capture",
        {"amount_to_capture": str(PRICE)},
    )
    assert await reservation_status(pool, payment) == "CONFIRMED"
    assert (await current(pool, payment)).provider_ref == "pi_outage"


async def test_a_refused_api_key_needs_an_operator_and_is_never_a_decline(
    pool: asyncpg.Pool, fake: FakeStripe, saga: Saga
) -> None:
    payment = await paying(pool)
    fake.answer(
        "POST",
        "/v1/payment_intents",
        401,
        error_body("invalid_request_error", message="Invalid API Key provided: sk_test_****saga"),
    )
    with pytest.raises(ProviderError) as refused:
        await saga.advance(payment.payment_id)
    assert not refused.value.retriable
    flagged = await current(pool, payment)
    assert (flagged.status, flagged.needs_attention, flagged.decline_code) == (
        PaymentStatus.PENDING,
        True,
        None,
    )
    assert flagged.last_error is not None
    assert "TICKETING_STRIPE_API_KEY" in flagged.last_error
    assert await reservation_status(pool, payment) == "HELD"
    # Left to the operator: not tried again.
    assert await saga.advance(payment.payment_id) is PaymentStatus.PENDING
    assert len(fake.requests) == 1


async def test_a_card_decline_keeps_the_hold_with_stripes_decline_code(
    pool: asyncpg.Pool, fake: FakeStripe, saga: Saga
) -> None:
    payment = await paying(pool)
    fake.answer(
        "POST",
        "/v1/payment_intents",
        402,
        error_body(
            "card_error",
            code="card_declined",
            decline_code="insufficient_funds",
            message="Your card has insufficient funds.",
            payment_intent=payment_intent("pi_declined", status="requires_payment_method"),
        ),
    )
    assert await saga.advance(payment.payment_id) is PaymentStatus.DECLINED
    declined = await current(pool, payment)
    assert (declined.decline_code, declined.detail, declined.provider_ref) == (
        "insufficient_funds",
        "Your card has insufficient funds.",
        "pi_declined",
    )
    assert await reservation_status(pool, payment) == "HELD"


async def test_an_authorization_stripe_never_answers_is_found_by_its_key_and_cancelled(
    pool: asyncpg.Pool, fake: FakeStripe, saga: Saga
) -> None:
    payment = await paying(pool, saga_timeout_s=1)
    fake.answer_each(
        "POST",
        "/v1/payment_intents",
        Reply(200, {}, hang=True),
        Reply(200, payment_intent("pi_late", amount=PRICE)),
    )
    fake.answer(
        "POST",
        "/v1/payment_intents/pi_late/cancel",
        200,
        payment_intent("pi_late", status="canceled", cancellation_reason="requested_by_customer"),
    )
    assert await saga.advance(payment.payment_id) is PaymentStatus.VOIDED
    assert [(r.path, r.idempotency_key) for r in fake.requests] == [
        ("/v1/payment_intents", payment.payment_id),
        ("/v1/payment_intents", payment.payment_id),
        ("/v1/payment_intents/pi_late/cancel", f"{payment.payment_id}:void"),
    ]
    voided = await current(pool, payment)
    assert voided.detail == "timed out waiting for the provider"
    assert await reservation_status(pool, payment) == "HELD"


async def test_a_payment_timed_out_before_its_authorization_was_sent_asks_stripe_nothing(
    pool: asyncpg.Pool, fake: FakeStripe, saga: Saga
) -> None:
    """Its turn never came within the saga's timeout (a rush waiting to be
    paced): nothing reached Stripe, so nothing is released there either; no
    authorization is made only to be cancelled."""
    payment = await paying(pool, saga_timeout_s=0.001)
    assert await saga.advance(payment.payment_id) is PaymentStatus.VOIDED
    assert fake.requests == []
    voided = await current(pool, payment)
    assert (voided.detail, voided.authorize_sent_at) == ("timed out waiting for the provider", None)


async def test_a_capture_tried_again_after_a_500_looks_first_then_takes_a_key_of_its_own(
    pool: asyncpg.Pool, fake: FakeStripe, saga: Saga
) -> None:
    """Stripe keeps a key's first answer, a 500 too: the retry under the same
    key could never succeed."""
    payment = await paying(pool)
    fake.answer("POST", "/v1/payment_intents", 200, payment_intent("pi_500", amount=PRICE))
    fake.answer_each(
        "POST",
        "/v1/payment_intents/pi_500/capture",
        Reply(500, error_body("api_error", message="An unknown error occurred")),
        Reply(200, payment_intent("pi_500", status="succeeded", amount=PRICE)),
    )
    fake.answer("GET", "/v1/payment_intents/pi_500", 200, payment_intent("pi_500", amount=PRICE))
    with pytest.raises(ProviderError):
        await saga.advance(payment.payment_id)
    assert (await current(pool, payment)).status is PaymentStatus.CAPTURING
    assert await saga.advance(payment.payment_id) is PaymentStatus.CAPTURED
    assert [(r.method, r.path, r.idempotency_key) for r in fake.requests[1:]] == [
        ("POST", "/v1/payment_intents/pi_500/capture", f"{payment.payment_id}:capture"),
        ("GET", "/v1/payment_intents/pi_500", None),
        ("POST", "/v1/payment_intents/pi_500/capture", f"{payment.payment_id}:capture:1"),
    ]


async def test_a_capture_whose_answer_was_lost_is_not_made_twice(
    pool: asyncpg.Pool, fake: FakeStripe, saga: Saga
) -> None:
    payment = await paying(pool)
    fake.answer("POST", "/v1/payment_intents", 200, payment_intent("pi_lost", amount=PRICE))
    fake.answer(
        "POST",
        "/v1/payment_intents/pi_lost/capture",
        502,
        "<html>bad gateway</html>",
    )
    fake.answer(
        "GET",
        "/v1/payment_intents/pi_lost",
        200,
        payment_intent("pi_lost", status="succeeded", amount=PRICE),
    )
    with pytest.raises(ProviderError):
        await saga.advance(payment.payment_id)
    # Stripe did capture it: the retry sees so and captures nothing more.
    assert await saga.advance(payment.payment_id) is PaymentStatus.CAPTURED
    captures = [r for r in fake.requests if r.path.endswith("/capture")]
    assert len(captures) == 1
