"""The payment service's settings (``TICKETING_PAYMENT_*``, and the shared ones)."""

from __future__ import annotations

from pydantic import Field

from ticketing_common.config import (
    AuthSettings,
    KafkaSettings,
    PostgresClient,
    RedisClient,
    ServerSettings,
    settings_config,
)


class PaymentSettings(PostgresClient, RedisClient):
    model_config = settings_config("PAYMENT")

    auth: AuthSettings = AuthSettings.with_defaults()
    server: ServerSettings = ServerSettings.with_defaults(port=50101, metrics_port=9101)
    kafka: KafkaSettings = KafkaSettings.with_defaults()
    pool_size: int = Field(8, ge=1, description="PostgreSQL pool size per process")
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
