"""Stripe's webhooks: the payment service's own HTTP(S) server.

Stripe tells what it decided after a request's answer by events: the
result of the buyer's 3-D Secure, a refund or a dispute opened from its
dashboard, a PaymentIntent cancelled on its side. ``POST /stripe/webhook``
takes them: the signature is checked with Stripe's own check (its 5-minute
tolerance against replays; a bad or stale signature is 400 and changes
nothing), then the event is applied in one transaction with its id recorded
(``provider_events``), so a redelivered event is applied once. Stripe sends
in any order, so each event is applied only from the states it makes sense
in, and never moves a payment backwards:

- ``payment_intent.amount_capturable_updated`` (authorized): a PENDING
  payment becomes AUTHORIZED and the saga confirms the hold, or voids the
  authorization if the hold is gone (a late authorization never revives an
  expired hold); a payment already DECLINED is voided;
- ``payment_intent.payment_failed``: a PENDING payment is DECLINED, with the
  decline code;
- ``payment_intent.canceled``: PENDING becomes DECLINED, AUTHORIZED is
  voided, VOIDING is VOIDED;
- ``charge.refunded``: a CAPTURED payment refunded in full at Stripe is
  refunded here too (seats released, as a cancellation does); a partial
  refund needs an operator;
- ``charge.dispute.created``: the payment needs an operator (and counts in
  ``ticketing_payment_disputes_total``).

A failure to apply (the database is down) is 500: Stripe delivers again
later. ``GET /healthz`` answers the load balancer's probe.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import stripe
import structlog
from aiohttp import web

from ticketing_common.domain import PaymentStatus
from ticketing_common.storage.db import Connection

from . import metrics
from .currencies import to_provider_amount
from .provider import Authorization, Outcome
from .store import Payment, apply_authorization, lock_payment, transition
from .stripe_provider import plain, read_intent

log = structlog.get_logger(__name__)

PATH = "/stripe/webhook"
# Stripe's events are a few kilobytes.
MAX_BODY = 1 << 20

Handler = Callable[[Connection, Payment, dict[str, Any]], Awaitable[str]]


class StripeWebhooks:
    def __init__(self, pool: asyncpg.Pool, *, secret: str, tolerance_s: int) -> None:
        self._pool = pool
        self._secret = secret
        self._tolerance_s = tolerance_s
        self._handlers: dict[str, Handler] = {
            "payment_intent.amount_capturable_updated": self._authorized,
            "payment_intent.payment_failed": self._failed,
            "payment_intent.canceled": self._canceled,
            "charge.refunded": self._refunded,
            "charge.dispute.created": self._disputed,
        }

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(PATH, self._receive)
        app.router.add_get("/healthz", _healthy)
        return app

    async def _receive(self, request: web.Request) -> web.Response:
        payload = await request.read()
        try:
            event = stripe.Webhook.construct_event(
                payload,
                request.headers.get("Stripe-Signature"),
                self._secret,
                tolerance=self._tolerance_s,
            )
        # A bad signature, or a body that is not an event (the library's
        # check fails on JSON that is no object with more than ValueError).
        except Exception as exc:  # noqa: BLE001
            metrics.WEBHOOKS.labels("", "bad_signature").inc()
            log.warning("webhook_refused", error=f"{type(exc).__name__}: {exc}"[:200])
            return web.json_response({"error": "invalid signature or payload"}, status=400)
        found = plain(event)
        try:
            outcome = await self.apply(found)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            log.warning("webhook_not_applied", event_id=found.get("id"), error=repr(exc))
            return web.json_response({"error": "not applied, deliver again"}, status=500)
        return web.json_response({"outcome": outcome})

    async def apply(self, event: dict[str, Any]) -> str:
        """Applies a verified event once; returns what it did. An event of a
        shape this code does not read is recorded as such (and answered
        200: delivering it again would change nothing)."""
        kind = _text(event.get("type"))
        event_id = _text(event.get("id"))
        handler = self._handlers.get(kind)
        if handler is None or not event_id:
            metrics.WEBHOOKS.labels("other", "ignored").inc()
            return "ignored"
        target = _mapping(_mapping(event.get("data")).get("object"))
        async with self._pool.acquire() as conn, conn.transaction():
            first = await conn.fetchval(
                """INSERT INTO provider_events (event_id, type, outcome) VALUES ($1, $2, '')
                   ON CONFLICT (event_id) DO NOTHING RETURNING event_id""",
                event_id,
                kind,
            )
            payment = None
            if first is None:
                outcome = "duplicate"
            else:
                payment = await _payment_of(conn, kind, target)
                outcome = await self._apply_to(conn, kind, handler, payment, target)
                await conn.execute(
                    "UPDATE provider_events SET payment_id = $2, outcome = $3 WHERE event_id = $1",
                    event_id,
                    None if payment is None else uuid.UUID(payment.payment_id),
                    outcome,
                )
        if outcome == "disputed":  # counted once it is committed
            metrics.DISPUTES.inc()
        metrics.WEBHOOKS.labels(kind, outcome).inc()
        log.info(
            "webhook_applied",
            event_id=event_id,
            type=kind,
            outcome=outcome,
            payment_id=None if payment is None else payment.payment_id,
        )
        return outcome

    async def _apply_to(
        self,
        conn: Connection,
        kind: str,
        handler: Handler,
        payment: Payment | None,
        target: dict[str, Any],
    ) -> str:
        if payment is None:
            return "unknown payment"
        if payment.provider != "stripe":
            return "not a stripe payment"
        reference = _text(
            target.get("id" if kind.startswith("payment_intent.") else "payment_intent")
        )
        if payment.provider_ref and reference and reference != payment.provider_ref:
            # Names this payment, but is not its PaymentIntent: nothing of it
            # is taken as this payment's, and an operator looks.
            await _needs_operator(
                conn,
                payment,
                f"Stripe's {kind} is about PaymentIntent {reference[:64]}, which names this "
                f"payment in its metadata, but the payment's own is {payment.provider_ref}",
            )
            return "other intent"
        try:
            async with conn.transaction():  # a savepoint: a misread event changes nothing
                return await handler(conn, payment, target)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            log.error("webhook_malformed", type=kind, error=f"{type(exc).__name__}: {exc}"[:300])
            return "malformed"

    async def _authorized(self, conn: Connection, payment: Payment, intent: dict[str, Any]) -> str:
        reference = _text(intent.get("id"))
        expected = to_provider_amount(payment.amount.currency, payment.amount.amount_minor)
        if (
            not reference
            or intent.get("status") != "requires_capture"
            or _text(intent.get("currency")) != payment.amount.currency.lower()
            or int(intent.get("amount_capturable") or 0) < expected
        ):
            if payment.status is not PaymentStatus.PENDING:
                return "ignored"  # an old event: the payment has moved on
            await _needs_operator(
                conn,
                payment,
                f"Stripe's authorization {reference[:64] or '(no id)'} is not what this payment "
                f"asked: status {_text(intent.get('status'))}, "
                f"{intent.get('amount_capturable')} {_text(intent.get('currency'))} capturable "
                f"for {expected} {payment.amount.currency.lower()}",
            )
            return "unexpected authorization"
        if payment.status is PaymentStatus.PENDING:
            moved = await apply_authorization(
                conn, payment, Authorization(Outcome.APPROVED, reference=reference)
            )
            return "authorized" if moved is not None else "ignored"
        if payment.status is PaymentStatus.DECLINED:
            # Authorized after all (the buyer confirmed it again): it was
            # decided declined, so the money is released.
            await transition(
                conn,
                payment,
                PaymentStatus.VOIDING,
                detail="authorized after it was declined: released",
                provider_ref=reference,
            )
            return "voiding"
        return "ignored"

    async def _failed(self, conn: Connection, payment: Payment, intent: dict[str, Any]) -> str:
        if payment.status is not PaymentStatus.PENDING:
            return "ignored"
        answer = read_intent(intent)
        if answer.outcome is not Outcome.DECLINED:
            error = intent.get("last_payment_error") or {}
            answer = Authorization(
                Outcome.DECLINED,
                reference=str(intent.get("id") or ""),
                reason=str(error.get("message") or "the payment failed"),
                decline_code=str(error.get("decline_code") or error.get("code") or "declined"),
            )
        await apply_authorization(conn, payment, answer)
        return "declined"

    async def _canceled(self, conn: Connection, payment: Payment, intent: dict[str, Any]) -> str:
        why = f"canceled at Stripe ({intent.get('cancellation_reason') or 'no reason given'})"
        moves = {
            PaymentStatus.PENDING: PaymentStatus.DECLINED,
            PaymentStatus.AUTHORIZED: PaymentStatus.VOIDING,
            PaymentStatus.VOIDING: PaymentStatus.VOIDED,
        }
        to = moves.get(payment.status)
        if to is None:
            return "ignored"
        await transition(
            conn,
            payment,
            to,
            detail=why,
            decline_code="canceled" if to is PaymentStatus.DECLINED else None,
        )
        return to.value.lower()

    async def _refunded(self, conn: Connection, payment: Payment, charge: dict[str, Any]) -> str:
        # Refunded while our capture's answer is being stored: the refund
        # proves the capture happened.
        if payment.status not in (PaymentStatus.CAPTURED, PaymentStatus.CAPTURING):
            return "ignored"
        paid = to_provider_amount(payment.amount.currency, payment.amount.amount_minor)
        refunded = int(charge.get("amount_refunded") or 0)  # not a number: malformed
        if refunded >= paid:
            await transition(conn, payment, PaymentStatus.REFUNDING, detail="refunded at Stripe")
            return "refunding"
        await _needs_operator(
            conn,
            payment,
            f"partly refunded at Stripe ({refunded} of {paid} in Stripe's units): the seats "
            "stay sold; settle it by hand",
        )
        return "partial refund"

    async def _disputed(self, conn: Connection, payment: Payment, dispute: dict[str, Any]) -> str:
        await _needs_operator(
            conn,
            payment,
            f"disputed by the buyer ({_text(dispute.get('reason'))[:64] or 'no reason given'}, "
            f"dispute {_text(dispute.get('id'))[:64]}): answer it in Stripe's dashboard",
        )
        return "disputed"


async def _payment_of(conn: Connection, kind: str, target: dict[str, Any]) -> Payment | None:
    """The payment an event is about, its row locked: by the payment id in a
    PaymentIntent's metadata (which an event may bring before the answer to
    our own request is stored), else by the PaymentIntent's id."""
    if kind.startswith("payment_intent."):
        named = _text(_mapping(target.get("metadata")).get("payment_id"))
        try:
            payment = await lock_payment(conn, str(uuid.UUID(named)))
        except ValueError:
            payment = None
        if payment is not None:
            return payment
        reference = _text(target.get("id"))
    else:
        reference = _text(target.get("payment_intent"))
    if not reference:
        return None
    payment_id = await conn.fetchval(
        "SELECT payment_id FROM payments WHERE provider_ref = $1 ORDER BY seq DESC LIMIT 1",
        reference,
    )
    return None if payment_id is None else await lock_payment(conn, str(payment_id))


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


async def _needs_operator(conn: Connection, payment: Payment, why: str) -> None:
    await conn.execute(
        """UPDATE payments SET attention_since = coalesce(attention_since, $2), last_error = $3
           WHERE payment_id = $1""",
        uuid.UUID(payment.payment_id),
        datetime.now(UTC),
        why[:500],
    )
    log.error("payment_needs_attention", payment_id=payment.payment_id, error=why)


async def _healthy(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def serve(
    webhooks: StripeWebhooks,
    *,
    host: str,
    port: int,
    cert_file: str | None,
    key_file: str | None,
) -> web.AppRunner:
    """Starts the webhook server (HTTPS with the given certificate); the
    caller cleans the returned runner up."""
    context = None
    if cert_file and key_file:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
    runner = web.AppRunner(webhooks.application(), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=context).start()
    log.info("webhooks_listening", host=host, port=port, tls=context is not None)
    return runner
