"""Stripe behind ``Provider``: PaymentIntents with manual capture.

An authorization is a PaymentIntent created and confirmed at once
(``capture_method=manual``, ``confirm=true``) with the buyer's PaymentMethod
id; capture, void (cancel) and refund follow. Every request carries an
``Idempotency-Key``: the payment id for the authorization, the payment id and
the step for the others (and the attempt, for a step tried again after a
failure: Stripe keeps a key's first answer, even a 500), so a step the saga
repeats after a crash is one Stripe operation.

What Stripe answers is read into the saga's terms:

- ``requires_capture``: approved; ``requires_action`` (3-D Secure) or
  ``processing``: undecided, the payment stays PENDING and the result comes by
  webhook (``webhooks``) or, failing that, by ``status``;
- a card error (HTTP 402) is a decline, with Stripe's decline code; a
  PaymentMethod that does not exist or cannot be used (an invalid request
  naming ``payment_method``) is the buyer's input and a decline too;
- rate limits, connection errors, timeouts and 5xx are transient
  (``ProviderError``, retried by the saga); authentication, permission and
  every other invalid request are an operator's problem (``ProviderError``
  not retriable: the payment is flagged for an operator), never a decline.

The client's own retries are off: the saga owns retrying, with its budget.
"""

from __future__ import annotations

import re
from typing import Any

import stripe
import structlog

from .currencies import UnpayableAmount, to_provider_amount
from .provider import Authorization, BuyerAction, Charge, Outcome, ProviderError

log = structlog.get_logger(__name__)

# A PaymentMethod id as Stripe writes them (pm_card_visa in test mode).
METHOD = re.compile(r"pm_[A-Za-z0-9_]{1,96}")
MAX_METHOD = 99


class StripeProvider:
    name = "stripe"

    def __init__(self, api_key: str, *, api_base: str, timeout_s: float) -> None:
        self._http = stripe.AIOHTTPClient(timeout=timeout_s)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")},
            http_client=self._http,
            max_network_retries=0,
        )

    async def check_key(self) -> str | None:
        """Why Stripe refuses the API key (then no payment could be taken),
        or None; Stripe not answering is not the key's fault."""
        try:
            await self._client.v1.payment_intents.list_async(params={"limit": 1})
        except (stripe.AuthenticationError, stripe.PermissionError) as exc:
            return f"Stripe refuses TICKETING_STRIPE_API_KEY: {exc.user_message or exc}"
        except stripe.StripeError as exc:
            log.warning("stripe_key_unchecked", error=f"{type(exc).__name__}: {exc}"[:300])
        return None

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    def check_method(self, method: str) -> str | None:
        if len(method) <= MAX_METHOD and METHOD.fullmatch(method):
            return None
        return "must be a Stripe PaymentMethod id, such as pm_card_visa"

    def check_amount(self, currency: str, amount_minor: int) -> str | None:
        try:
            to_provider_amount(currency, amount_minor)
        except UnpayableAmount as exc:
            return str(exc)
        return None

    async def authorize(self, charge: Charge) -> Authorization:
        try:
            intent = await self._client.v1.payment_intents.create_async(
                params=_intent_params(charge),  # type: ignore[arg-type]
                options={"idempotency_key": charge.payment_id},
            )
        except stripe.CardError as exc:
            return _card_declined(exc)
        except stripe.InvalidRequestError as exc:
            if _about_the_method(exc):
                return _method_refused(exc)
            raise _provider_error(exc) from exc
        except stripe.StripeError as exc:
            raise _provider_error(exc) from exc
        return read_intent(intent)

    async def status(self, charge: Charge, reference: str) -> Authorization:
        try:
            intent = await self._client.v1.payment_intents.retrieve_async(reference)
        except stripe.StripeError as exc:
            raise _provider_error(exc) from exc
        return read_intent(intent)

    async def capture(self, charge: Charge, reference: str, *, attempt: int = 0) -> None:
        if attempt and await self._intent_is(reference, "succeeded"):
            return  # an earlier attempt's capture went through
        try:
            await self._client.v1.payment_intents.capture_async(
                reference,
                params={"amount_to_capture": _amount(charge)},
                options={"idempotency_key": _key(charge, "capture", attempt)},
            )
        except stripe.StripeError as exc:
            if await self._already(reference, "succeeded", exc):
                return
            raise _provider_error(exc) from exc

    async def void(self, charge: Charge, reference: str | None, *, attempt: int = 0) -> None:
        if reference is None:
            # The authorization's answer never came: asking again under the
            # same key finds the PaymentIntent it made, if it reached Stripe
            # (a new one otherwise, which is cancelled at once). The saga
            # asks only when it did send the authorization.
            answer = await self.authorize(charge)
            if not answer.reference:
                return
            reference = answer.reference
        if attempt and await self._intent_is(reference, "canceled"):
            return
        try:
            await self._client.v1.payment_intents.cancel_async(
                reference, options={"idempotency_key": _key(charge, "void", attempt)}
            )
        except stripe.StripeError as exc:
            if await self._already(reference, "canceled", exc):
                return
            raise _provider_error(exc) from exc

    async def refund(self, charge: Charge, reference: str, *, attempt: int = 0) -> str:
        if attempt and (done := await self._refund_of(charge, reference)) is not None:
            return done  # an earlier attempt's refund went through
        try:
            refund = await self._client.v1.refunds.create_async(
                params={
                    "payment_intent": reference,
                    "amount": _amount(charge),
                    "metadata": {"payment_id": charge.payment_id},
                },
                options={"idempotency_key": _key(charge, "refund", attempt)},
            )
        except stripe.InvalidRequestError as exc:
            if exc.code == "charge_already_refunded":
                # Refunded already (from Stripe's dashboard, say): that refund is ours.
                found = await self._refund_of(charge, reference, any_refund=True)
                if found is not None:
                    return found
                raise ProviderError(
                    f"Stripe says {reference} is refunded but lists no refund of it",
                    retriable=False,
                ) from exc
            raise _provider_error(exc) from exc
        except stripe.StripeError as exc:
            raise _provider_error(exc) from exc
        if refund.status in ("failed", "canceled"):
            raise ProviderError(
                f"Stripe refused refund {refund.id} ({refund.status}): "
                # Stripe sends failure_reason only for a failed refund.
                f"{getattr(refund, 'failure_reason', None) or 'no reason given'}",
                retriable=False,
            )
        return str(refund.id)

    async def _refund_of(
        self, charge: Charge, reference: str, *, any_refund: bool = False
    ) -> str | None:
        """A refund of ``reference`` that went through (ours, by its
        metadata, or with ``any_refund`` whoever made it), or None."""
        try:
            refunds = await self._client.v1.refunds.list_async(
                params={"payment_intent": reference, "limit": 100}
            )
        except stripe.StripeError as exc:
            raise _provider_error(exc) from exc
        for refund in refunds.data:
            ours = (plain(refund).get("metadata") or {}).get("payment_id") == charge.payment_id
            if refund.status in ("succeeded", "pending") and (ours or any_refund):
                return str(refund.id)
        return None

    async def _intent_is(self, reference: str, status: str) -> bool:
        try:
            intent = await self._client.v1.payment_intents.retrieve_async(reference)
        except stripe.StripeError as exc:
            raise _provider_error(exc) from exc
        return bool(intent.status == status)

    async def _already(self, reference: str, status: str, exc: stripe.StripeError) -> bool:
        """Whether a refused capture or cancel was refused because it is
        done already (a step repeated with a fresh key, or done outside the
        saga)."""
        if exc.code != "payment_intent_unexpected_state":
            return False
        try:
            intent = await self._client.v1.payment_intents.retrieve_async(reference)
        except stripe.StripeError:
            return False
        return bool(intent.status == status)


def _key(charge: Charge, step: str, attempt: int) -> str:
    """The idempotency key of one attempt at a step. Stripe keeps the first
    answer of a key, a 500 included, so a step tried again after a failure
    takes a key of its own; it cannot be done twice, as Stripe captures,
    cancels and fully refunds a PaymentIntent once, and the step first
    looks whether the earlier attempt went through."""
    return f"{charge.payment_id}:{step}" + (f":{attempt}" if attempt else "")


def _amount(charge: Charge) -> int:
    try:
        return to_provider_amount(charge.currency, charge.amount_minor)
    except UnpayableAmount as exc:
        raise ProviderError(str(exc), retriable=False) from exc


def _intent_params(charge: Charge) -> dict[str, Any]:
    return {
        "amount": _amount(charge),
        "currency": charge.currency.lower(),
        "capture_method": "manual",
        "confirm": True,
        "payment_method": charge.method,
        # Cards: 3-D Secure is then Stripe.js's next action, never a redirect
        # that would need a return URL.
        "payment_method_types": ["card"],
        "metadata": {
            "payment_id": charge.payment_id,
            "reservation_id": charge.reservation_id,
            "event_id": charge.event_id,
        },
    }


def plain(value: Any) -> dict[str, Any]:
    """A Stripe object (or an event's JSON) as plain dicts."""
    if isinstance(value, stripe.StripeObject):
        return value.to_dict(recursive=True)
    return dict(value or {})


def read_intent(found: Any) -> Authorization:
    """A PaymentIntent (from a request's answer or a webhook's event) in
    the saga's terms."""
    intent = plain(found)
    reference = str(intent.get("id") or "")
    status = intent.get("status")
    if status in ("requires_capture", "succeeded"):
        return Authorization(Outcome.APPROVED, reference=reference)
    if status in ("requires_action", "requires_confirmation"):
        return Authorization(
            Outcome.ACTION_REQUIRED, reference=reference, action=_next_action(intent)
        )
    if status == "processing":
        return Authorization(Outcome.PROCESSING, reference=reference)
    if status == "canceled":
        why = intent.get("cancellation_reason") or "canceled"
        return Authorization(
            Outcome.DECLINED,
            reference=reference,
            reason=f"the payment was canceled at Stripe ({why})",
            decline_code="canceled",
        )
    error = intent.get("last_payment_error") or {}
    return Authorization(
        Outcome.DECLINED,
        reference=reference,
        reason=str(error.get("message") or f"declined (Stripe: {status})"),
        decline_code=str(error.get("decline_code") or error.get("code") or "declined"),
    )


def _next_action(intent: dict[str, Any]) -> BuyerAction:
    action = intent.get("next_action") or {}
    kind = str(action.get("type") or "use_stripe_sdk")
    redirect = ""
    if kind == "redirect_to_url":
        redirect = str((action.get("redirect_to_url") or {}).get("url") or "")
    return BuyerAction(
        type=kind, client_secret=str(intent.get("client_secret") or ""), redirect_url=redirect
    )


def _card_declined(exc: stripe.CardError) -> Authorization:
    error = exc.error
    intent = plain(getattr(error, "payment_intent", None)) if error is not None else {}
    decline_code = (error.decline_code if error is not None else None) or exc.code or "declined"
    return Authorization(
        Outcome.DECLINED,
        reference=str(intent.get("id") or "") if intent else "",
        reason=exc.user_message or "the card was declined",
        decline_code=str(decline_code),
    )


def _about_the_method(exc: stripe.InvalidRequestError) -> bool:
    error = exc.error
    return error is not None and error.param == "payment_method"


def _method_refused(exc: stripe.InvalidRequestError) -> Authorization:
    return Authorization(
        Outcome.DECLINED,
        reason=f"Stripe cannot charge this payment method: {exc.user_message or exc.code}",
        decline_code=str(exc.code or "invalid_payment_method"),
    )


def _provider_error(exc: stripe.StripeError) -> ProviderError:
    """Transient (retried) or an operator's problem (flagged at once)."""
    status = exc.http_status
    transient = isinstance(exc, stripe.RateLimitError | stripe.APIConnectionError) or (
        status is None or status >= 500 or status == 409  # 409: a concurrent same-key request
    )
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        transient = False
        what = "Stripe refused the API key (check TICKETING_STRIPE_API_KEY)"
    elif transient:
        what = "Stripe did not answer the request (retried)"
    else:
        what = "Stripe refused the request (a configuration problem)"
    detail = exc.user_message or str(exc)
    request = f" [request {exc.request_id}]" if exc.request_id else ""
    return ProviderError(
        f"{what}: {type(exc).__name__} {status or ''} {detail}{request}"[:500],
        retriable=transient,
    )
