"""A Stripe API stand-in on a real port: answers what each test scripts,
records every request, so the provider's own code and the stripe library
are tested over real HTTP against Stripe-shaped answers.

stripe-mock (the stack's stand-in) answers from fixtures and cannot say
"declined", "rate limited" or "already captured" on cue; this can::

    fake = FakeStripe()
    await fake.start()                    # 127.0.0.1, a free port
    provider = StripeProvider("sk_test_x", api_base=fake.url, timeout_s=2)
    fake.answer("POST", "/v1/payment_intents", 200, payment_intent("pi_1"))
    fake.answer_each(
        "POST",
        "/v1/payment_intents/pi_1/capture",
        Reply(500, error_body("api_error")),
        Reply(200, payment_intent("pi_1", status="succeeded")),
    )
    ...
    assert [(r.method, r.path) for r in fake.requests] == [...]
    await provider.close()
    await fake.stop()

- ``answer(method, prefix, status, body)``: every request of that method
  whose path starts with ``prefix`` gets that answer; ``answer_each`` gives
  answers in turn, the last one repeating. The longest matching prefix
  wins, so ``/v1/payment_intents/pi_1/cancel`` can answer apart from
  ``/v1/payment_intents``. A body that is a str goes out as text (a proxy's
  error page), anything else as JSON. ``Reply(..., hang=True)`` never
  answers (until ``stop``): the client's timeout is what ends it.
- An unscripted request is recorded and answered 404 with a Stripe-shaped
  ``resource_missing`` error that names it.
- ``requests``: every ``Request`` in arrival order: method, path, query and
  the form-decoded body as flat dicts (Stripe's own keys:
  ``metadata[payment_id]``, ``payment_method_types[0]``), the
  ``Idempotency-Key`` and ``Authorization`` headers, all headers.
- ``reset()`` forgets the script and the requests (a server shared by
  several tests).
- Builders of Stripe's shapes (its API reference's, trimmed to what the
  suite reads): ``payment_intent``, ``use_stripe_sdk``, ``redirect_to_url``,
  ``payment_error`` (a PaymentIntent's ``last_payment_error``),
  ``error_body``, ``refund``, ``listing``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: JSON | str
    headers: dict[str, str] = field(default_factory=dict)
    # Never answer: the request waits until the server stops.
    hang: bool = False


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    idempotency_key: str | None
    authorization: str | None
    headers: dict[str, str]


class FakeStripe:
    """See the module's docstring."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._script: dict[tuple[str, str], list[Reply]] = {}
        self._runner: web.AppRunner | None = None
        self._released = asyncio.Event()
        self.port = 0

    @property
    def url(self) -> str:
        """The API base to give the provider (``api_base``)."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._released = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def answer(
        self,
        method: str,
        prefix: str,
        status: int,
        body: JSON | str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.answer_each(method, prefix, Reply(status, body, headers or {}))

    def answer_each(self, method: str, prefix: str, *replies: Reply) -> None:
        if not replies:
            raise ValueError("answer_each needs at least one reply")
        self._script[(method.upper(), prefix)] = list(replies)

    def reset(self) -> None:
        self._script.clear()
        self.requests.clear()

    def _reply_for(self, method: str, path: str) -> Reply | None:
        matching = [
            prefix for (m, prefix) in self._script if m == method and path.startswith(prefix)
        ]
        if not matching:
            return None
        replies = self._script[(method, max(matching, key=len))]
        return replies.pop(0) if len(replies) > 1 else replies[0]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        form = dict(parse_qsl(body, keep_blank_values=True)) if body else {}
        self.requests.append(
            Request(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                form=form,
                idempotency_key=request.headers.get("Idempotency-Key"),
                authorization=request.headers.get("Authorization"),
                headers=dict(request.headers),
            )
        )
        number = len(self.requests)
        reply = self._reply_for(request.method, request.path) or Reply(
            404,
            error_body(
                "invalid_request_error",
                code="resource_missing",
                message=f"FakeStripe has no answer scripted for {request.method} {request.path}",
            ),
        )
        if reply.hang:
            await self._released.wait()
        headers = {"Request-Id": f"req_fake_{number}", **reply.headers}
        if isinstance(reply.body, str):
            return web.Response(
                status=reply.status, text=reply.body, content_type="text/html", headers=headers
            )
        return web.Response(
            status=reply.status,
            text=json.dumps(reply.body),
            content_type="application/json",
            headers=headers,
        )


def payment_intent(
    id: str = "pi_test_1",
    *,
    status: str = "requires_capture",
    amount: int = 2500,
    currency: str = "eur",
    capture_method: str = "manual",
    next_action: JSON | None = None,
    last_payment_error: JSON | None = None,
    metadata: dict[str, str] | None = None,
    cancellation_reason: str | None = None,
    latest_charge: str | None = None,
) -> JSON:
    """A PaymentIntent as Stripe answers one."""
    return {
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": amount if status == "requires_capture" else 0,
        "amount_received": amount if status == "succeeded" else 0,
        "currency": currency,
        "status": status,
        "capture_method": capture_method,
        "confirmation_method": "automatic",
        "client_secret": f"{id}_secret_test",
        "next_action": next_action,
        "last_payment_error": last_payment_error,
        "metadata": metadata or {},
        "cancellation_reason": cancellation_reason,
        "latest_charge": latest_charge,
        "payment_method_types": ["card"],
        "livemode": False,
        "created": 1_767_225_600,
    }


def use_stripe_sdk() -> JSON:
    """A card's 3-D Secure, done by Stripe.js with the client secret."""
    return {
        "type": "use_stripe_sdk",
        "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": "https://3ds.test/"},
    }


def redirect_to_url(url: str) -> JSON:
    return {"type": "redirect_to_url", "redirect_to_url": {"url": url, "return_url": None}}


def payment_error(
    *,
    type: str = "card_error",
    code: str | None = "card_declined",
    decline_code: str | None = "insufficient_funds",
    message: str = "Your card has insufficient funds.",
    param: str | None = None,
    payment_intent: JSON | None = None,
) -> JSON:
    """An error object: a PaymentIntent's ``last_payment_error``, or inside
    an error answer (``error_body``)."""
    error: JSON = {"type": type, "message": message}
    for key, value in (
        ("code", code),
        ("decline_code", decline_code),
        ("param", param),
        ("payment_intent", payment_intent),
    ):
        if value is not None:
            error[key] = value
    if code is not None:
        error["doc_url"] = f"https://stripe.test/docs/error-codes/{code}"
    return error


def error_body(
    type: str,
    *,
    code: str | None = None,
    decline_code: str | None = None,
    message: str = "An error occurred.",
    param: str | None = None,
    payment_intent: JSON | None = None,
) -> JSON:
    """An error answer: ``{"error": {"type": ..., "code": ..., ...}}``, keys
    Stripe leaves out when they do not apply left out."""
    return {
        "error": payment_error(
            type=type,
            code=code,
            decline_code=decline_code,
            message=message,
            param=param,
            payment_intent=payment_intent,
        )
    }


def refund(
    id: str = "re_test_1",
    *,
    payment_intent: str = "pi_test_1",
    amount: int = 2500,
    currency: str = "eur",
    status: str = "succeeded",
    failure_reason: str | None = None,
    metadata: dict[str, str] | None = None,
) -> JSON:
    """A Refund; ``failure_reason`` is there only when given, as Stripe
    sends it only for a failed refund."""
    body: JSON = {
        "id": id,
        "object": "refund",
        "amount": amount,
        "currency": currency,
        "payment_intent": payment_intent,
        "charge": "ch_" + payment_intent.removeprefix("pi_"),
        "status": status,
        "reason": None,
        "metadata": metadata or {},
        "created": 1_767_225_600,
    }
    if failure_reason is not None:
        body["failure_reason"] = failure_reason
    return body


def listing(url: str, data: list[JSON]) -> JSON:
    """A list answer (``GET /v1/refunds?...``)."""
    return {"object": "list", "url": url, "has_more": False, "data": data}
