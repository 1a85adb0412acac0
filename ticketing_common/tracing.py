"""Tracing with OpenTelemetry: one ``Reserve`` becomes one trace, across the
gateway, the broker, the consumer and the notifier.

- gRPC servers: OpenTelemetry's interceptor makes a server span per call,
  following the caller's ``traceparent``;
- asyncpg and Redis: OpenTelemetry's instrumentations, a span per query;
- Kafka: the trace context travels in the record headers (W3C
  ``traceparent``/``tracestate``). The gateway's append is a producer span
  whose context goes with the request; the consumer decides each request in
  a span that continues it (the batch's own work, its queries and lock,
  is a span of its own linked to every request it decided), and sends that
  span's context with the result; the notifier hands the result to the
  request's watchers in a span that continues it in turn.

Off unless ``TICKETING_TRACING_OTLP_ENDPOINT`` is set: then nothing is
instrumented, no span is made, and the Kafka helpers return at once, so a
service without tracing pays nothing for it. On, spans are batched and
exported over OTLP/gRPC; the standard ``OTEL_BSP_*`` variables tune the
batching.
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import structlog
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind

from .config import ServerSettings

log = structlog.get_logger(__name__)

Headers = Sequence[tuple[str, bytes]]

_enabled = False
tracer = trace.get_tracer("ticketing")


def enabled() -> bool:
    return _enabled


def configure(service: str, settings: ServerSettings) -> None:
    """Starts exporting ``service``'s spans if an OTLP endpoint is set."""
    global _enabled, tracer  # noqa: PLW0603 - set once, at start-up
    if not settings.tracing_otlp_endpoint:
        return
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": service, "service.instance.id": settings.instance_id}
        ),
        sampler=ParentBased(TraceIdRatioBased(settings.tracing_sample_ratio)),
    )
    endpoint = settings.tracing_otlp_endpoint
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, insecure=not endpoint.startswith("https://"))
        )
    )
    trace.set_tracer_provider(provider)
    # Whatever is still batched goes out on a clean exit.
    atexit.register(provider.shutdown)
    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    RedisInstrumentor().instrument(tracer_provider=provider)
    tracer = trace.get_tracer("ticketing")
    _enabled = True
    log.info("tracing_on", endpoint=endpoint, sample_ratio=settings.tracing_sample_ratio)


def server_interceptors() -> list[Any]:
    """The gRPC server interceptor that makes a span per call, when on."""
    if not _enabled:
        return []
    return [aio_server_interceptor()]  # type: ignore[no-untyped-call]


def headers() -> list[tuple[str, bytes]] | None:
    """The current trace context as Kafka record headers (None when off)."""
    if not _enabled:
        return None
    return _as_headers(otel_context.get_current()) or None


def _as_headers(ctx: otel_context.Context) -> list[tuple[str, bytes]]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=ctx)
    return [(key, value.encode()) for key, value in carrier.items()]


def extract(record_headers: Headers | None) -> otel_context.Context | None:
    """The trace context a record carries (None when off or when it has none)."""
    if not _enabled or not record_headers:
        return None
    carrier = {
        key: value.decode(errors="replace") for key, value in record_headers if value is not None
    }
    found = propagate.extract(carrier)
    span = trace.get_current_span(found).get_span_context()
    return found if span.is_valid else None


@contextmanager
def producing(topic: str) -> Iterator[list[tuple[str, bytes]] | None]:
    """A producer span around an append; yields the headers that carry it."""
    if not _enabled:
        yield None
        return
    with tracer.start_as_current_span(
        f"{topic} publish",
        kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "kafka", "messaging.destination.name": topic},
    ):
        yield headers()


@contextmanager
def continuing(
    name: str, parents: Mapping[str, otel_context.Context | None], **attributes: Any
) -> Iterator[dict[str, list[tuple[str, bytes]]]]:
    """One span per item that came with a trace context (``parents``: id to
    context), each continuing its item's trace; around them, current, a
    span of the batch linked to them all. Yields each traced item's headers
    (its span's context), for what is sent on about it."""
    traced = {key: ctx for key, ctx in parents.items() if ctx is not None}
    if not _enabled or not traced:
        yield {}
        return
    spans = {
        key: tracer.start_span(name, context=ctx, kind=SpanKind.CONSUMER, attributes=attributes)
        for key, ctx in traced.items()
    }
    carried = {key: _as_headers(trace.set_span_in_context(span)) for key, span in spans.items()}
    links = [Link(span.get_span_context()) for span in spans.values()]
    try:
        with tracer.start_as_current_span(
            f"{name} batch", kind=SpanKind.INTERNAL, links=links, attributes=attributes
        ):
            yield carried
    finally:
        for span in spans.values():
            span.end()


@contextmanager
def handing_over(record_headers: Headers | None, reservation_id: str) -> Iterator[trace.Span]:
    """A span continuing the trace a result carries, around its hand-over to
    the streams watching it (a no-op span when off or untraced)."""
    parent = extract(record_headers)
    if parent is None:
        yield trace.INVALID_SPAN
        return
    with tracer.start_as_current_span(
        "ticketing.notify",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={"ticketing.reservation_id": reservation_id},
    ) as span:
        yield span
