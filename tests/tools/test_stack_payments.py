"""What the local stack hands its payment services, and which Stripe it
uses, read without starting it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from payment_service.settings import PaymentSettings, StripeSettings
from ticketing_common.config import variable
from ticketing_tools.stack.launcher import LocalStack, StackConfig

ACCOUNT = {
    variable(StripeSettings, "api_base"): "https://stripe.invalid",
    variable(StripeSettings, "api_key"): "sk_test_given",
    variable(StripeSettings, "webhook_secret"): "whsec_given",
}


@pytest.fixture
def unstarted(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    env = getattr(request, "param", {})
    stack = LocalStack(StackConfig(payment_provider="stripe", tls=False), service_env=env)
    try:
        yield stack
    finally:
        stack.stop()


def test_each_payment_service_gets_the_provider_and_a_webhook_port_of_its_own(
    unstarted: LocalStack,
) -> None:
    envs = [unstarted._service_env("payment_service", i, 0) for i in range(2)]
    for env in envs:
        assert env[variable(PaymentSettings, "local_stack")] == "1"
        assert env[variable(PaymentSettings, "provider")] == "stripe"
        assert env[variable(PaymentSettings, "webhook_host")] == "127.0.0.1"
        assert variable(PaymentSettings, "webhook_tls_cert_file") not in env
    ports = {env[variable(PaymentSettings, "webhook_port")] for env in envs}
    assert len(ports) == 2 and "0" not in ports
    assert variable(PaymentSettings, "provider") not in unstarted._service_env("gateway", 0, 0)


@pytest.mark.parametrize("unstarted", [ACCOUNT], indirect=True)
def test_a_named_stripe_account_is_used_instead_of_stripe_mock(unstarted: LocalStack) -> None:
    unstarted._start_payment_provider()
    assert unstarted.stripe_mock is None
    assert (
        unstarted.stripe_api_base,
        unstarted.stripe_api_key,
        unstarted.stripe_webhook_secret,
    ) == tuple(ACCOUNT.values())
    env = unstarted._service_env("payment_service", 0, 0)
    assert {name: env[name] for name in ACCOUNT} == ACCOUNT


@pytest.mark.parametrize(
    "unstarted", [{variable(StripeSettings, "api_base"): "https://stripe.invalid"}], indirect=True
)
def test_a_named_account_without_its_secrets_is_refused_by_name(unstarted: LocalStack) -> None:
    with pytest.raises(ValueError) as refused:
        unstarted._start_payment_provider()
    assert variable(StripeSettings, "api_key") in str(refused.value)
    assert variable(StripeSettings, "webhook_secret") in str(refused.value)
