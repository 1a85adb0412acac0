"""One Reserve, traced from outside through nginx, is one trace across the
gateway, the broker, the consumer and the notifier (the stack's services
export to the test's in-memory span receiver, see conftest.py)."""

from __future__ import annotations

import asyncio
import secrets
import uuid

from ticketing.v1 import gateway_service_pb2 as gw

from ..helpers import CONFIRMED, Gateway, Notifier, Reservations, as_user, create_event, watch
from ..spans import Span, SpanCollector

SERVICES = {"gateway", "consumer_service", "notifier_service"}


async def test_one_reserve_is_one_connected_trace_across_three_processes(
    spans: SpanCollector, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=5)
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    reply = await gateway.Reserve(
        gw.ReserveRequest(event_id=event.event_id, quantity=1, idempotency_key=uuid.uuid4().hex),
        timeout=10,
        metadata=(*as_user("traced"), ("traceparent", f"00-{trace_id}-{caller_span}-01")),
    )
    assert (await watch(notifier, reply.reservation_id))[-1].status == CONFIRMED

    found: list[Span] = []
    async with asyncio.timeout(20):
        while not (
            {s.service for s in found} >= SERVICES and "ticketing.notify" in {s.name for s in found}
        ):
            await asyncio.sleep(0.1)
            found = spans.of_trace(trace_id)

    # Connected: every span's parent is the caller's span or one of the trace.
    ids = {s.span_id for s in found}
    assert all(s.parent_span_id in ids | {caller_span} for s in found), found
    by_id = {s.span_id: s for s in found}

    def chain(span: Span) -> list[tuple[str, str]]:
        steps = [(span.service, span.name)]
        while span.parent_span_id in by_id:
            span = by_id[span.parent_span_id]
            steps.append((span.service, span.name))
        return steps[::-1]

    (notify,) = [s for s in found if s.name == "ticketing.notify"]
    assert chain(notify) == [
        ("gateway", "/ticketing.v1.GatewayService/Reserve"),
        ("gateway", "ticketing.reservation-requests publish"),
        ("consumer_service", "ticketing.decide"),
        ("notifier_service", "ticketing.notify"),
    ]
    # The gateway's Redis work (the idempotency record) is in the trace too,
    # under its Reserve span.
    (server,) = [s for s in found if s.parent_span_id == caller_span]
    assert {
        s.name for s in found if s.parent_span_id == server.span_id and s.service == "gateway"
    } - {"ticketing.reservation-requests publish"}
