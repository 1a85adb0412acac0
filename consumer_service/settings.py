"""The consumer's settings (``TICKETING_CONSUMER_*``, and the shared ones)."""

from __future__ import annotations

from pydantic import Field

from ticketing_common.config import (
    AcceptedRequestsStore,
    KafkaSettings,
    PostgresClient,
    RedisClient,
    ReservationIdSecret,
    ServerSettings,
    settings_config,
)


class ConsumerSettings(PostgresClient, RedisClient, AcceptedRequestsStore, ReservationIdSecret):
    model_config = settings_config("CONSUMER")

    server: ServerSettings = ServerSettings.with_defaults(port=50081, metrics_port=9081)
    kafka: KafkaSettings = KafkaSettings.with_defaults()
    pool_size: int = Field(
        6,
        ge=1,
        description="PostgreSQL connections for decisions per process (also the decision "
        "concurrency); the hold expiry and the outbox relay get two more",
    )
    max_batch: int = Field(1_000, ge=1, description="most records per polled batch")
    poll_timeout_ms: int = Field(
        1_000,
        ge=1,
        description="how often an idle consume loop wakes (a record wakes it at once)",
    )
    # Fencing tokens cover a holder that pauses past the expiry.
    lock_ttl_ms: int = Field(
        10_000,
        ge=100,
        description="Redis lock expiry; must outlive a batch by far (fencing covers the case "
        "where it does not)",
    )
    lock_wait_s: float = Field(
        5.0,
        ge=0.01,
        description="longest wait for an event's lock before the batch is retried",
    )
    retry_backoff_s: float = Field(
        0.5,
        ge=0,
        description="first pause before retrying a failed batch; doubles up to 10 s",
    )
    max_attempts: int = Field(
        5,
        ge=1,
        description="tries a record gets when its processing keeps failing (not transiently) "
        "before it is dead-lettered",
    )
    breaker_threshold: int = Field(
        5,
        ge=1,
        description="transient batch failures in a row that open the circuit breaker",
    )
    breaker_reset_s: float = Field(
        5.0,
        ge=0.1,
        description="how long the breaker stays open before a half-open probe of PostgreSQL "
        "and Redis",
    )
    max_decisions_per_s: int = Field(
        0,
        ge=0,
        description="ceiling on decisions per second for this consumer (protects the "
        "database); `0` = unlimited",
    )
    session_timeout_ms: int = Field(
        10_000,
        ge=1_000,
        description="Kafka group session: how soon a dead consumer's partitions move",
    )
    expiry_interval_s: float = Field(
        0.5,
        gt=0,
        le=60,
        description="how often each consumer looks for holds past their deadline (and "
        "waitlisted requests past the queue TTL): a hold outlives its deadline by at most "
        "this plus one lock wait",
    )
    # Widens the windows in which a crash or a stall matters most.
    fault_delay_ms: int = Field(
        0,
        ge=0,
        description="fault-injection tests only, 0 in production: pause after taking an "
        "event's lock and after publishing a batch's results",
    )
