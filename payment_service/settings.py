"""The payment service's settings (``TICKETING_PAYMENT_*``, and the shared ones)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from ticketing_common.config import (
    AuthSettings,
    KafkaSettings,
    PostgresClient,
    RedisClient,
    ServerSettings,
    Settings,
    settings_config,
    variable,
)


class StripeSettings(Settings):
    """Stripe, the payment provider of a deployment (``TICKETING_STRIPE_*``)."""

    model_config = settings_config("STRIPE")

    api_key: SecretStr | None = Field(
        None,
        description="Stripe secret key (`sk_live_...`, `sk_test_...` for test mode, or a "
        "restricted `rk_...` key allowed to write PaymentIntents and Refunds); required with "
        "`TICKETING_PAYMENT_PROVIDER=stripe`",
    )
    api_base: str = Field(
        "https://api.stripe.com",
        description="Stripe's API; the tests point it at stripe-mock",
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="the signing secret (`whsec_...`) of the webhook endpoint registered in "
        "Stripe for `/stripe/webhook`; required with `TICKETING_PAYMENT_PROVIDER=stripe`",
    )
    max_requests_per_s: float = Field(
        25.0,
        gt=0,
        description="requests one payment service sends Stripe per second at most; a rush of "
        "buyers waits its turn instead of being refused 429. Stripe's limit is per account "
        "(100 a second in live mode, 25 in test mode): keep this times the payment services "
        "below it",
    )
    webhook_tolerance_s: int = Field(
        300,
        ge=1,
        le=3_600,
        description="how old a webhook's signed timestamp may be before it is refused "
        "(Stripe's own default: 5 minutes), against replays",
    )


class PaymentSettings(PostgresClient, RedisClient):
    model_config = settings_config("PAYMENT")

    auth: AuthSettings = AuthSettings.with_defaults()
    server: ServerSettings = ServerSettings.with_defaults(port=50101, metrics_port=9101)
    kafka: KafkaSettings = KafkaSettings.with_defaults()
    stripe: StripeSettings = StripeSettings.with_defaults()
    pool_size: int = Field(8, ge=1, description="PostgreSQL pool size per process")
    provider: Literal["stripe", "local"] = Field(
        "local",
        description="who takes the money: `stripe`, or `local`, the stand-in that moves no "
        "money (the local stack's default, and its tests'); outside the local stack a "
        "payment service refuses to start with `local` unless "
        "`TICKETING_PAYMENT_ALLOW_LOCAL=1`",
    )
    allow_local: bool = Field(
        False,
        description="lets a payment service outside the local stack run the `local` "
        "provider (a staging rehearsal): it then sells seats for nothing, and warns on start",
    )
    local_stack: bool = Field(
        False,
        description="set by the local stack's launcher for the processes it starts; never "
        "in a deployment",
    )
    webhook_host: str = Field("0.0.0.0", description="address of the webhook server")
    webhook_port: int = Field(
        8443,
        ge=0,
        le=65_535,
        description="port of the payment service's own HTTP(S) server for Stripe's webhooks "
        "(`POST /stripe/webhook`, and `GET /healthz` for the load balancer); 0: none, which "
        "only the `local` provider allows",
    )
    webhook_tls_cert_file: str | None = Field(
        None,
        description="the webhook server speaks HTTPS with this certificate chain (PEM), with "
        "`TICKETING_PAYMENT_WEBHOOK_TLS_KEY_FILE`; unset, plain HTTP (behind a load balancer "
        "that terminates Stripe's HTTPS)",
    )
    webhook_tls_key_file: str | None = Field(
        None, description="private key (PEM) of `TICKETING_PAYMENT_WEBHOOK_TLS_CERT_FILE`"
    )
    saga_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3_600,
        description="how long a payment may wait for the provider's authorization; past it "
        "the authorization is voided (whatever the provider did) and the hold stays, for "
        "another attempt",
    )
    provider_timeout_s: float = Field(
        10.0,
        gt=0,
        description="longest wait for the provider's capture, void or refund before the "
        "step is retried",
    )
    retry_attempts: int = Field(
        8,
        ge=1,
        le=1_000,
        description="failed attempts at one saga step (a capture, void or refund) before "
        "the payment needs an operator: it is then left where it stands, listed by "
        "`ticketing-admin payments` and counted by `ticketing_payments_needing_attention`",
    )
    retry_window_s: float = Field(
        600.0,
        gt=0,
        description="longest a saga step may keep failing, from when it began, before the "
        "payment needs an operator, attempts left or not (keep it below the ledger's "
        "`TICKETING_ADMIN_PAYMENT_STEP_BOUND_S`)",
    )
    retry_backoff_s: float = Field(
        1.0,
        gt=0,
        description="wait before a failed saga step is tried again; it doubles after each "
        "failure, up to `TICKETING_PAYMENT_RETRY_BACKOFF_MAX_S` (and a step is taken on "
        "again no sooner than the provider's and the lock's timeouts after it began)",
    )
    retry_backoff_max_s: float = Field(
        60.0, gt=0, description="longest wait between two attempts at a failing saga step"
    )
    slow_delay_s: float = Field(
        3.0,
        ge=0,
        description="local provider: how long the `test-slow` method takes to authorize",
    )
    action_poll_s: float = Field(
        120.0,
        gt=0,
        description="a payment waiting on the buyer's 3-D Secure is looked up at the provider "
        "this often when no webhook has told its result (the webhook is the way; this is the "
        "safety net for a lost one)",
    )
    sweep_interval_s: float = Field(
        2.0,
        gt=0,
        description="how often a payment service looks for payments whose saga stopped "
        "mid-way (a crash, an unreachable provider) and takes them on",
    )
    concurrency: int = Field(64, ge=1, description="payments one process takes forward at once")
    max_declines: int = Field(
        5,
        ge=0,
        description="declined payment attempts one hold may have; past them `Pay` on that "
        "reservation is refused (`RESOURCE_EXHAUSTED`, `PAYMENT_ATTEMPTS_EXHAUSTED`) while "
        "the hold runs out as usual: card testing gets a handful of tries per hold. 0 is no "
        "limit",
    )
    rate_per_subject: int = Field(
        20,
        ge=0,
        description="`Pay` calls one subject may make per rate window, across all payment "
        "services (Redis); 0 is no limit",
    )
    rate_window_s: float = Field(
        60.0, gt=0, le=3600, description="the window of `TICKETING_PAYMENT_RATE_PER_SUBJECT`"
    )
    rate_timeout_s: float = Field(
        0.5,
        ge=0.01,
        description="longest wait for Redis to count a `Pay` call; past it the call is "
        "refused `UNAVAILABLE` (the limit fails closed)",
    )
    lock_ttl_ms: int = Field(
        5_000, ge=100, description="event lock lease taken to confirm a paid hold"
    )
    lock_wait_s: float = Field(
        5.0, gt=0, description="longest wait for an event's lock before the step is retried"
    )
    fault_delay_ms: int = Field(
        0,
        ge=0,
        description="fault-injection tests only, 0 in production: pause between the saga's "
        "steps (after authorizing, after confirming)",
    )

    @model_validator(mode="after")
    def _provider_configured(self) -> Self:
        if self.provider == "stripe":
            missing = [
                variable(StripeSettings, name)
                for name in ("api_key", "webhook_secret")
                if getattr(self.stripe, name) is None
            ]
            if missing:
                raise ValueError(f"the stripe provider needs {' and '.join(missing)}")
            if not self.webhook_port:
                raise ValueError(
                    f"the stripe provider learns of 3-D Secure results, refunds and disputes "
                    f"by webhook: {variable(PaymentSettings, 'webhook_port')} must not be 0"
                )
        if (self.webhook_tls_cert_file is None) != (self.webhook_tls_key_file is None):
            raise ValueError(
                f"{variable(PaymentSettings, 'webhook_tls_cert_file')} and "
                f"{variable(PaymentSettings, 'webhook_tls_key_file')} go together"
            )
        return self

    def local_refused(self) -> str | None:
        """Why this process must not start with the local provider (it sells
        seats for nothing), or None."""
        if self.provider != "local" or self.local_stack or self.allow_local:
            return None
        return (
            "the local payment provider moves no money and runs only in the local stack: set "
            f"{variable(PaymentSettings, 'provider')}=stripe with "
            f"{variable(StripeSettings, 'api_key')} and "
            f"{variable(StripeSettings, 'webhook_secret')}, or, to rehearse without money, "
            f"{variable(PaymentSettings, 'allow_local')}=1"
        )
