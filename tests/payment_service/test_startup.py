"""A payment service started outside the local stack: with the local
provider it refuses to start (it would sell seats for nothing) unless told
``TICKETING_PAYMENT_ALLOW_LOCAL=1``, and then warns; the Stripe provider
needs its key, its webhook secret and a webhook port."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest
from pydantic import ValidationError

from payment_service.settings import PaymentSettings, StripeSettings
from ticketing_common.config import ServerSettings, variable
from ticketing_tools.stack import LocalStack
from ticketing_tools.stack.processes import free_port

from .fake_stripe import FakeStripe, error_body

LOCAL_STACK = variable(PaymentSettings, "local_stack")
ALLOW_LOCAL = variable(PaymentSettings, "allow_local")
PROVIDER = variable(PaymentSettings, "provider")


def outside_env(stack: LocalStack, **extra: str) -> dict[str, str]:
    """What the stack's payment service runs with, as a deployment would
    give it (no launcher's mark), on ports of its own."""
    (child,) = stack.services["payment_service"][:1]
    assert child.env is not None
    env = {k: v for k, v in child.env.items() if k != LOCAL_STACK}
    env[variable(ServerSettings, "port")] = str(free_port())
    env[variable(ServerSettings, "metrics_port")] = str(free_port())
    env[variable(ServerSettings, "instance_id")] = "payment-outside"
    env[variable(PaymentSettings, "webhook_port")] = str(free_port())
    env[PROVIDER] = "local"
    return {**env, **extra}


def test_outside_the_local_stack_the_local_provider_refuses_to_start(stack: LocalStack) -> None:
    started = subprocess.run(
        [sys.executable, "-m", "payment_service"],
        env=outside_env(stack),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 1, started.stderr[-2000:]
    assert started.stderr.strip().splitlines()[-1] == (
        "payment service: the local payment provider moves no money and runs only in the "
        "local stack: set TICKETING_PAYMENT_PROVIDER=stripe with TICKETING_STRIPE_API_KEY and "
        "TICKETING_STRIPE_WEBHOOK_SECRET, or, to rehearse without money, "
        "TICKETING_PAYMENT_ALLOW_LOCAL=1"
    )


def test_told_to_allow_it_the_local_provider_starts_and_warns(stack: LocalStack) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "payment_service"],
        env=outside_env(stack, **{ALLOW_LOCAL: "1"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if '"event": "payment_provider_local"' in line:
                break
        warning = json.loads(lines[-1])
        assert (warning["event"], warning["level"]) == ("payment_provider_local", "warning")
        assert "moves no money" in warning["warning"]
        assert process.poll() is None  # running, not refused
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_stripe_provider_needs_its_key_secret_and_webhook_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PROVIDER, "stripe")
    with pytest.raises(ValidationError) as missing:
        PaymentSettings()
    assert (
        "the stripe provider needs TICKETING_STRIPE_API_KEY and TICKETING_STRIPE_WEBHOOK_SECRET"
        in str(missing.value)
    )
    monkeypatch.setenv(variable(StripeSettings, "api_key"), "sk_test_x")
    monkeypatch.setenv(variable(StripeSettings, "webhook_secret"), "whsec_x")
    monkeypatch.setenv(variable(PaymentSettings, "webhook_port"), "0")
    with pytest.raises(ValidationError) as no_port:
        PaymentSettings()
    assert "TICKETING_PAYMENT_WEBHOOK_PORT must not be 0" in str(no_port.value)
    monkeypatch.setenv(variable(PaymentSettings, "webhook_port"), "8443")
    settings = PaymentSettings()
    assert settings.local_refused() is None
    assert settings.stripe.api_key is not None
    assert settings.stripe.api_key.get_secret_value() == "sk_test_x"
    assert "sk_test_x" not in repr(settings)


async def test_a_stripe_key_stripe_refuses_stops_the_service_at_start(stack: LocalStack) -> None:
    """Better refused at start than every payment of a sale flagged."""
    fake = FakeStripe()
    await fake.start()
    try:
        fake.answer(
            "GET",
            "/v1/payment_intents",
            401,
            error_body("invalid_request_error", message="Invalid API Key provided: sk_test_****"),
        )
        env = outside_env(
            stack,
            **{
                PROVIDER: "stripe",
                variable(StripeSettings, "api_key"): "sk_test_refused",
                variable(StripeSettings, "api_base"): fake.url,
                variable(StripeSettings, "webhook_secret"): "whsec_test",
            },
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "payment_service",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        await fake.stop()
    assert process.returncode == 1
    assert stderr.decode().strip().splitlines()[-1] == (
        "payment service: Stripe refuses TICKETING_STRIPE_API_KEY: Invalid API Key provided: "
        "sk_test_****"
    )
    assert [(r.method, r.path, r.authorization) for r in fake.requests] == [
        ("GET", "/v1/payment_intents", "Bearer sk_test_refused")
    ]
