"""Buyers paying through nginx on the stack whose payment services take
payments with Stripe (its own stripe-mock): what stripe-mock logs it was
asked (amounts, currencies, capture method, captures, refunds) is what our
payments and the ledger say, and a refund made at Stripe reaches the buyer
by webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import grpc
import pytest

from ticketing.v1 import payment_service_pb2 as ps
from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_common.status import reason
from ticketing_tools.ledger import reconcile
from ticketing_tools.stack import LocalStack

from ..helpers import (
    CANCELLED,
    CONFIRMED,
    Gateway,
    Notifier,
    Payments,
    Reservations,
    as_user,
    authorized,
    create_priced_event,
    gateway_stub,
    get_event,
    hold_for,
    notifier_stub,
    pay,
    payments_stub,
    reservations_stub,
    watch_until,
)

CAPTURED = pb.PAYMENT_STATUS_CAPTURED
REFUNDED = pb.PAYMENT_STATUS_REFUNDED


@dataclass
class Clients:
    gateway: Gateway
    notifier: Notifier
    payments: Payments
    reservations: Reservations


@pytest.fixture(scope="module")
async def clients(stripe_stack: LocalStack) -> AsyncIterator[Clients]:
    async with authorized(stripe_stack.endpoint) as channel:
        yield Clients(
            gateway_stub(channel),
            notifier_stub(channel),
            payments_stub(channel),
            reservations_stub(channel),
        )


@pytest.fixture(scope="module")
async def pool(stripe_stack: LocalStack) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(stripe_stack.postgres_dsn, min_size=1, max_size=2) as made:
        yield made


@dataclass(frozen=True)
class Logged:
    path: str
    data: dict[str, Any]


def go_map(text: str) -> tuple[dict[str, Any], str]:
    """One ``map[k:v k:map[...] ...]`` as Go's fmt prints it (what
    stripe-mock's verbose log shows of a request), and the text after it."""
    assert text.startswith("map["), text[:40]
    rest = text[4:]
    found: dict[str, Any] = {}
    while not rest.startswith("]"):
        key, rest = rest.split(":", 1)
        value: Any
        if rest.startswith("map["):
            value, rest = go_map(rest)
        else:
            match = re.match(r"[^ \]]*", rest)
            assert match is not None
            value, rest = match.group(0), rest[match.end() :]
        found[key] = value
        rest = rest.removeprefix(" ")
    return found, rest[1:]


def logged_requests(log: Path) -> list[Logged]:
    """Every POST stripe-mock served, with the parameters it logged."""
    requests: list[Logged] = []
    path = None
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("Request: POST "):
            path = line.removeprefix("Request: POST ").strip()
        elif line.startswith("Request data: ") and path is not None:
            data, _ = go_map(line.removeprefix("Request data: "))
            requests.append(Logged(path, data))
            path = None
    return requests


async def paid(clients: Clients, event_id: str, user: str, quantity: int) -> ps.Payment:
    hold = await hold_for(clients.gateway, clients.notifier, event_id, user, quantity)
    payment = await pay(clients.payments, hold.reservation_id, user, "pm_card_visa")
    seen = await watch_until(
        clients.notifier, hold.reservation_id, lambda r: r.payment_status == CAPTURED
    )
    assert (seen[-1].status, seen[-1].payment_status) == (CONFIRMED, CAPTURED), seen[-1]
    return payment


async def create_event(clients: Clients, currency: str, price_minor: int, capacity: int) -> str:
    event = await create_priced_event(
        clients.reservations,
        capacity=capacity,
        hold_s=120,
        price_minor=price_minor,
        currency=currency,
    )
    return str(event.event_id)


async def get_payment(clients: Clients, payment_id: str, user: str) -> ps.Payment:
    reply = await clients.payments.GetPayment(
        ps.GetPaymentRequest(payment_id=payment_id), timeout=10, metadata=as_user(user)
    )
    return reply.payment


async def test_buyers_paying_through_nginx_are_what_stripe_was_asked_and_what_the_ledger_says(
    stripe_stack: LocalStack, clients: Clients, pool: asyncpg.Pool
) -> None:
    assert stripe_stack.stripe_mock is not None
    euros = await create_event(clients, "EUR", 2_500, capacity=4)
    yen = await create_event(clients, "JPY", 4_800, capacity=2)
    buyers = [
        await paid(clients, euros, "aiko", 2),
        await paid(clients, euros, "ben", 1),
        await paid(clients, yen, "chidi", 2),
    ]
    users = ["aiko", "ben", "chidi"]
    shown = [
        await get_payment(clients, p.payment_id, u) for p, u in zip(buyers, users, strict=True)
    ]
    for payment in shown:
        assert payment.status == CAPTURED
        assert payment.provider == "stripe"
        assert payment.provider_reference.startswith("pi_")
        assert not payment.HasField("next_action")

    # Ben cancels: the seat comes back and the money is refunded at Stripe.
    ben = shown[1]
    await clients.reservations.CancelReservation(
        rs.CancelReservationRequest(reservation_id=ben.reservation_id),
        timeout=10,
        metadata=as_user("ben"),
    )
    seen = await watch_until(
        clients.notifier, ben.reservation_id, lambda r: r.payment_status == REFUNDED
    )
    assert (seen[-1].status, seen[-1].payment_status) == (CANCELLED, REFUNDED)
    ben = await get_payment(clients, ben.payment_id, "ben")
    assert ben.refund_reference.startswith("re_")

    requests = logged_requests(stripe_stack.stripe_mock.log)
    ours = {p.payment_id: p for p in [shown[0], ben, shown[2]]}
    created = {
        r.data["metadata"]["payment_id"]: r.data
        for r in requests
        if r.path == "/v1/payment_intents" and r.data.get("metadata", {}).get("payment_id") in ours
    }
    assert set(created) == set(ours)
    for payment_id, asked in created.items():
        payment = ours[payment_id]
        assert asked["amount"] == str(payment.amount.amount_minor)  # EUR cents, whole yen
        assert asked["currency"] == payment.amount.currency_code.lower()
        assert (asked["capture_method"], asked["confirm"], asked["payment_method"]) == (
            "manual",
            "true",
            "pm_card_visa",
        )
        assert asked["metadata"]["reservation_id"] == payment.reservation_id
    captures = {
        r.path.split("/")[3]: r.data["amount_to_capture"]
        for r in requests
        if r.path.endswith("/capture")
    }
    for payment in ours.values():
        assert captures[payment.provider_reference] == str(payment.amount.amount_minor)
    refunds = [r.data for r in requests if r.path == "/v1/refunds"]
    assert [
        (r["payment_intent"], r["amount"]) for r in refunds if r["metadata"]["payment_id"] in ours
    ] == [(ben.provider_reference, str(ben.amount.amount_minor))]

    # The ledger's money is the same, and names Stripe's references.
    ledger = await reconcile(stripe_stack.kafka, pool)
    assert ledger.money_ok, [c for c in ledger.money if not c.ok]
    by_event = {c.event_id: c for c in ledger.money}
    assert by_event[euros].captured_minor == 2 * 2_500
    assert by_event[euros].refunded_minor == 2_500
    assert by_event[yen].captured_minor == 2 * 4_800
    references = {
        row["provider_ref"]: row["status"]
        for row in await pool.fetch(
            "SELECT provider_ref, status FROM payments WHERE payment_id = ANY($1::uuid[])",
            [uuid.UUID(p) for p in ours],
        )
    }
    assert references == {
        shown[0].provider_reference: "CAPTURED",
        ben.provider_reference: "REFUNDED",
        shown[2].provider_reference: "CAPTURED",
    }


async def test_a_method_that_is_not_a_stripe_payment_method_is_refused_naming_the_field(
    clients: Clients,
) -> None:
    euros = await create_event(clients, "EUR", 1_000, capacity=1)
    hold = await hold_for(clients.gateway, clients.notifier, euros, "dana", 1)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await pay(clients.payments, hold.reservation_id, "dana", "test-ok")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "payment_method" in (refused.value.details() or "")
    assert reason(refused.value) == "INVALID_REQUEST"


def signed(payload: bytes, secret: str) -> str:
    stamp = int(time.time())
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256)
    return f"t={stamp},v1={mac.hexdigest()}"


async def test_a_refund_made_at_stripe_reaches_the_buyer_by_webhook_through_nginx(
    stripe_stack: LocalStack, clients: Clients
) -> None:
    assert stripe_stack.stripe_webhook_secret is not None
    euros = await create_event(clients, "EUR", 3_000, capacity=1)
    payment = await paid(clients, euros, "emeka", 1)
    payment = await get_payment(clients, payment.payment_id, "emeka")
    event = json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "type": "charge.refunded",
            "data": {
                "object": {
                    "id": "ch_1",
                    "object": "charge",
                    "payment_intent": payment.provider_reference,
                    "amount": 3_000,
                    "amount_refunded": 3_000,
                }
            },
        }
    ).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://{stripe_stack.webhook_endpoint}/stripe/webhook",
            data=event,
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": signed(event, stripe_stack.stripe_webhook_secret),
            },
        ) as answer,
    ):
        assert (answer.status, await answer.json()) == (200, {"outcome": "refunding"})
    seen = await watch_until(
        clients.notifier, payment.reservation_id, lambda r: r.payment_status == REFUNDED
    )
    assert (seen[-1].status, seen[-1].payment_status) == (CANCELLED, REFUNDED)
    after = await get_event(clients.reservations, euros)
    assert (after.available, after.confirmed) == (1, 0)
