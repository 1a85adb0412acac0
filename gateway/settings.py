"""The gateway's settings (``TICKETING_GATEWAY_*``, and the shared ones)."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from typing import Annotated, cast

from pydantic import BeforeValidator, Field

from ticketing_common.config import (
    AcceptedRequestsStore,
    AuthSettings,
    KafkaSettings,
    PostgresClient,
    RedisClient,
    ReservationIdSecret,
    ServerSettings,
    settings_config,
)

# A comma-separated list of networks in the environment.
Networks = Annotated[
    tuple[IPv4Network | IPv6Network, ...],
    BeforeValidator(
        lambda value: (
            tuple(n.strip() for n in value.split(",") if n.strip())
            if isinstance(value, str)
            else value
        )
    ),
]


class GatewaySettings(PostgresClient, RedisClient, AcceptedRequestsStore, ReservationIdSecret):
    model_config = settings_config("GATEWAY")

    auth: AuthSettings = AuthSettings.with_defaults()
    server: ServerSettings = ServerSettings.with_defaults(port=50061, metrics_port=9061)
    kafka: KafkaSettings = KafkaSettings.with_defaults()
    pool_size: int = Field(8, ge=1, description="PostgreSQL pool size per process")
    # The caller's deadline shortens it further.
    publish_timeout_s: float = Field(
        5.0,
        ge=0.01,
        description="longest wait for the broker's acknowledgement before `UNAVAILABLE`",
    )
    unknown_event_ttl_s: float = Field(
        2.0, ge=0, description="how long an unknown event id is remembered as unknown"
    )
    sold_out_fast_path: bool = Field(
        True,
        description="answer `Reserve` REJECTED/SOLD_OUT at once, queueing nothing, while the "
        "event has no seat free, none held and nobody waiting",
    )
    event_refresh_s: float = Field(
        1.0,
        ge=0,
        description="how often a known event's sale terms (seats, paused, closed, window) are "
        "re-read regardless; a change PostgreSQL announces (seats, state, window) is re-read "
        "within 0.1 s, and any other within this",
    )
    producer_linger_ms: int = Field(1, ge=0, description="producer batching delay")
    broker_breaker_threshold: int = Field(
        3, ge=1, description="failed publishes in a row after which `Reserve` fails fast"
    )
    broker_breaker_reset_s: float = Field(
        2.0, ge=0.1, description="how long it fails fast (also the retry delay it tells callers)"
    )
    broker_silence_s: float = Field(
        2.0,
        ge=0.1,
        description="a `Reserve` stops waiting (`UNAVAILABLE`) once its partition has had no "
        "acknowledgement this long: the broker, or the partition's leader, is gone",
    )
    idempotency_ttl_s: float = Field(
        25 * 3600.0,
        ge=60,
        description="how long an `idempotency_key` stays bound to its first request's "
        "parameters (Redis, about 200 bytes per request); keep it above the longest queue TTL",
    )
    idempotency_timeout_s: float = Field(
        0.5,
        ge=0.01,
        description="longest wait for Redis in the idempotency check; past it `Reserve` "
        "goes on without the check rather than stop the sale",
    )
    rate_per_subject: int = Field(
        10,
        ge=0,
        description="`Reserve` calls one subject may make per rate window, across all "
        "gateways (Redis); 0 is no limit. The local stack turns it off unless set",
    )
    rate_per_address: int = Field(
        100,
        ge=0,
        description="`Reserve` calls one client address may make per rate window (the "
        "address a trusted proxy reports in `x-real-ip`, else the peer's); 0 is no limit. The "
        "local stack turns it off unless set (its load comes from one loopback address)",
    )
    rate_window_s: float = Field(1.0, gt=0, le=3600, description="the rate limits' window")
    trusted_proxies: Networks = Field(
        cast(Networks, ("127.0.0.0/8", "::1/128")),
        description="networks (CIDRs, comma-separated) of the proxies whose `x-real-ip` "
        "header is believed as the caller's address; from any other peer the header is "
        "ignored and the peer's address counts. The default is loopback, where the local "
        "stack's nginx runs; list your load balancers' networks in production",
        examples=["10.0.0.0/24,fd00::/64"],
    )
    sync_enabled: bool = Field(
        False,
        description="serve `ReserveSync`, the synchronous design kept for comparison: it "
        "jumps the queue, so only for benchmarks (the local stack's tests and demo turn it on)",
    )
    lock_ttl_ms: int = Field(
        10_000,
        ge=100,
        description="`ReserveSync` (the synchronous design): Redis lock expiry",
    )
    sync_lock_wait_s: float = Field(
        5.0,
        ge=0.01,
        description="`ReserveSync` (the synchronous design): longest wait for the event's "
        "lock before `UNAVAILABLE`",
    )
    # Widens the window in which a killed gateway has published a request it
    # has not answered yet.
    fault_delay_ms: int = Field(
        0,
        ge=0,
        description="fault-injection tests only, 0 in production: pause between the broker's "
        "acknowledgement and the answer",
    )
