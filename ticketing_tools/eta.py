"""``make eta``: how close is the estimated wait that WatchReservation
streams to the wait that follows? (BENCHMARKS.md, section 9.)

On a stack of its own: the consumers are stopped (SIGSTOP) while
``--requests`` requests are queued for one event, ``--watchers`` of them,
spread evenly over the line, are watched, and the consumers resume (SIGCONT)
and work the backlog off at their own steady pace. Every message a watcher
gets while its request is QUEUED and that carries an estimate is set against
the wait that followed it (until the decision reached that watcher). Prints
the error's p50 and p90, relative and in seconds, and whether any stream's
position ever went up; ``--json`` writes the whole report.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from notifier_service.settings import NotifierSettings
from ticketing.v1 import gateway_service_pb2 as gw
from ticketing.v1 import gateway_service_pb2_grpc as gw_grpc
from ticketing.v1 import notifier_service_pb2 as ns
from ticketing.v1 import notifier_service_pb2_grpc as ns_grpc
from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing.v1 import reservation_service_pb2_grpc as rs_grpc
from ticketing_common.auth import ADMIN
from ticketing_common.config import variable

from .stack import LocalStack, StackConfig
from .tokens import authorized_channel

QUEUED = pb.RESERVATION_STATUS_QUEUED


@dataclass
class Watched:
    reservation_id: str
    line_number: int  # 0-based, in the order the gateway answered
    reserve_position: int
    # (monotonic time, position, estimated wait in seconds or None), while QUEUED.
    queued: list[tuple[float, int, float | None]] = field(default_factory=list)
    decided_at: float | None = None
    placed: asyncio.Event = field(default_factory=asyncio.Event)


async def enqueue(
    gateway: gw_grpc.GatewayServiceAsyncStub, event_id: str, count: int, concurrency: int
) -> list[gw.ReserveResponse]:
    replies: list[gw.ReserveResponse | None] = [None] * count
    numbers = iter(range(count))

    async def worker() -> None:
        for n in numbers:
            replies[n] = await gateway.Reserve(
                gw.ReserveRequest(event_id=event_id, quantity=1, idempotency_key=uuid.uuid4().hex),
                timeout=30,
            )

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [r for r in replies if r is not None]


async def follow(notifier: ns_grpc.NotifierServiceAsyncStub, watched: Watched) -> None:
    """Records the stream until it ends (the decision is CONFIRMED: final)."""
    async for message in notifier.WatchReservation(
        ns.WatchReservationRequest(reservation_id=watched.reservation_id), timeout=600
    ):
        now = time.monotonic()
        if message.reservation.status != QUEUED:
            watched.decided_at = watched.decided_at or now
            continue
        place = message.queue_position
        wait = (
            place.estimated_wait.ToMilliseconds() / 1000
            if place.HasField("estimated_wait")
            else None
        )
        watched.queued.append((now, place.position, wait))
        watched.placed.set()


def consumers(stack: LocalStack, sig: signal.Signals) -> None:
    for child in stack.services["consumer_service"]:
        if child.alive():
            os.kill(child.pid, sig)


async def measure(stack: LocalStack, args: argparse.Namespace) -> dict[str, Any]:
    admin = stack.token("eta-admin", roles=(ADMIN,))
    buyer = stack.token("eta-buyer")
    async with (
        authorized_channel(stack.endpoint, admin) as admin_channel,
        authorized_channel(stack.endpoint, buyer) as channel,
    ):
        event = await rs_grpc.ReservationServiceStub(admin_channel).CreateEvent(
            rs.CreateEventRequest(
                name="eta", capacity=args.requests * 2, per_user_limit=args.requests * 2
            ),
            timeout=10,
        )
        event_id = event.event.event_id
        consumers(stack, signal.SIGSTOP)
        try:
            started = time.monotonic()
            gateway: gw_grpc.GatewayServiceAsyncStub = gw_grpc.GatewayServiceStub(channel)
            replies = await enqueue(gateway, event_id, args.requests, args.concurrency)
            enqueue_s = time.monotonic() - started
            step = max(1, len(replies) // args.watchers)
            sample = [
                Watched(r.reservation_id, n, r.queue_position.position)
                for n, r in enumerate(replies)
                if n % step == step - 1
            ]
            notifier: ns_grpc.NotifierServiceAsyncStub = ns_grpc.NotifierServiceStub(channel)
            tasks = [asyncio.create_task(follow(notifier, w)) for w in sample]
            # Every watcher has its first position before the queue moves.
            async with asyncio.timeout(60):
                await asyncio.gather(*(w.placed.wait() for w in sample))
        finally:
            consumers(stack, signal.SIGCONT)
        resumed = time.monotonic()
        async with asyncio.timeout(600):
            await asyncio.gather(*tasks)
        drained_s = max(w.decided_at or resumed for w in sample) - resumed
    return report(args, sample, enqueue_s=enqueue_s, drained_s=drained_s)


def report(
    args: argparse.Namespace, sample: list[Watched], *, enqueue_s: float, drained_s: float
) -> dict[str, Any]:
    relative: list[float] = []
    absolute: list[float] = []
    signed: list[float] = []
    first_relative: list[float] = []
    rose = 0
    above_reserve: list[int] = []
    for w in sample:
        positions = [p for _, p, _ in w.queued]
        if any(b > a for a, b in itertools.pairwise(positions)):
            rose += 1
        if positions and positions[0] > w.reserve_position:
            above_reserve.append(positions[0] - w.reserve_position)
        estimates = [(t, wait) for t, _, wait in w.queued if wait is not None]
        for n, (t, wait) in enumerate(estimates):
            assert w.decided_at is not None
            actual = w.decided_at - t
            if actual < args.min_wait_s:
                continue  # a wait this short is noise on this machine
            absolute.append(abs(wait - actual))
            signed.append((wait - actual) / actual)
            relative.append(abs(wait - actual) / actual)
            if n == 0:
                first_relative.append(relative[-1])

    def pct(values: list[float], q: int) -> float | None:
        if len(values) < 2:
            return values[0] if values else None
        return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 3)

    return {
        "requests": args.requests,
        "watchers": len(sample),
        "enqueue_s": round(enqueue_s, 1),
        "drain_s": round(drained_s, 1),
        "decisions_per_s": round(args.requests / drained_s) if drained_s else None,
        "estimates": len(relative),
        "relative_error": {"p50": pct(relative, 50), "p90": pct(relative, 90)},
        "absolute_error_s": {"p50": pct(absolute, 50), "p90": pct(absolute, 90)},
        # Above 0: the estimate said longer than the wait turned out.
        "signed_relative_error": {
            "p10": pct(signed, 10),
            "p50": pct(signed, 50),
            "p90": pct(signed, 90),
        },
        "first_estimate_relative_error": {
            "p50": pct(first_relative, 50),
            "p90": pct(first_relative, 90),
        },
        "streams_whose_position_rose": rose,
        # Reserve's figure is a bound up to the calls in flight with it: the
        # gateways number requests in the order Redis sees them, the broker
        # appends them in its own.
        "streams_placed_behind_their_reserve_answer": len(above_reserve),
        "most_places_behind": max(above_reserve, default=0),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="eta", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30_000, help="requests queued")
    parser.add_argument("--watchers", type=int, default=200, help="streams, spread over them")
    parser.add_argument("--concurrency", type=int, default=64, help="Reserve calls in flight")
    parser.add_argument(
        "--min-wait-s",
        type=float,
        default=0.5,
        help="estimates made less than this before the decision are left out",
    )
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    env = {variable(NotifierSettings, "max_watches_per_subject"): "0"}
    with LocalStack(StackConfig(listen_port=0), service_env=env) as stack:
        result = asyncio.run(measure(stack, args))
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
