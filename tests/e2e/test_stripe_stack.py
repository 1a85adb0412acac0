"""The stack with the Stripe provider: its payment service serves, its
stripe-mock answers as Stripe answers an authorization, and nginx's webhook
listener takes Stripe's events to a payment service, and nothing else."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payment_service.settings import PaymentSettings, StripeSettings
from ticketing_common.config import variable
from ticketing_tools.stack import LocalStack


def http(method: str, url: str, body: bytes | None = None, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def test_the_payment_service_runs_stripe_and_serves(stripe_stack: LocalStack) -> None:
    (child,) = stripe_stack.services["payment_service"]
    assert child.env is not None
    assert child.env[variable(PaymentSettings, "provider")] == "stripe"
    assert child.env[variable(StripeSettings, "api_base")] == stripe_stack.stripe_api_base
    (address,) = stripe_stack.addresses["payment_service"]
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_the_stacks_stripe_mock_authorizes(stripe_stack: LocalStack) -> None:
    assert stripe_stack.stripe_mock is not None and stripe_stack.stripe_mock.alive()
    assert stripe_stack.stripe_api_key is not None
    status, body = http(
        "POST",
        f"{stripe_stack.stripe_api_base}/v1/payment_intents",
        urllib.parse.urlencode(
            {
                "amount": "4200",
                "currency": "eur",
                "capture_method": "manual",
                "confirm": "true",
                "payment_method": "pm_card_visa",
            }
        ).encode(),
        Authorization=f"Bearer {stripe_stack.stripe_api_key}",
    )
    assert status == 200, body
    intent = json.loads(body)
    assert (intent["status"], intent["amount"], intent["currency"]) == (
        "requires_capture",
        4200,
        "eur",
    )


def test_nginx_passes_webhooks_to_a_payment_service(stripe_stack: LocalStack) -> None:
    """An event whose signature does not hold reaches a payment service,
    which refuses it: nginx passed it on (without a webhook server behind
    it, nginx itself would answer 502)."""
    assert stripe_stack.webhook_backends
    event = json.dumps({"id": "evt_test", "type": "payment_intent.succeeded"}).encode()
    base = f"http://{stripe_stack.webhook_endpoint}"
    status, body = http(
        "POST",
        f"{base}/stripe/webhook",
        event,
        **{"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=00"},
    )
    assert status == 400, body
    # One path and one method, nothing else.
    assert http("GET", f"{base}/stripe/webhook")[0] == 403
    assert http("GET", f"{base}/")[0] == 404
    assert http("POST", f"{base}/v1/payment_intents", b"amount=1")[0] == 404
