"""Who the local stack's payment services take payments with.

``local`` is the stand-in that moves no money. ``stripe`` is Stripe's API:
the test-mode account ``TICKETING_STRIPE_API_BASE`` names, with its
``TICKETING_STRIPE_API_KEY`` and ``TICKETING_STRIPE_WEBHOOK_SECRET``, or,
when it names none, a stripe-mock of the stack's own (built with Go by
``ticketing_tools.stripe_mock``) on a free loopback port, with fixtures under
which a card authorizes, and a key and webhook secret drawn for the stack:
stripe-mock checks only a key's shape, and the webhook secret is what the
events a test sends through nginx are signed with.

Either way every payment service runs its webhook server on a port of its
own behind nginx's webhook listener, in HTTPS when the stack's TLS is on.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from payment_service.settings import PaymentSettings, StripeSettings
from ticketing_common.config import variable

from .. import stripe_mock
from .processes import Child, free_port
from .tls import StackTls

Provider = Literal["local", "stripe"]

API_BASE = variable(StripeSettings, "api_base")
API_KEY = variable(StripeSettings, "api_key")
WEBHOOK_SECRET = variable(StripeSettings, "webhook_secret")
WEBHOOK_PORT = variable(PaymentSettings, "webhook_port")
# Where the payment services' webhook servers listen (nginx reaches them).
WEBHOOK_HOST = "127.0.0.1"


@dataclass(frozen=True)
class StripeApi:
    """Where the payment services reach Stripe's API, and with what."""

    api_base: str
    api_key: str
    webhook_secret: str

    def env(self) -> dict[str, str]:
        return {
            API_BASE: self.api_base,
            API_KEY: self.api_key,
            WEBHOOK_SECRET: self.webhook_secret,
        }


def given_account(env: Mapping[str, str]) -> StripeApi | None:
    """The Stripe account ``env`` names, or None when it names none."""
    api_base = env.get(API_BASE)
    if not api_base:
        return None
    missing = [name for name in (API_KEY, WEBHOOK_SECRET) if not env.get(name)]
    if missing:
        raise ValueError(
            f"{API_BASE} names a Stripe account for the stack: {' and '.join(missing)} "
            "must be set too (unset it to run stripe-mock instead)"
        )
    return StripeApi(api_base, env[API_KEY], env[WEBHOOK_SECRET])


def stripe_mock_child(root: Path, logs: Path) -> tuple[Child, StripeApi]:
    """A stripe-mock (built under ``root`` first if need be) to start on a
    free loopback port, and how the payment services reach it."""
    built = stripe_mock.ensure(root)
    port = free_port()
    address = f"127.0.0.1:{port}"
    child = Child("stripe-mock", built.command(address), logs / "stripe-mock.log", port=port)
    api = StripeApi(
        api_base=f"http://{address}",
        api_key=f"sk_test_{secrets.token_hex(12)}",
        webhook_secret=f"whsec_{secrets.token_hex(16)}",
    )
    return child, api


def service_env(
    provider: Provider, *, tls: StackTls | None, stripe: StripeApi | None
) -> dict[str, str]:
    """What one payment service of the stack is given: its provider, and a
    webhook server on a free port of its own (with TLS, the certificate the
    services show nginx on their gRPC port)."""
    env = {
        variable(PaymentSettings, "local_stack"): "1",
        variable(PaymentSettings, "provider"): provider,
        variable(PaymentSettings, "webhook_host"): WEBHOOK_HOST,
        WEBHOOK_PORT: str(free_port()),
    }
    if tls is not None:
        env[variable(PaymentSettings, "webhook_tls_cert_file")] = str(tls.services.cert)
        env[variable(PaymentSettings, "webhook_tls_key_file")] = str(tls.services.key)
    if stripe is not None:
        env.update(stripe.env())
    return env


def webhook_address(env: Mapping[str, str]) -> str | None:
    """Where the payment service started with ``env`` takes webhooks (None:
    it runs no webhook server)."""
    port = env.get(WEBHOOK_PORT, "0")
    host = env.get(variable(PaymentSettings, "webhook_host"), WEBHOOK_HOST)
    return None if port == "0" else f"{host}:{port}"
