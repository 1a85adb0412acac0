"""Each service's Prometheus endpoint, scraped around a rush through nginx:
the counts match what the rush did."""

from __future__ import annotations

import asyncio
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterable

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ticketing.v1 import reservation_pb2 as pb
from ticketing_tools.stack import LocalStack

from ..helpers import (
    CONFIRMED,
    QUEUED,
    REJECTED,
    SOLD_OUT,
    Gateway,
    Notifier,
    Reservations,
    consumers_paused,
    create_event,
    queue_drained,
    reserve,
    watch,
)

Sample = tuple[str, frozenset[tuple[str, str]]]
Samples = defaultdict[Sample, float]


def scrape(port: int) -> Samples:
    """Every sample of one endpoint, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    samples: Samples = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] += sample.value
    return samples


def scrape_all(stack: LocalStack, service: str) -> Samples:
    """The samples of every instance of ``service``, added up."""
    total: Samples = defaultdict(float)
    for child in stack.services[service]:
        if child.alive() and child.metrics_port:
            for sample, v in scrape(child.metrics_port).items():
                total[sample] += v
    return total


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


SERVICES = ("gateway", "consumer_service", "notifier_service", "reservation_service")


async def scrape_services(stack: LocalStack) -> dict[str, Samples]:
    return {
        service: await asyncio.to_thread(scrape_all, stack, service)
        for service in (*SERVICES, "payment_service")
    }


def methods(samples: Iterable[Sample]) -> set[str]:
    return {dict(labels).get("grpc_method", "") for name, labels in samples}


async def test_each_services_metrics_add_up_to_the_rush(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=40, per_user_limit=1)
    await queue_drained(stack)
    before = await scrape_services(stack)

    # The rush is queued and watched before any of it is decided (the
    # consumers frozen until every stream is open): each decision is then
    # handed to a watcher from the feed.
    with consumers_paused(stack):
        replies = await asyncio.gather(
            *(reserve(gateway, event.event_id, f"metrics-{n}") for n in range(60))
        )
        # One bad call: counted under its code.
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await reserve(gateway, event.event_id, "metrics-bad", quantity=0)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        queued = [r for r in replies if r.status == QUEUED]
        fast = [r for r in replies if r.status == REJECTED]
        assert len(queued) + len(fast) == 60
        # The notifier counts the open streams.
        streams = [asyncio.create_task(watch(notifier, r.reservation_id)) for r in queued]
        async with asyncio.timeout(30):
            while value(
                await asyncio.to_thread(scrape_all, stack, "notifier_service"),
                "ticketing_notifier_watch_streams",
                kind="reservation",
            ) < len(queued):
                await asyncio.sleep(0.05)
    finals = [(await s)[-1] for s in streams]
    outcomes = Counter((f.status, f.reject_reason) for f in finals)
    assert outcomes[(CONFIRMED, pb.REJECT_REASON_UNSPECIFIED)] == 40
    assert outcomes[(REJECTED, SOLD_OUT)] == len(queued) - 40
    await queue_drained(stack)
    after = await scrape_services(stack)
    gw, consumer, notif = after["gateway"], after["consumer_service"], after["notifier_service"]

    # Gateways: every Reserve counted once, with its code; the fast path's too.
    reserve_ok = {
        "grpc_service": "ticketing.v1.GatewayService",
        "grpc_method": "Reserve",
        "grpc_code": "OK",
    }
    assert delta(before["gateway"], gw, "grpc_server_handled_total", **reserve_ok) == 60
    invalid = {**reserve_ok, "grpc_code": "INVALID_ARGUMENT"}
    assert delta(before["gateway"], gw, "grpc_server_handled_total", **invalid) == 1
    assert delta(before["gateway"], gw, "grpc_server_started_total", grpc_method="Reserve") == 61
    assert (
        delta(before["gateway"], gw, "grpc_server_handling_seconds_count", grpc_method="Reserve")
        == 61
    )
    assert delta(before["gateway"], gw, "ticketing_gateway_sold_out_fast_path_total") == len(fast)
    assert delta(before["gateway"], gw, "ticketing_gateway_publish_seconds_count") == len(queued)
    assert value(gw, "ticketing_gateway_breaker_state") == 0

    # Consumers: every queued request decided once, by outcome and reason.
    decided = {
        ("confirmed", "none"): 40,
        ("rejected", "sold_out"): len(queued) - 40,
    }
    for (outcome, reason), count in decided.items():
        assert (
            delta(
                before["consumer_service"],
                consumer,
                "ticketing_decisions_total",
                outcome=outcome,
                reason=reason,
            )
            == count
        ), (outcome, reason)
    assert delta(before["consumer_service"], consumer, "ticketing_decisions_total") == len(queued)
    assert delta(
        before["consumer_service"], consumer, "ticketing_accept_to_decide_seconds_count"
    ) == len(queued)
    assert delta(before["consumer_service"], consumer, "ticketing_decision_batch_size_sum") == len(
        queued
    )
    assert delta(before["consumer_service"], consumer, "ticketing_lock_wait_seconds_count") >= 1
    assert delta(before["consumer_service"], consumer, "ticketing_fencing_refusals_total") == 0
    assert delta(before["consumer_service"], consumer, "ticketing_dead_letters_total") == 0
    seats = [
        v
        for (name, labels), v in consumer.items()
        if name == "ticketing_event_available_seats" and ("event_id", event.event_id) in labels
    ]
    assert seats and sum(seats) == 0
    # Drained: no partition lags.
    assert value(consumer, "ticketing_consumer_lag_records") == 0
    assert value(consumer, "ticketing_consumer_paused") == 0

    # Notifier: a stream per queued request, each ended OK; every decision
    # handed to its watcher.
    watch_ok = {"grpc_method": "WatchReservation", "grpc_code": "OK"}
    assert delta(before["notifier_service"], notif, "grpc_server_handled_total", **watch_ok) == (
        len(queued)
    )
    handed = delta(before["notifier_service"], notif, "ticketing_decide_to_stream_seconds_count")
    assert 0 < handed <= len(queued)
    assert value(notif, "ticketing_notifier_watch_streams", kind="reservation") == 0

    # Every service serves the RPC metrics of its own API (and health).
    assert "CreateEvent" in methods(after["reservation_service"])
