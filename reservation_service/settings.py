"""The reservation service's settings (``TICKETING_RESERVATION_*``, and the shared ones)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from ticketing_common.config import (
    AcceptedRequestsStore,
    AuthSettings,
    PostgresClient,
    RedisClient,
    ServerSettings,
    settings_config,
)


# Redis: where the gateway records accepted requests; GetReservation answers
# a queued request from there.
class ReservationSettings(PostgresClient, RedisClient, AcceptedRequestsStore):
    model_config = settings_config("RESERVATION")

    auth: AuthSettings = AuthSettings.with_defaults()
    server: ServerSettings = ServerSettings.with_defaults(port=50071, metrics_port=9071)
    pool_size: int = Field(8, ge=1, description="PostgreSQL pool size per process")
    lock_ttl_ms: int = Field(
        5_000,
        ge=100,
        description="event lock lease taken to cancel a reservation (its seats change)",
    )
    lock_wait_s: float = Field(
        5.0, gt=0, description="longest wait for an event's lock before UNAVAILABLE"
    )
    page_token_secret: SecretStr | None = Field(
        None,
        min_length=32,
        description="key the list calls' page tokens are signed with (HMAC-SHA256), so a "
        "token altered or made up is refused INVALID_ARGUMENT; at least 32 characters, the "
        "same on every reservation service. Unset: each process draws its own at start, and "
        "a token holds only on the process that issued it, until it stops",
        examples=["<32+ random characters from your secrets manager>"],
    )
