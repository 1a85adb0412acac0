"""Stripe's webhooks and the 3-D Secure path of the saga, against a real
PostgreSQL (a database of its own) and the webhook server on a real port.

The events are Stripe-shaped and signed the way Stripe signs them
(``t=<unix time>,v1=<HMAC-SHA256 of "t.payload">``): the server checks them
with the stripe library's own check. The provider behind the saga is a
scripted one: what Stripe answers a request is the provider's tests' part
(``test_stripe_provider``); here it is what happens to payments, holds and
seats when the answer or the event comes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as redis
from aiohttp import web
from prometheus_client import REGISTRY

from payment_service.provider import Authorization, BuyerAction, Charge, Outcome
from payment_service.retries import RetryBudget
from payment_service.saga import Saga
from payment_service.store import Payment, fetch_payment, insert_payment, transition
from payment_service.webhooks import PATH, StripeWebhooks, serve
from ticketing_common.domain import PaymentStatus, Reservation
from ticketing_common.storage.locks import EventLocks
from ticketing_tools.stack import LocalStack
from ticketing_tools.stack.processes import free_port

from .conftest import PRICE, new_reservation

SECRET = "whsec_test_" + "s" * 24
ACTION = BuyerAction(type="use_stripe_sdk", client_secret="pi_3ds_secret_abc")


@dataclass
class ScriptedProvider:
    """Answers the saga as Stripe would for a card that asks for 3-D Secure
    (``authorize_answer``), and records every call."""

    authorize_answer: Authorization = field(
        default_factory=lambda: Authorization(
            Outcome.ACTION_REQUIRED, reference="pi_3ds", action=ACTION
        )
    )
    status_answer: Authorization | None = None
    calls: list[tuple[str, str | None]] = field(default_factory=list)
    name: str = "stripe"

    def check_method(self, method: str) -> str | None:
        return None

    def check_amount(self, currency: str, amount_minor: int) -> str | None:
        return None

    async def authorize(self, charge: Charge) -> Authorization:
        self.calls.append(("authorize", None))
        return self.authorize_answer

    async def status(self, charge: Charge, reference: str) -> Authorization:
        self.calls.append(("status", reference))
        return self.status_answer or self.authorize_answer

    async def capture(self, charge: Charge, reference: str, *, attempt: int = 0) -> None:
        self.calls.append(("capture", reference))

    async def void(self, charge: Charge, reference: str | None, *, attempt: int = 0) -> None:
        self.calls.append(("void", reference))

    async def refund(self, charge: Charge, reference: str, *, attempt: int = 0) -> str:
        self.calls.append(("refund", reference))
        return "re_1"


@dataclass
class Webhooks:
    url: str
    session: aiohttp.ClientSession

    async def post(
        self, event: dict[str, Any], *, secret: str = SECRET, at: float | None = None
    ) -> tuple[int, dict[str, Any]]:
        payload = json.dumps(event).encode()
        async with self.session.post(
            self.url,
            data=payload,
            headers={"Stripe-Signature": signature(payload, secret, at)},
        ) as reply:
            return reply.status, await reply.json()


def signature(payload: bytes, secret: str, at: float | None = None) -> str:
    stamp = int(time.time() if at is None else at)
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256)
    return f"t={stamp},v1={mac.hexdigest()}"


def intent_event(kind: str, payment: Payment, **intent: Any) -> dict[str, Any]:
    capturable = payment.amount.amount_minor if intent.get("status") == "requires_capture" else 0
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": kind,
        "created": int(time.time()),
        "livemode": False,
        "data": {
            "object": {
                "id": payment.provider_ref or "pi_3ds",
                "object": "payment_intent",
                "amount": payment.amount.amount_minor,
                "amount_capturable": capturable,
                "currency": payment.amount.currency.lower(),
                "metadata": {"payment_id": payment.payment_id},
                **intent,
            }
        },
    }


def charge_event(kind: str, reference: str, **charge: Any) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": kind,
        "created": int(time.time()),
        "data": {"object": {"payment_intent": reference, **charge}},
    }


@pytest.fixture(scope="module")
async def webhooks(pool: asyncpg.Pool) -> AsyncIterator[Webhooks]:
    port = free_port()
    runner: web.AppRunner = await serve(
        StripeWebhooks(pool, secret=SECRET, tolerance_s=300),
        host="127.0.0.1",
        port=port,
        cert_file=None,
        key_file=None,
    )
    async with aiohttp.ClientSession() as session:
        yield Webhooks(f"http://127.0.0.1:{port}{PATH}", session)
    await runner.cleanup()


@pytest.fixture
async def locks(stack: LocalStack) -> AsyncIterator[EventLocks]:
    client = redis.Redis.from_url(stack.redis_url)
    yield EventLocks(client, owner="webhook-test")
    await client.aclose()


def saga_of(pool: asyncpg.Pool, locks: EventLocks, provider: ScriptedProvider) -> Saga:
    return Saga(
        pool,
        locks,
        provider,
        budget=RetryBudget(
            attempts=3,
            window=timedelta(hours=1),
            backoff=timedelta(0),
            backoff_max=timedelta(0),
        ),
        lock_wait_s=2,
        provider_timeout_s=2,
    )


async def paying(pool: asyncpg.Pool, reservation: Reservation | None = None) -> Payment:
    reservation = reservation or await new_reservation(pool, "HELD")
    async with pool.acquire() as conn, conn.transaction():
        payment = await insert_payment(
            conn,
            reservation,
            idempotency_key=f"pay-{uuid.uuid4().hex[:8]}",
            method="pm_card_authenticationRequired",
            saga_timeout=timedelta(seconds=10),
            provider="stripe",
        )
    assert payment is not None
    return payment


async def now_of(pool: asyncpg.Pool, payment: Payment) -> Payment:
    found = await fetch_payment(pool, payment.payment_id)
    assert found is not None
    return found


async def reservation_state(pool: asyncpg.Pool, payment: Payment) -> tuple[str, str]:
    row = await pool.fetchrow(
        "SELECT status, payment_status FROM reservations WHERE reservation_id = $1",
        uuid.UUID(payment.reservation_id),
    )
    assert row is not None
    return row["status"], row["payment_status"]


async def seats(pool: asyncpg.Pool, payment: Payment) -> tuple[int, int, int]:
    row = await pool.fetchrow(
        """SELECT available, held, confirmed FROM events
           WHERE event_id = (SELECT event_id FROM reservations WHERE reservation_id = $1)""",
        uuid.UUID(payment.reservation_id),
    )
    assert row is not None
    return row["available"], row["held"], row["confirmed"]


async def awaiting_buyer(
    pool: asyncpg.Pool, locks: EventLocks, provider: ScriptedProvider
) -> Payment:
    """A payment whose card asked for 3-D Secure: still PENDING, hold HELD."""
    payment = await paying(pool)
    assert await saga_of(pool, locks, provider).advance(payment.payment_id) is (
        PaymentStatus.PENDING
    )
    return await now_of(pool, payment)


async def test_a_card_asking_for_3ds_leaves_the_payment_pending_with_its_action_until_the_hold_runs_out(  # noqa: E501
    pool: asyncpg.Pool, locks: EventLocks
) -> None:
    provider = ScriptedProvider()
    payment = await awaiting_buyer(pool, locks, provider)

    assert (payment.status, payment.provider_ref, payment.action_type, payment.client_secret) == (
        PaymentStatus.PENDING,
        "pi_3ds",
        "use_stripe_sdk",
        "pi_3ds_secret_abc",
    )
    shown = payment.to_proto(client_secret=True)
    assert (shown.next_action.type, shown.next_action.client_secret) == (
        "use_stripe_sdk",
        "pi_3ds_secret_abc",
    )
    # Not to anyone but its owner (an administrator sees the step, not the secret).
    assert payment.to_proto().next_action.client_secret == ""
    assert shown.provider_reference == "pi_3ds"
    assert await reservation_state(pool, payment) == ("HELD", "PENDING")
    # The buyer has until the hold runs out, not the saga's 10 s.
    hold = await pool.fetchval(
        "SELECT hold_expires_at FROM reservations WHERE reservation_id = $1",
        uuid.UUID(payment.reservation_id),
    )
    assert payment.deadline == hold
    # Looked up at Stripe only after the poll interval, if no webhook came first.
    assert payment.retry_at is not None
    assert payment.retry_at - payment.updated_at >= timedelta(minutes=2)
    # Taken on again (a sweep, no webhook yet): the saga asks Stripe, which
    # still waits for the buyer; nothing changes, and no second authorization.
    assert await saga_of(pool, locks, provider).advance(payment.payment_id) is (
        PaymentStatus.PENDING
    )
    assert provider.calls == [("authorize", None), ("status", "pi_3ds")]
    assert (await now_of(pool, payment)).updated_at == payment.updated_at


async def test_the_authorization_webhook_after_3ds_confirms_the_seats_and_captures(
    pool: asyncpg.Pool, locks: EventLocks, webhooks: Webhooks
) -> None:
    provider = ScriptedProvider()
    payment = await awaiting_buyer(pool, locks, provider)
    event = intent_event(
        "payment_intent.amount_capturable_updated", payment, status="requires_capture"
    )

    assert await webhooks.post(event) == (200, {"outcome": "authorized"})
    authorized = await now_of(pool, payment)
    assert (authorized.status, authorized.action_type, authorized.client_secret) == (
        PaymentStatus.AUTHORIZED,
        None,
        None,
    )
    # Delivered again: applied once.
    assert await webhooks.post(event) == (200, {"outcome": "duplicate"})
    assert (
        await pool.fetchval("SELECT outcome FROM provider_events WHERE event_id = $1", event["id"])
        == "authorized"
    )

    assert await saga_of(pool, locks, provider).advance(payment.payment_id) is (
        PaymentStatus.CAPTURED
    )
    assert provider.calls[-1] == ("capture", "pi_3ds")
    assert await reservation_state(pool, payment) == ("CONFIRMED", "CAPTURED")
    assert await seats(pool, payment) == (0, 0, 1)


async def test_a_late_authorization_never_revives_an_expired_hold(
    pool: asyncpg.Pool, locks: EventLocks, webhooks: Webhooks
) -> None:
    provider = ScriptedProvider()
    payment = await awaiting_buyer(pool, locks, provider)
    await pool.execute(
        "UPDATE reservations SET hold_expires_at = now() - interval '1 second' "
        "WHERE reservation_id = $1",
        uuid.UUID(payment.reservation_id),
    )
    event = intent_event(
        "payment_intent.amount_capturable_updated", payment, status="requires_capture"
    )
    assert await webhooks.post(event) == (200, {"outcome": "authorized"})

    assert await saga_of(pool, locks, provider).advance(payment.payment_id) is (
        PaymentStatus.VOIDED
    )
    assert ("void", "pi_3ds") in provider.calls
    assert "capture" not in {call for call, _ in provider.calls}
    voided = await now_of(pool, payment)
    assert voided.detail == "the hold expired before the payment"
    assert (await reservation_state(pool, payment))[0] == "HELD"  # expiry releases it, not us


async def test_a_buyer_who_never_completes_3ds_is_voided_when_the_hold_runs_out(
    pool: asyncpg.Pool, locks: EventLocks
) -> None:
    provider = ScriptedProvider()
    payment = await awaiting_buyer(pool, locks, provider)
    await pool.execute(
        "UPDATE payments SET deadline = now() - interval '1 second' WHERE payment_id = $1",
        uuid.UUID(payment.payment_id),
    )
    assert await saga_of(pool, locks, provider).advance(payment.payment_id) is (
        PaymentStatus.VOIDED
    )
    voided = await now_of(pool, payment)
    assert voided.detail == "the buyer did not complete the payment before the hold ran out"
    assert provider.calls[-1] == ("void", "pi_3ds")


async def test_a_failed_3ds_is_a_decline_with_stripes_code_and_the_hold_stays(
    pool: asyncpg.Pool, locks: EventLocks, webhooks: Webhooks
) -> None:
    payment = await awaiting_buyer(pool, locks, ScriptedProvider())
    event = intent_event(
        "payment_intent.payment_failed",
        payment,
        status="requires_payment_method",
        last_payment_error={
            "type": "card_error",
            "code": "payment_intent_authentication_failure",
            "message": "The provided PaymentMethod has failed authentication.",
        },
    )
    assert await webhooks.post(event) == (200, {"outcome": "declined"})
    declined = await now_of(pool, payment)
    assert (declined.status, declined.decline_code, declined.detail) == (
        PaymentStatus.DECLINED,
        "payment_intent_authentication_failure",
        "The provided PaymentMethod has failed authentication.",
    )
    assert declined.to_proto().decline_code == "payment_intent_authentication_failure"
    assert not declined.to_proto().HasField("next_action")
    assert await reservation_state(pool, payment) == ("HELD", "DECLINED")


async def test_events_in_any_order_an_authorization_after_a_cancel_is_voided(
    pool: asyncpg.Pool, locks: EventLocks, webhooks: Webhooks
) -> None:
    provider = ScriptedProvider()
    payment = await awaiting_buyer(pool, locks, provider)
    canceled = intent_event(
        "payment_intent.canceled", payment, status="canceled", cancellation_reason="abandoned"
    )
    authorized = intent_event(
        "payment_intent.amount_capturable_updated", payment, status="requires_capture"
    )
    assert await webhooks.post(canceled) == (200, {"outcome": "declined"})
    assert await webhooks.post(authorized) == (200, {"outcome": "voiding"})
    assert (await now_of(pool, payment)).status is PaymentStatus.VOIDING
    assert await saga_of(pool, locks, provider).advance(payment.payment_id) is (
        PaymentStatus.VOIDED
    )
    assert provider.calls[-1] == ("void", "pi_3ds")


async def test_a_bad_or_stale_signature_is_400_and_changes_nothing(
    pool: asyncpg.Pool, locks: EventLocks, webhooks: Webhooks
) -> None:
    payment = await awaiting_buyer(pool, locks, ScriptedProvider())
    event = intent_event(
        "payment_intent.amount_capturable_updated", payment, status="requires_capture"
    )
    refused = {"error": "invalid signature or payload"}
    assert await webhooks.post(event, secret="whsec_someone_else") == (400, refused)
    # Signed right, six minutes ago: a replay, past Stripe's 5-minute tolerance.
    assert await webhooks.post(event, at=time.time() - 360) == (400, refused)
    payload = json.dumps(event).encode()
    async with webhooks.session.post(webhooks.url, data=payload) as reply:  # no signature
        assert reply.status == 400
    async with webhooks.session.post(
        webhooks.url,
        data=b"{not json",
        headers={"Stripe-Signature": signature(b"{not json", SECRET)},
    ) as reply:
        assert reply.status == 400
    assert (await now_of(pool, payment)).status is PaymentStatus.PENDING
    assert (
        await pool.fetchval("SELECT count(*) FROM provider_events WHERE event_id = $1", event["id"])
        == 0
    )
    # The same event, signed right, is still applied.
    assert await webhooks.post(event) == (200, {"outcome": "authorized"})


async def captured(pool: asyncpg.Pool, locks: EventLocks) -> tuple[Payment, ScriptedProvider]:
    provider = ScriptedProvider(
        authorize_answer=Authorization(Outcome.APPROVED, reference=f"pi_{uuid.uuid4().hex}")
    )
    payment = await paying(pool)
    assert await saga_of(pool, locks, provider).advance(payment.payment_id) is (
        PaymentStatus.CAPTURED
    )
    return await now_of(pool, payment), provider


async def test_a_full_refund_at_stripe_releases_the_seats_and_refunds_the_payment(
    pool: asyncpg.Pool, locks: EventLocks, webhooks: Webhooks
) -> None:
    payment, provider = await captured(pool, locks)
    assert payment.provider_ref is not None
    event = charge_event(
        "charge.refunded", payment.provider_ref, amount=PRICE, amount_refunded=PRICE
    )
    assert await webhooks.post(event) == (200, {"outcome": "refunding"})
    assert await saga_of(pool, locks, provider).advance(payment.payment_id) is (
        PaymentStatus.REFUNDED
    )
    refunded = await now_of(pool, payment)
    assert refunded.refund_ref == "re_1"
    assert await reservation_state(pool, payment) == ("CANCELLED", "REFUNDED")
    assert await seats(pool, payment) == (1, 0, 0)


async def test_a_partial_refund_or_a_dispute_at_stripe_needs_an_operator(
    pool: asyncpg.Pool, locks: EventLocks, webhooks: Webhooks
) -> None:
    payment, _ = await captured(pool, locks)
    assert payment.provider_ref is not None
    partial = charge_event(
        "charge.refunded", payment.provider_ref, amount=PRICE, amount_refunded=PRICE // 2
    )
    assert await webhooks.post(partial) == (200, {"outcome": "partial refund"})
    flagged = await now_of(pool, payment)
    assert (flagged.status, flagged.needs_attention) == (PaymentStatus.CAPTURED, True)
    assert flagged.last_error is not None and "partly refunded at Stripe" in flagged.last_error

    other, _ = await captured(pool, locks)
    assert other.provider_ref is not None
    before = REGISTRY.get_sample_value("ticketing_payment_disputes_total") or 0.0
    dispute = charge_event(
        "charge.dispute.created", other.provider_ref, id="dp_1", reason="fraudulent"
    )
    assert await webhooks.post(dispute) == (200, {"outcome": "disputed"})
    disputed = await now_of(pool, other)
    assert disputed.needs_attention
    assert disputed.last_error == (
        "disputed by the buyer (fraudulent, dispute dp_1): answer it in Stripe's dashboard"
    )
    assert REGISTRY.get_sample_value("ticketing_payment_disputes_total") == before + 1
    assert await reservation_state(pool, other) == ("CONFIRMED", "CAPTURED")


async def test_an_event_for_a_payment_not_ours_is_recorded_and_changes_nothing(
    pool: asyncpg.Pool, webhooks: Webhooks
) -> None:
    event = charge_event("charge.refunded", "pi_not_ours", amount=100, amount_refunded=100)
    assert await webhooks.post(event) == (200, {"outcome": "unknown payment"})
    other = {**charge_event("customer.created", "x"), "type": "customer.created"}
    assert await webhooks.post(other) == (200, {"outcome": "ignored"})


async def test_the_health_probe_answers(webhooks: Webhooks) -> None:
    async with webhooks.session.get(webhooks.url.replace(PATH, "/healthz")) as reply:
        assert (reply.status, await reply.text()) == (200, "ok")
    async with webhooks.session.get(webhooks.url.replace(PATH, "/other")) as reply:
        assert reply.status == 404


async def test_an_event_for_another_payment_intent_naming_ours_changes_nothing_and_flags_it(
    pool: asyncpg.Pool, locks: EventLocks, webhooks: Webhooks
) -> None:
    payment = await awaiting_buyer(pool, locks, ScriptedProvider())
    event = intent_event(
        "payment_intent.amount_capturable_updated",
        payment,
        status="requires_capture",
        id="pi_someone_elses",
    )
    assert await webhooks.post(event) == (200, {"outcome": "other intent"})
    flagged = await now_of(pool, payment)
    assert (flagged.status, flagged.provider_ref, flagged.needs_attention) == (
        PaymentStatus.PENDING,
        "pi_3ds",
        True,
    )
    assert flagged.last_error == (
        "Stripe's payment_intent.amount_capturable_updated is about PaymentIntent "
        "pi_someone_elses, which names this payment in its metadata, but the payment's own is "
        "pi_3ds"
    )


async def test_an_authorization_for_less_than_the_payment_is_not_taken_for_it(
    pool: asyncpg.Pool, locks: EventLocks, webhooks: Webhooks
) -> None:
    payment = await awaiting_buyer(pool, locks, ScriptedProvider())
    event = intent_event(
        "payment_intent.amount_capturable_updated", payment, status="requires_capture"
    )
    event["data"]["object"]["amount_capturable"] = PRICE - 1
    assert await webhooks.post(event) == (200, {"outcome": "unexpected authorization"})
    flagged = await now_of(pool, payment)
    assert (flagged.status, flagged.needs_attention) == (PaymentStatus.PENDING, True)
    assert await reservation_state(pool, payment) == ("HELD", "PENDING")


async def test_a_signed_event_of_a_shape_not_read_changes_nothing_and_is_not_asked_again(
    pool: asyncpg.Pool, locks: EventLocks, webhooks: Webhooks
) -> None:
    payment = await awaiting_buyer(pool, locks, ScriptedProvider())
    event = intent_event(
        "payment_intent.payment_failed",
        payment,
        status="requires_payment_method",
        last_payment_error="not an object",
    )
    assert await webhooks.post(event) == (200, {"outcome": "malformed"})
    assert (await now_of(pool, payment)).status is PaymentStatus.PENDING
    assert (
        await pool.fetchval("SELECT outcome FROM provider_events WHERE event_id = $1", event["id"])
        == "malformed"
    )
    for body in (b"[1, 2]", b'"text"', b"{}"):
        async with webhooks.session.post(
            webhooks.url, data=body, headers={"Stripe-Signature": signature(body, SECRET)}
        ) as reply:
            assert reply.status in (200, 400), body
            assert reply.status == 400 or await reply.json() == {"outcome": "ignored"}
    assert (await now_of(pool, payment)).status is PaymentStatus.PENDING


async def test_a_refund_at_stripe_while_our_capture_is_being_recorded_is_not_lost(
    pool: asyncpg.Pool, locks: EventLocks, webhooks: Webhooks
) -> None:
    payment = await paying(pool)
    await pool.execute(
        "UPDATE payments SET provider_ref = 'pi_capturing', authorize_sent_at = now() "
        "WHERE payment_id = $1",
        uuid.UUID(payment.payment_id),
    )
    provider = ScriptedProvider(
        authorize_answer=Authorization(Outcome.APPROVED, reference="pi_capturing")
    )
    # Seats confirmed, capture under way (the saga stopped there).
    saga = saga_of(pool, locks, provider)
    async with pool.acquire() as conn, conn.transaction():
        current = await now_of(pool, payment)
        authorized = await transition(conn, current, PaymentStatus.AUTHORIZED)
    assert authorized is not None
    assert await saga._confirm(authorized) is not None
    capturing = await now_of(pool, payment)
    assert capturing.status is PaymentStatus.CAPTURING
    event = charge_event("charge.refunded", "pi_capturing", amount=PRICE, amount_refunded=PRICE)
    assert await webhooks.post(event) == (200, {"outcome": "refunding"})
    assert await saga.advance(payment.payment_id) is PaymentStatus.REFUNDED
    assert await reservation_state(pool, payment) == ("CANCELLED", "REFUNDED")


async def test_an_event_naming_a_payment_of_the_local_provider_changes_nothing(
    pool: asyncpg.Pool, webhooks: Webhooks
) -> None:
    reservation = await new_reservation(pool, "HELD")
    async with pool.acquire() as conn, conn.transaction():
        local = await insert_payment(
            conn,
            reservation,
            idempotency_key="local",
            method="test-ok",
            saga_timeout=timedelta(seconds=10),
            provider="local",
        )
    assert local is not None
    event = intent_event(
        "payment_intent.amount_capturable_updated", local, status="requires_capture"
    )
    assert await webhooks.post(event) == (200, {"outcome": "not a stripe payment"})
    assert (await now_of(pool, local)).status is PaymentStatus.PENDING


async def test_a_3ds_payment_whose_reservation_is_cancelled_is_voided_not_left_open(
    pool: asyncpg.Pool, locks: EventLocks
) -> None:
    provider = ScriptedProvider()
    payment = await awaiting_buyer(pool, locks, provider)
    await pool.execute(
        "UPDATE reservations SET status = 'CANCELLED' WHERE reservation_id = $1",
        uuid.UUID(payment.reservation_id),
    )
    assert await saga_of(pool, locks, provider).advance(payment.payment_id) is (
        PaymentStatus.VOIDED
    )
    assert (await now_of(pool, payment)).detail == "the reservation is CANCELLED"
    assert provider.calls[-1] == ("void", "pi_3ds")
    assert ("status", "pi_3ds") not in provider.calls
