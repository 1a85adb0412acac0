"""Prometheus metrics: the endpoint every service serves, the RED metrics of
every RPC, and the decision metrics the services share.

The RPC metrics have go-grpc-prometheus's names and labels
(``grpc_server_started_total``, ``grpc_server_handled_total`` with
``grpc_code``, ``grpc_server_handling_seconds``), so dashboards and alerts
written for gRPC servers work unchanged. A service's own metrics are
defined in its ``metrics`` module; all are named ``ticketing_*``, and the
list is in README's "Metrics" section.

Decisions are counted after their transaction committed (a batch retried
after a failure is not counted twice), by whichever process made them: the
consumers, and a gateway serving the synchronous design.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import structlog
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from .domain import Reservation
from .interceptors import Rewrapped, ServerInterceptor, rewrap

log = structlog.get_logger(__name__)

# Seconds: from a cached answer (sub-millisecond) to a long server stream.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)

STARTED = Counter(
    "grpc_server_started_total",
    "RPCs started on the server.",
    ["grpc_service", "grpc_method", "grpc_type"],
)
HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by status code.",
    ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
)
HANDLING = Histogram(
    "grpc_server_handling_seconds",
    "Time from an RPC's start until its status was sent (a stream: its whole life).",
    ["grpc_service", "grpc_method", "grpc_type"],
    buckets=LATENCY_BUCKETS,
)

ACCEPT_TO_DECIDE = Histogram(
    "ticketing_accept_to_decide_seconds",
    "From a gateway accepting a request to its decision being committed.",
    buckets=LATENCY_BUCKETS,
)
DECISIONS = Counter(
    "ticketing_decisions_total",
    "Requests decided (first decisions and waitlist changes), by outcome and reason.",
    ["outcome", "reason"],
)
BATCH_SIZE = Histogram(
    "ticketing_decision_batch_size",
    "Requests decided together for one event under one lock and one transaction.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
LOCK_WAIT = Histogram(
    "ticketing_lock_wait_seconds",
    "Time spent acquiring an event's Redis lock.",
    buckets=LATENCY_BUCKETS,
)
EVENT_AVAILABLE = Gauge(
    "ticketing_event_available_seats",
    "Seats of the event neither sold nor held, after its latest decision batch here.",
    ["event_id"],
)
FENCING_REFUSALS = Counter(
    "ticketing_fencing_refusals_total",
    "Transactions PostgreSQL refused because a newer lock holder had written.",
)


# What reading the event loop's structures from the scrape thread may meet:
# a dict or set changed under it, a partition unassigned meanwhile (aiokafka
# asserts), an entry gone. The scrape goes on without that reading.
SCRAPE_RACES = (RuntimeError, AssertionError, KeyError)


def observe(gauge: Gauge, read: Callable[[], float]) -> None:
    """``gauge`` reads ``read()`` at scrape time; a race reads 0 that once."""

    def safely() -> float:
        try:
            return read()
        except SCRAPE_RACES:
            return 0.0

    gauge.set_function(safely)


def serve(host: str, port: int) -> int:
    """Serves ``/metrics`` on ``host:port`` (``0``: a free port) from a
    thread of its own; returns the port."""
    server, _ = start_http_server(port, addr=host)
    bound: int = server.server_port
    log.info("metrics_serving", address=f"{host}:{bound}")
    return bound


def count_decisions(decided: Iterable[Reservation]) -> None:
    """Counts committed decisions, and how long each first decision took."""
    for reservation in decided:
        reason = reservation.reject_reason.value.lower() if reservation.reject_reason else "none"
        DECISIONS.labels(reservation.status.value.lower(), reason).inc()
        if reservation.decided_at is not None and reservation.version <= 2:
            ACCEPT_TO_DECIDE.observe(
                max(0.0, (reservation.decided_at - reservation.accepted_at).total_seconds())
            )


class MetricsInterceptor(ServerInterceptor):
    """Counts and times every RPC by service, method and status code."""

    def __init__(self) -> None:
        self._rewrapped = Rewrapped()

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        full = handler_call_details.method
        service, _, method = full.lstrip("/").rpartition("/")
        return self._rewrapped.get(
            full,
            handler,
            lambda: rewrap(
                handler,
                lambda behavior: _unary(behavior, service, method),
                lambda behavior: _stream(behavior, service, method),
            ),
        )


def _code(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException | None) -> str:
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        remaining = context.time_remaining()
        expired = remaining is not None and remaining <= 0
        return (grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED).name
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    return grpc.StatusCode.OK.name if exc is None else grpc.StatusCode.UNKNOWN.name


class _Method:
    """One method's series, looked up once (the code's, per call)."""

    def __init__(self, service: str, method: str, kind: str) -> None:
        self.labels = (service, method, kind)
        self.started = STARTED.labels(*self.labels)
        self.handling = HANDLING.labels(*self.labels)


@contextmanager
def _measured(series: _Method, context: grpc.aio.ServicerContext[Any, Any]) -> Iterator[None]:
    """Counts one call as started, then as handled with its code, and times it."""
    series.started.inc()
    begun = time.perf_counter()
    failure: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        failure = exc
        raise
    finally:
        series.handling.observe(time.perf_counter() - begun)
        HANDLED.labels(*series.labels, _code(context, failure)).inc()


def _unary(
    behavior: Callable[..., Awaitable[Any]], service: str, method: str
) -> Callable[..., Awaitable[Any]]:
    series = _Method(service, method, "unary")

    async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        with _measured(series, context):
            return await behavior(request, context)

    return wrapped


def _stream(
    behavior: Callable[..., AsyncIterator[Any]], service: str, method: str
) -> Callable[..., AsyncIterator[Any]]:
    series = _Method(service, method, "server_stream")

    async def wrapped(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        with _measured(series, context):
            async for item in behavior(request, context):
                yield item

    return wrapped
