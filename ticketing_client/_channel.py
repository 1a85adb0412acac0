"""The one channel a client holds, and the bearer token on every call."""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

import grpc

# A fixed token, or a function returning the current one (called before
# every call and every reopened stream, so a refreshed token is picked up).
TokenSource: TypeAlias = str | Callable[[], str] | Callable[[], Awaitable[str]]

# gRPC's own retries, below the client's: a call that failed with
# UNAVAILABLE before any answer (a broken connection, a proxy without an
# upstream for a moment) is sent again at once, up to twice more. It applies
# only where repeating is harmless: Reserve carries its idempotency key, so a
# resent request is the same request (the same reservation id, seats taken
# once); WatchReservation changes nothing. The throttle stops
# these retries while most calls fail, so an outage is not met with three
# times the traffic. UNAVAILABLE answers with a RetryInfo delay are retried by
# the client itself, after that delay (gRPC's policy cannot read it).
SERVICE_CONFIG: dict[str, Any] = {
    "methodConfig": [
        {
            "name": [
                {"service": "ticketing.v1.GatewayService", "method": "Reserve"},
                {"service": "ticketing.v1.NotifierService", "method": "WatchReservation"},
            ],
            "retryPolicy": {
                "maxAttempts": 3,
                "initialBackoff": "0.1s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ],
    "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
}


def open_channel(
    target: str,
    credentials: grpc.ChannelCredentials | None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """A channel to ``target`` (host:port): TLS with ``credentials``, else
    plaintext, configured with the retry policy above."""
    configured = [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
        *options,
    ]
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=configured)
    return grpc.aio.secure_channel(target, credentials, options=configured)


async def bearer(token: TokenSource | None) -> tuple[tuple[str, str], ...]:
    """Call metadata with the current token; none without a token (the
    channel then authenticates its calls itself)."""
    if token is None:
        return ()
    if isinstance(token, str):
        current = token
    else:
        produced = token()
        current = await produced if inspect.isawaitable(produced) else produced
    return (("authorization", f"Bearer {current}"),)
