"""The gateway's own metrics (the RPC metrics are common to every service,
see ``ticketing_common.metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from ticketing_common.metrics import LATENCY_BUCKETS

SOLD_OUT_FAST_PATH = Counter(
    "ticketing_gateway_sold_out_fast_path_total",
    "Reserve calls answered SOLD_OUT by the gateway itself, queued nowhere.",
)
RATE_LIMITED = Counter(
    "ticketing_gateway_rate_limited_total",
    "Reserve calls refused by a rate limit, by the limit that refused them.",
    ["kind"],
)
BREAKER_STATE = Gauge(
    "ticketing_gateway_breaker_state",
    "The broker circuit breaker: 0 closed, 1 half-open (one probe), 2 open (failing fast).",
)
PUBLISH_SECONDS = Histogram(
    "ticketing_gateway_publish_seconds",
    "Appending a request until every in-sync replica acknowledged it.",
    buckets=LATENCY_BUCKETS,
)
