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
