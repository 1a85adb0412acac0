"""The notifier's own metrics."""

from __future__ import annotations

from prometheus_client import Gauge, Histogram

from ticketing_common.metrics import LATENCY_BUCKETS

WATCH_STREAMS = Gauge(
    "ticketing_notifier_watch_streams",
    "Open watch streams, by kind (reservation, event, seat_map).",
    ["kind"],
)
DECIDE_TO_STREAM = Histogram(
    "ticketing_decide_to_stream_seconds",
    "From a reservation's change being committed to its hand-over to the streams "
    "watching it (only changes somebody watches).",
    buckets=LATENCY_BUCKETS,
)
FEED_LAG = Gauge(
    "ticketing_notifier_feed_lag_records",
    "Records of a feed's topic not read by this notifier yet (as of its last fetch).",
    ["topic"],
)
QUEUED_REQUESTS = Gauge(
    "ticketing_notifier_queued_requests",
    "Queued requests the notifier knows the place of (waitlist and topic).",
)
