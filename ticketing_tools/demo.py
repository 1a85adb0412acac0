"""``make demo``: the seed scenario, the two designs side by side, and the
gRPC ceiling, measured in one run on this machine.

1. The ticket rush: an event with 100 seats; virtual users ramp 0 -> 500 in
   10 s, 500 -> 2,000 in 20 s, hold 2,000 for 20 s, ramp down to 0 in 10 s.
   Each arriving user reserves once and watches the outcome. Run against the
   queue design (``Reserve`` + ``WatchReservation``) and against the
   synchronous design (``ReserveSync``), each on its own event.
2. The seated rush: a seated event (10 sections x 10 rows x 20 seats and a
   standing floor), rushed by buyers through the gateway with the SDK: best
   available pairs anywhere, pairs in a named section, single seats, seats
   chosen from the map, a few asking for accessible seats. Checked: no seat
   in two reservations, every grant of several seats together in one row,
   the seat map as the reservations say; the map after it drawn as SVG.
3. The ceiling: ``ticketing-bench`` drives a bare grpc.aio echo server alone,
   the same behind the stack's nginx configuration, and the real gateway
   through nginx, with the same load.

It prints the report, writes it as JSON, a PNG chart and the seated rush's
seat map as SVG, and exits 1 when an invariant fails (seats sold, seats
left, an accepted request without an outcome, a seat given twice or apart,
the ledger).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt
from matplotlib import ticker

from ticketing.v1 import gateway_service_pb2 as gw
from ticketing.v1 import gateway_service_pb2_grpc as gw_grpc
from ticketing.v1 import payment_service_pb2 as ps
from ticketing.v1 import payment_service_pb2_grpc as ps_grpc
from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing.v1 import reservation_service_pb2_grpc as rs_grpc
from ticketing_client import (
    ApiError,
    Confirmed,
    Held,
    Outcome,
    Rejected,
    RetryPolicy,
    Seat,
    TicketingClient,
    WatchPolicy,
)
from ticketing_common.auth import ADMIN
from ticketing_common.codecs import encode_request
from ticketing_common.config import KafkaSettings
from ticketing_common.decisions import Request
from ticketing_common.kafka import new_producer
from ticketing_common.record_keys import RecordKeys
from ticketing_common.runtime import settings_or_exit

from . import seat_svg
from .bench.reserve import reserve_argv
from .ledger import committed_offsets, reconcile, seat_checks
from .stack import LocalStack, RunningStack, StackConfig, nginx
from .stack.launcher import STACK_RECORD_KEY_ID
from .stack.processes import Child, free_port, port_open, wait_until
from .tokens import SigningKey, authorized_channel, bearer

SEATS = 100
SPIKE_TIMEOUT_S = 300
# The held design: what a seat costs (EUR cents).
PRICE_MINOR = 5_000
# (seconds, virtual users at the end of the stage); the ramp starts at 0.
STAGES: tuple[tuple[float, int], ...] = ((10, 500), (20, 2_000), (20, 2_000), (10, 0))
CHANNELS = 8


def target_users(elapsed: float, stages: Sequence[tuple[float, int]] = STAGES) -> float:
    """Virtual users the ramp asks for ``elapsed`` seconds into the scenario."""
    start_users, start_time = 0.0, 0.0
    for duration, users in stages:
        if elapsed <= start_time + duration:
            return start_users + (users - start_users) * (elapsed - start_time) / duration
        start_users, start_time = float(users), start_time + duration
    return start_users


def scenario_length(stages: Sequence[tuple[float, int]] = STAGES) -> float:
    return sum(duration for duration, _ in stages)


@dataclass
class UserResult:
    sent_at: float
    answered_at: float | None = None
    code: str = "OK"
    final_at: float | None = None
    final_status: int = pb.RESERVATION_STATUS_UNSPECIFIED
    reject_reason: int = pb.REJECT_REASON_UNSPECIFIED
    # The held design: whether this user pays for a hold, and if it was held.
    payer: bool = False
    held: bool = False


@dataclass
class DesignRun:
    design: str
    event_id: str
    started_at: float
    users: list[UserResult] = field(default_factory=list)
    cpu_s: float = 0.0
    elapsed_s: float = 0.0


async def arrivals(
    spawn: Callable[[int], asyncio.Task[None]], stages: Sequence[tuple[float, int]]
) -> list[asyncio.Task[None]]:
    """Starts one user each time the ramp asks for one more than have come."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    tasks: list[asyncio.Task[None]] = []
    arrived = 0
    peak = max(users for _, users in stages)
    total = scenario_length(stages)
    while arrived < peak:
        elapsed = loop.time() - started
        wanted = peak if elapsed >= total else min(peak, math.floor(target_users(elapsed, stages)))
        while arrived < wanted:
            tasks.append(spawn(arrived))
            arrived += 1
        if elapsed >= total:
            break
        await asyncio.sleep(0.005)
    return tasks


# Each buyer makes one Reserve call, as each buyer of the synchronous design
# makes one ReserveSync call: the report sets the two designs' answers side
# by side, and a retry would hide the refusals it counts.
ONE_CALL = RetryPolicy(max_attempts=1, attempt_timeout_s=10, deadline_s=10)


async def queue_user(  # noqa: PLR0917 - one user's whole journey
    n: int,
    result: UserResult,
    channel: grpc.aio.Channel,
    event_id: str,
    key: SigningKey,
    payments: ps_grpc.PaymentServiceAsyncStub | None = None,
    watch_s: float = 60,
) -> None:
    """Reserves one seat and watches it to the end, through the client SDK
    over one of the demo's shared channels; with ``payments``, pays for a
    hold if the user is one of the payers (``result.payer``)."""
    loop = asyncio.get_running_loop()
    token = key.mint(f"user-{n}")  # each user is its own subject
    client = TicketingClient.over(
        channel, token=token, retry=ONE_CALL, watch=WatchPolicy(stream_timeout_s=watch_s)
    )
    try:
        answer = await client.reserve(event_id, 1)
    except ApiError as exc:
        result.answered_at, result.code = loop.time(), exc.code.name
        return
    result.answered_at = loop.time()
    if isinstance(answer, Rejected):
        # The gateway's sold-out fast path: final, and queued nowhere.
        result.final_at = result.answered_at
        result.final_status = pb.RESERVATION_STATUS_REJECTED
        result.reject_reason = answer.reason.value
        return
    try:
        async with (
            asyncio.timeout(watch_s),
            contextlib.aclosing(client.watch(answer.reservation_id)) as updates,
        ):
            async for update in updates:
                if isinstance(update, Held) and not result.held:
                    result.held = True
                    if payments is not None and result.payer:
                        await payments.Pay(
                            ps.PayRequest(
                                reservation_id=answer.reservation_id,
                                payment_method="test-ok",
                                idempotency_key="demo",
                            ),
                            timeout=10,
                            metadata=bearer(token),
                        )
                final = update.reservation
                if isinstance(update, Outcome) and update.settled and final is not None:
                    result.final_at = loop.time()
                    result.final_status = final.status
                    result.reject_reason = final.reject_reason
    except ApiError as exc:
        result.code = f"WATCH_{exc.code.name}"
    except grpc.aio.AioRpcError as exc:  # the payment
        result.code = f"WATCH_{exc.code().name}"
    except TimeoutError:  # as a stream of watch_s would have ended
        result.code = f"WATCH_{grpc.StatusCode.DEADLINE_EXCEEDED.name}"


async def sync_user(
    n: int,
    result: UserResult,
    gateway: gw_grpc.GatewayServiceAsyncStub,
    event_id: str,
    key: SigningKey,
) -> None:
    loop = asyncio.get_running_loop()
    try:
        reply = await gateway.ReserveSync(
            gw.ReserveSyncRequest(event_id=event_id, quantity=1, idempotency_key=uuid.uuid4().hex),
            timeout=10,
            metadata=bearer(key.mint(f"user-{n}")),
        )
    except grpc.aio.AioRpcError as exc:
        result.answered_at, result.code = loop.time(), exc.code().name
        return
    result.answered_at = result.final_at = loop.time()
    result.final_status = reply.reservation.status
    result.reject_reason = reply.reservation.reject_reason


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time so far of the processes and all their living
    descendants (PostgreSQL backends, nginx workers), each counted once."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the name: state, ppid, ... utime (12th), stime (13th); see proc(5)
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = int(fields[11]) + int(fields[12])
    wanted = set(pids)
    total = 0
    for pid, ticks_used in times.items():
        ancestor = pid
        while ancestor > 1 and ancestor not in wanted:
            ancestor = parents.get(ancestor, 0)
        if ancestor in wanted:
            total += ticks_used
    return total / ticks


@dataclass(frozen=True)
class Holds:
    """The held design: seats held ``hold_s`` for payment; of the users who
    get a hold, the share ``payers`` pays (every user whose number modulo 10
    is below ``payers`` x 10)."""

    hold_s: float
    payers: float

    def pays(self, n: int) -> bool:
        return n % 10 < round(self.payers * 10)


async def run_design(
    design: str, target: Target, stages: Sequence[tuple[float, int]], holds: Holds | None = None
) -> DesignRun:
    endpoint, pids, key = target.endpoint, target.pids, target.key
    channels = [authorized_channel(endpoint, target.admin_token) for _ in range(CHANNELS)]
    try:
        reservations = rs_grpc.ReservationServiceStub(channels[0])
        create = rs.CreateEventRequest(name=f"Rush ({design})", capacity=SEATS, per_user_limit=1)
        if design == "held" and holds is not None:
            create.price.CopyFrom(pb.Money(currency_code="EUR", amount_minor=PRICE_MINOR))
            create.hold_ttl.FromMilliseconds(round(holds.hold_s * 1000))
        event = (await reservations.CreateEvent(create, timeout=10)).event
        gateways = [gw_grpc.GatewayServiceStub(ch) for ch in channels]
        payments = [ps_grpc.PaymentServiceStub(ch) for ch in channels]
        # A waiting buyer may wait out several holds in a row.
        watch_s = 60 + (12 * holds.hold_s if holds else 0)
        loop = asyncio.get_running_loop()
        run = DesignRun(design, event.event_id, loop.time())
        cpu_before = cpu_seconds(pids)

        def spawn(n: int) -> asyncio.Task[None]:
            result = UserResult(sent_at=loop.time())
            run.users.append(result)
            lane = n % CHANNELS
            if design == "held" and holds is not None:
                result.payer = holds.pays(n)
                return asyncio.create_task(
                    queue_user(
                        n, result, channels[lane], event.event_id, key, payments[lane], watch_s
                    )
                )
            if design == "queue":
                return asyncio.create_task(
                    queue_user(n, result, channels[lane], event.event_id, key)
                )
            return asyncio.create_task(sync_user(n, result, gateways[lane], event.event_id, key))

        tasks = await arrivals(spawn, stages)
        await asyncio.gather(*tasks)
        # The rest of the scenario (hold, ramp-down) brings nobody new.
        await asyncio.sleep(max(0.0, run.started_at + scenario_length(stages) - loop.time()))
        run.elapsed_s = loop.time() - run.started_at
        run.cpu_s = cpu_seconds(pids) - cpu_before
        return run
    finally:
        for ch in channels:
            await ch.close(None)


def percentile(values: Sequence[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def _ms(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def summarize(run: DesignRun) -> dict[str, Any]:
    start = run.started_at
    users = run.users
    answered = [u for u in users if u.answered_at is not None]
    # Every answered call counts, refusals included: a design that answers
    # UNAVAILABLE after a long wait must not look fast.
    reserve_ms = [(u.answered_at - u.sent_at) * 1000 for u in answered if u.answered_at is not None]
    finals = [u for u in users if u.final_at is not None]
    accept_to_final = [
        (u.final_at - u.answered_at) * 1000
        for u in finals
        if u.final_at is not None and u.answered_at is not None
    ]
    request_to_final = [(u.final_at - u.sent_at) * 1000 for u in finals if u.final_at is not None]
    confirmed = sorted(
        u.final_at
        for u in finals
        if u.final_status == pb.RESERVATION_STATUS_CONFIRMED and u.final_at is not None
    )
    errors: dict[str, int] = {}
    for u in users:
        if u.code != "OK":
            errors[u.code] = errors.get(u.code, 0) + 1
    seconds = math.ceil(run.elapsed_s) or 1
    sent_per_s = [0] * seconds
    done_per_s = [0] * seconds
    for u in users:
        sent_per_s[min(seconds - 1, int(u.sent_at - start))] += 1
        if u.final_at is not None:
            done_per_s[min(seconds - 1, int(u.final_at - start))] += 1
    accepted = [u for u in users if u.code in ("OK",) or u.code.startswith("WATCH_")]
    last_sent = max((u.sent_at for u in users), default=start)
    last_final = max((u.final_at for u in finals if u.final_at is not None), default=start)
    return {
        "design": run.design,
        "event_id": run.event_id,
        "users": len(users),
        "reserve_latency_ms": _ms(reserve_ms),
        "accept_to_final_ms": _ms(accept_to_final),
        "request_to_final_ms": _ms(request_to_final),
        "errors": errors,
        "timeouts": errors.get("DEADLINE_EXCEEDED", 0),
        "accepted": len(accepted),
        "accepted_without_outcome": sum(1 for u in accepted if u.final_at is None),
        "confirmed_seen": len(confirmed),
        # With holds: the last seat paid (or, without, the last one sold).
        "sold_out_after_s": (confirmed[SEATS - 1] - start) if len(confirmed) >= SEATS else None,
        "held_users": sum(1 for u in users if u.held),
        "paying_holders": sum(1 for u in users if u.held and u.payer),
        "last_outcome_after_last_request_s": last_final - last_sent,
        "requests_per_s": sent_per_s,
        "outcomes_per_s": done_per_s,
        "cpu_s": round(run.cpu_s, 2),
        "elapsed_s": round(run.elapsed_s, 2),
    }


async def event_state(target: Target, event_id: str) -> pb.Event:
    async with authorized_channel(target.endpoint, target.admin_token) as channel:
        reply = await rs_grpc.ReservationServiceStub(channel).GetEvent(
            rs.GetEventRequest(event_id=event_id), timeout=10
        )
    return reply.event


# -- the ceiling ------------------------------------------------------------


def bench(
    target: str, event_id: str, *, token: str, duration: str, concurrency: int, connections: int
) -> dict[str, Any]:
    """One ``ticketing-bench`` run (closed loop: as fast as answers come)."""
    load = ["-z", duration, "-c", str(concurrency), "--connections", str(connections)]
    argv = reserve_argv(target, event_id, token, load)
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=600)
    report: dict[str, Any] = json.loads(out.stdout)
    statuses: dict[str, int] = report["statusCodeDistribution"] or {}
    if set(statuses) != {"OK"}:
        raise RuntimeError(f"{target}: calls failed during the ceiling run: {statuses}")
    latencies = {d["percentage"]: d["latency"] for d in report["latencyDistribution"]}
    return {
        "target": target,
        "rps": round(float(report["rps"]), 1),
        "count": report["count"],
        "p50_ms": latencies.get(50, 0) / 1e6,
        "p99_ms": latencies.get(99, 0) / 1e6,
        "status": report["statusCodeDistribution"],
    }


class EchoFleet:
    """Two echo servers and an nginx with the stack's configuration in front."""

    def __init__(self, backends: int = 2) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="ticketing-echo-"))
        self.children: list[Child] = []
        self.addresses: list[str] = []
        self.nginx_port = 0
        try:
            self._start(backends)
        except BaseException:
            self.stop()
            raise

    def _start(self, backends: int) -> None:
        for n in range(backends):
            port = free_port()
            child = Child(
                f"echo-{n}",
                [sys.executable, "-m", "ticketing_tools.echo", "--port", str(port)],
                self.tmp / f"echo-{n}.log",
                port=port,
            )
            child.start()
            self.children.append(child)
            self.addresses.append(f"127.0.0.1:{port}")
        for child in self.children:
            port = child.port or 0
            wait_until(partial(port_open, port), timeout_s=20, what=child.name)
        self.nginx_port = free_port()
        prefix = self.tmp / "nginx"
        prefix.mkdir()
        conf = prefix / "nginx.conf"
        conf.write_text(
            nginx.render(
                listen=f"127.0.0.1:{self.nginx_port}",
                backends={name: self.addresses for name in dict.fromkeys(nginx.ROUTES.values())},
                prefix=prefix,
                error_log=self.tmp / "nginx-error.log",
            )
        )
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        proxy = Child(
            "echo-nginx",
            [binary, "-p", str(prefix), "-c", str(conf)],
            self.tmp / "nginx.log",
            port=self.nginx_port,
        )
        proxy.start()
        self.children.append(proxy)
        wait_until(lambda: port_open(self.nginx_port), timeout_s=20, what="echo nginx")

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


# -- the seated rush ----------------------------------------------------------

# 10 sections x 10 rows x 20 seats, best first, then a standing floor.
SEATED_SECTIONS = "ABCDEFGHIJ"
SECTION_NAMES = (
    "Front stalls",
    "Stalls left",
    "Stalls right",
    "Rear stalls",
    "Circle left",
    "Circle centre",
    "Circle right",
    "Balcony left",
    "Balcony centre",
    "Balcony right",
)
SEATED_ROWS = 10
SEATED_SEATS = 20
STANDING = "floor"
STANDING_PLACES = 200
SEATED_BUYERS = 1_500
SEATED_LIMIT = 4
# Buyers arrive over this long (a rush, not one instant), then wait: short,
# so that the decide rate is the consumers' and not the arrivals'.
SEATED_RAMP_S = 1.0
SEATED_WATCH_S = 60.0
SEATED_SEED = 2026
SEAT_MAP_SVG = "demo-seat-map.svg"
# What each kind of buyer asks, for the report.
ASKS = {
    "pair": "2 together, anywhere",
    "section": "2 in a named section",
    "single": "1 seat, anywhere",
    "chosen": "seats chosen on the map",
}


def seated_plan() -> pb.SeatingPlan:
    """Seat ids ``<section>-<row>-<seat>`` (``B-03-11``), rows from the
    front. Each section keeps the two ends of its front row for those who
    need them; two seats in the middle of E's and F's back rows are blocked
    (the cameras)."""
    plan = pb.SeatingPlan()
    for section_id, name in zip(SEATED_SECTIONS, SECTION_NAMES, strict=True):
        section = plan.sections.add(section_id=section_id, name=name)
        for r in range(1, SEATED_ROWS + 1):
            row_id = f"{section_id}-{r:02d}"
            ids = [f"{row_id}-{n:02d}" for n in range(1, SEATED_SEATS + 1)]
            section.rows.add(
                row_id=row_id,
                seat_ids=ids,
                accessible_seat_ids=[ids[0], ids[-1]] if r == 1 else [],
                blocked_seat_ids=(
                    ids[SEATED_SEATS // 2 - 1 : SEATED_SEATS // 2 + 1]
                    if r == SEATED_ROWS and section_id in "EF"
                    else []
                ),
            )
    plan.sections.add(section_id=STANDING, name="Floor", capacity=STANDING_PLACES)
    return plan


@dataclass
class SeatedBuyer:
    """One buyer's ask and what came of it."""

    n: int
    # pair (2 together anywhere), section (2 in a named one), single, chosen
    kind: str
    quantity: int
    section_id: str = ""
    seat_ids: tuple[str, ...] = ()
    accessible: bool = False
    sent_at: float | None = None
    accepted: bool = False
    decided_at: float | None = None
    code: str = "OK"
    outcome: Outcome | None = None

    @property
    def seats(self) -> tuple[Seat, ...]:
        if isinstance(self.outcome, Confirmed | Held):
            return self.outcome.seats
        return ()


def _rows(seat_map: pb.SeatMap) -> dict[tuple[str, str], list[pb.SeatStatus]]:
    """The seated rows, each its seats in order along it (the map's order)."""
    rows: dict[tuple[str, str], list[pb.SeatStatus]] = {}
    for seat in seat_map.seats:
        rows.setdefault((seat.section_id, seat.row_id), []).append(seat)
    return rows


def _chosen(
    rng: random.Random, rows: Sequence[Sequence[pb.SeatStatus]], accessible: bool
) -> tuple[str, ...]:
    """Seats picked from the map as a buyer would: one or two next to each
    other, free and sellable to them; an accessible seat alone for a buyer
    who needs one."""
    while True:
        row = rng.choice(rows)
        if accessible:
            kept = [s.seat_id for s in row if s.accessible and s.state == pb.SEAT_STATE_AVAILABLE]
            if kept:
                return (rng.choice(kept),)
            continue
        count = rng.choice((1, 2))
        start = rng.randrange(len(row) - count + 1)
        picked = row[start : start + count]
        if all(s.state == pb.SEAT_STATE_AVAILABLE and not s.accessible for s in picked):
            return tuple(s.seat_id for s in picked)


def seated_asks(buyers: int, seat_map: pb.SeatMap, seed: int = SEATED_SEED) -> list[SeatedBuyer]:
    """What each buyer asks, drawn from one seeded generator: 60 % the best
    2 together anywhere, 20 % 2 in a named section (the floor among them),
    10 % a single seat, 10 % seats chosen from ``seat_map``; one in 25 asks
    for accessible seats."""
    rng = random.Random(seed)
    rows = list(_rows(seat_map).values())
    sections = [s.section_id for s in seat_map.sections]
    asks = []
    for n in range(buyers):
        draw, accessible = rng.random(), rng.random() < 0.04
        if draw < 0.6:
            asks.append(SeatedBuyer(n, "pair", 2, accessible=accessible))
        elif draw < 0.8:
            asks.append(SeatedBuyer(n, "section", 2, rng.choice(sections), accessible=accessible))
        elif draw < 0.9:
            asks.append(SeatedBuyer(n, "single", 1, accessible=accessible))
        else:
            chosen = _chosen(rng, rows, accessible)
            asks.append(SeatedBuyer(n, "chosen", 0, seat_ids=chosen, accessible=accessible))
    return asks


async def seated_buyer(
    buyer: SeatedBuyer, channel: grpc.aio.Channel, event_id: str, token: str
) -> None:
    """Reserves what ``buyer`` asks through the SDK, then watches it until
    it is decided (held or settled)."""
    loop = asyncio.get_running_loop()
    client = TicketingClient.over(
        channel,
        token=token,
        retry=ONE_CALL,
        watch=WatchPolicy(stream_timeout_s=SEATED_WATCH_S),
    )
    buyer.sent_at = loop.time()
    try:
        answer = await client.reserve(
            event_id,
            buyer.quantity,
            section_id=buyer.section_id,
            seat_ids=buyer.seat_ids,
            accessible=buyer.accessible,
        )
    except ApiError as exc:
        buyer.code = exc.code.name
        return
    buyer.accepted = True
    if isinstance(answer, Rejected):  # the sold-out fast path: nothing queued
        buyer.outcome, buyer.decided_at = answer, loop.time()
        return
    try:
        async with (
            asyncio.timeout(SEATED_WATCH_S),
            contextlib.aclosing(client.watch(answer.reservation_id)) as updates,
        ):
            async for update in updates:
                if isinstance(update, Held) or (isinstance(update, Outcome) and update.settled):
                    buyer.outcome, buyer.decided_at = update, loop.time()
                    break
    except ApiError as exc:
        buyer.code = f"WATCH_{exc.code.name}"
    except TimeoutError:
        buyer.code = f"WATCH_{grpc.StatusCode.DEADLINE_EXCEEDED.name}"


def _together(seats: Sequence[Seat], where: Mapping[str, tuple[tuple[str, str], int]]) -> bool:
    """All seats of one row, next to each other in its order (the map's);
    one place, or places of a standing section, are together as well."""
    if len(seats) < 2 or not any(s.row_id for s in seats):
        return True
    spots = [where.get(s.seat_id) for s in seats if s.row_id]
    if len(spots) != len(seats) or None in spots:
        return False
    rows = {spot[0] for spot in spots if spot is not None}
    index = sorted(spot[1] for spot in spots if spot is not None)
    return len(rows) == 1 and index == list(range(index[0], index[0] + len(index)))


def _grant_problems(buyers: Sequence[SeatedBuyer], seat_map: pb.SeatMap) -> list[str]:
    """Seats in two reservations, grants not together, accessible seats to
    those who did not ask, chosen seats other than asked."""
    where = {
        seat.seat_id: (key, i)
        for key, seats in _rows(seat_map).items()
        for i, seat in enumerate(seats)
    }
    accessible = {seat.seat_id for seat in seat_map.seats if seat.accessible}
    owners: Counter[str] = Counter()
    apart, unasked, other = [], [], []
    for buyer in buyers:
        seats = buyer.seats
        owners.update(s.seat_id for s in seats if s.row_id)
        unasked += [s.seat_id for s in seats if s.seat_id in accessible and not buyer.accessible]
        if not _together(seats, where):
            apart.append(buyer.n)
        if buyer.seat_ids and seats and sorted(s.seat_id for s in seats) != sorted(buyer.seat_ids):
            other.append(buyer.n)
    problems = []
    twice = sorted(seat for seat, times in owners.items() if times > 1)
    if twice:
        problems.append(f"seated: {len(twice)} seats in two reservations, e.g. {twice[:3]}")
    if apart:
        problems.append(
            f"seated: {len(apart)} grants not together in one row, e.g. buyers {apart[:3]}"
        )
    if unasked:
        problems.append(f"seated: accessible seats to buyers who did not ask: {unasked[:3]}")
    if other:
        problems.append(f"seated: {len(other)} buyers given other seats than they chose")
    return problems


def seated_problems(
    buyers: Sequence[SeatedBuyer], seat_map: pb.SeatMap, event: pb.Event
) -> list[str]:
    """What the rush broke, against the seat map and the event after it: a
    seat in two reservations, a grant of several seats not together in one
    row (adjacent in the row's order), an accessible seat to a buyer who did
    not ask, chosen seats other than those asked, the map's seats or the
    sections' and the event's counts not as the reservations say, an
    accepted request without an outcome."""
    problems = _grant_problems(buyers, seat_map)
    granted = {s.seat_id for b in buyers for s in b.seats if s.row_id}
    taken = {
        s.seat_id for s in seat_map.seats if s.state in (pb.SEAT_STATE_SOLD, pb.SEAT_STATE_HELD)
    }
    if taken != granted:
        problems.append(
            f"seated: the map's taken seats are not the reservations' "
            f"({len(taken - granted)} taken without one, {len(granted - taken)} granted but free)"
        )
    places = Counter(s.section_id for b in buyers for s in b.seats)
    for section in seat_map.sections:
        if section.sold + section.held != places[section.section_id]:
            problems.append(
                f"seated: section {section.section_id} counts {section.sold + section.held} "
                f"taken, its reservations {places[section.section_id]}"
            )
    if event.confirmed + event.held != places.total():
        problems.append(
            f"seated: the event counts {event.confirmed + event.held} taken, "
            f"{places.total()} granted"
        )
    if event.capacity != event.available + event.held + event.confirmed:
        problems.append("seated: capacity != available + held + confirmed")
    lost = [b.n for b in buyers if b.accepted and b.outcome is None]
    if lost:
        problems.append(f"seated: {len(lost)} accepted requests without an outcome")
    return problems


def seated_summary(buyers: Sequence[SeatedBuyer], event: pb.Event) -> dict[str, Any]:
    decided = [b for b in buyers if b.decided_at is not None]
    sent = [b.sent_at for b in buyers if b.sent_at is not None]
    first, last_sent = min(sent, default=0.0), max(sent, default=0.0)
    last = max((b.decided_at for b in decided if b.decided_at is not None), default=first)
    reasons = Counter(b.outcome.reason.name for b in decided if isinstance(b.outcome, Rejected))
    by_kind: dict[str, dict[str, int]] = {}
    for b in buyers:
        kind = by_kind.setdefault(b.kind, {"asked": 0, "granted": 0})
        kind["asked"] += 1
        kind["granted"] += bool(b.seats)
        if isinstance(b.outcome, Rejected):
            kind[b.outcome.reason.name] = kind.get(b.outcome.reason.name, 0) + 1
    return {
        "event_id": event.event_id,
        "plan": {
            "sections": len(SEATED_SECTIONS),
            "rows": SEATED_ROWS,
            "seats_per_row": SEATED_SEATS,
            "standing_places": STANDING_PLACES,
            "capacity": event.capacity,
        },
        "buyers": len(buyers),
        "accessible_asks": sum(b.accessible for b in buyers),
        "granted": sum(bool(b.seats) for b in buyers),
        "rejected": dict(sorted(reasons.items())),
        "errors": dict(sorted(Counter(b.code for b in buyers if b.code != "OK").items())),
        "by_ask": by_kind,
        "seats_sold": event.confirmed,
        "seats_held": event.held,
        "seats_left": event.available,
        "decided": len(decided),
        "elapsed_s": round(last - first, 2),
        "last_decision_after_last_request_s": round(max(0.0, last - last_sent), 2),
        "decided_per_s": round(len(decided) / (last - first)) if last > first else None,
    }


async def seated_rush(
    target: Target, buyers: int, failures: list[str]
) -> tuple[dict[str, Any], str]:
    """The seated rush: its summary (broken invariants added to
    ``failures``) and the seat map after it as an SVG document."""
    channels = [authorized_channel(target.endpoint, target.admin_token) for _ in range(CHANNELS)]
    try:
        reservations = rs_grpc.ReservationServiceStub(channels[0])
        plan = seated_plan()
        create = rs.CreateEventRequest(
            name="Seated rush", per_user_limit=SEATED_LIMIT, seating_plan=plan
        )
        event = (await reservations.CreateEvent(create, timeout=10)).event

        async def seat_map() -> pb.SeatMap:
            reply = await reservations.GetSeatMap(
                rs.GetSeatMapRequest(event_id=event.event_id), timeout=10
            )
            return reply.seat_map

        # The buyers choosing seats look at the map as it is before the rush.
        asks = seated_asks(buyers, await seat_map())
        # Each buyer its own subject; signed before the rush, as tokens are
        # issued before a sale opens, so the rush measures the suite.
        tokens = [target.key.mint(f"seated-{n}") for n in range(buyers)]

        def spawn(n: int) -> asyncio.Task[None]:
            return asyncio.create_task(
                seated_buyer(asks[n], channels[n % CHANNELS], event.event_id, tokens[n])
            )

        tasks = await arrivals(spawn, ((SEATED_RAMP_S, buyers),))
        await asyncio.gather(*tasks)
        after = await seat_map()
        event = (
            await reservations.GetEvent(rs.GetEventRequest(event_id=event.event_id), timeout=10)
        ).event
    finally:
        for ch in channels:
            await ch.close(None)
    failures.extend(seated_problems(asks, after, event))
    pool = await asyncpg.create_pool(target.postgres_dsn, min_size=1, max_size=2)
    try:
        checks = await seat_checks(pool, event.event_id)
    finally:
        await pool.close()
    if not all(c.ok for c in checks):
        failures.append(f"seated: the ledger's seat checks fail: {[c for c in checks if not c.ok]}")
    names: Mapping[str, str] = {s.section_id: s.name for s in plan.sections}
    title = f"Seated rush: {buyers} buyers, the seat map after it (version {after.version})"
    return seated_summary(asks, event), seat_svg.render(after, names, title=title)


# -- the spike ----------------------------------------------------------------


async def spike(target: Target, requests: int) -> dict[str, Any]:
    """Appends ``requests`` records for one 100-seat event straight to the
    requests topic, then times until the consumers have decided, published
    and committed them all."""
    async with authorized_channel(target.endpoint, target.admin_token) as channel:
        event = (
            await rs_grpc.ReservationServiceStub(channel).CreateEvent(
                rs.CreateEventRequest(name="spike", capacity=SEATS, per_user_limit=1), timeout=10
            )
        ).event
    producer = new_producer(target.kafka, client_id="demo-spike", linger_ms=5)
    await producer.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        pending = []
        now = datetime.now(UTC)
        for n in range(requests):
            user = f"spike-{n}"
            rid = target.record_keys.reservation_id(user, "k", event.event_id)
            request = Request(rid, event.event_id, user, 1, "k", now)
            pending.append(
                await producer.send(
                    target.kafka.requests_topic,
                    encode_request(request, target.record_keys),
                    key=event.event_id.encode(),
                )
            )
        acked = await asyncio.gather(*pending)
    finally:
        await producer.stop()
    appended = loop.time()
    ends: dict[int, int] = {}
    for meta in acked:
        ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
    async with asyncio.timeout(SPIKE_TIMEOUT_S):
        while True:
            done = await committed_offsets(
                target.kafka,
                target.kafka.consumer_group,
                target.kafka.requests_topic,
                ends,
            )
            if all(done.get(p, 0) >= end for p, end in ends.items()):
                break
            await asyncio.sleep(0.05)
    drained = loop.time()
    final = await event_state(target, event.event_id)
    return {
        "requests": requests,
        "append_s": round(appended - started, 2),
        "drain_after_append_s": round(drained - appended, 2),
        "total_s": round(drained - started, 2),
        # Over the whole spike: deciding starts while the records still arrive.
        "decisions_per_s": round(requests / (drained - started)),
        "seats_sold": final.confirmed,
        "seats_left": final.available,
        "event_id": event.event_id,
    }


# -- report -----------------------------------------------------------------


def chart(runs: Sequence[DesignRun], path: Path) -> None:
    """Two panels over the rush: each call's Reserve latency, and arrivals
    against outcomes per second. Both designs get the same arrivals, drawn
    once; the time axis ends with the last answer."""
    fig, (latency, throughput) = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    last_s = 1.0
    for run, colour, marker in zip(runs, ("tab:blue", "tab:red"), ("o", "x"), strict=False):
        points = [
            (u.sent_at - run.started_at, (u.answered_at - u.sent_at) * 1000)
            for u in run.users
            if u.answered_at is not None
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            last_s = max(last_s, *xs)
            latency.scatter(
                xs, ys, s=4, alpha=0.5, color=colour, label=f"{run.design}: Reserve latency"
            )
        summary = summarize(run)
        sent = summary["requests_per_s"]
        done = summary["outcomes_per_s"]
        assert isinstance(sent, list) and isinstance(done, list)
        if run is runs[0]:
            throughput.plot(
                range(len(sent)),
                sent,
                color="tab:gray",
                linewidth=7,
                alpha=0.5,
                label="requests/s (the same for both designs)",
            )
        throughput.plot(
            range(len(done)),
            done,
            color=colour,
            marker=marker,
            markersize=3,
            label=f"{run.design}: outcomes/s",
        )
        last_s = max(last_s, *(i for i, n in enumerate(done) if n), 0)
    latency.set_yscale("log")
    # Plain milliseconds on the log axis, not powers of ten.
    latency.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    latency.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    latency.yaxis.set_minor_formatter(ticker.NullFormatter())
    latency.set_ylabel("Reserve latency (ms, log scale)")
    latency.grid(True, which="major", alpha=0.3)
    latency.legend(loc="upper right")
    throughput.set_xlim(-0.5, last_s + 2)
    throughput.set_xlabel("seconds into the rush")
    throughput.set_ylabel("per second")
    throughput.grid(True, alpha=0.3)
    throughput.legend(loc="upper left")
    fig.suptitle(f"Ticket rush: {SEATS} seats, users ramping 0 -> 500 -> 2,000 -> 0")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(
    report: dict[str, Any],
    runs: Sequence[DesignRun],
    out_dir: Path,
    seat_map_svg: str | None = None,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "demo-report.json").write_text(json.dumps(report, indent=2, default=str))
    if runs:
        chart(runs, out_dir / "demo-report.png")
    if seat_map_svg is not None:
        (out_dir / SEAT_MAP_SVG).write_text(seat_map_svg, encoding="utf-8")


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def print_report(report: dict[str, Any]) -> None:
    designs = report["designs"]
    assert isinstance(designs, list)
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        (
            "Reserve latency p50 / p95 / p99 / max (ms)",
            lambda d: " / ".join(
                _fmt(d["reserve_latency_ms"][k]) for k in ("p50", "p95", "p99", "max")
            ),
        ),
        (
            "accept -> final p50 / p95 / p99 (ms)",
            lambda d: (
                "(inline)"
                if d["design"] == "sync"
                else " / ".join(_fmt(d["accept_to_final_ms"][k]) for k in ("p50", "p95", "p99"))
            ),
        ),
        (
            "request -> final p50 / p99 (ms)",
            lambda d: " / ".join(_fmt(d["request_to_final_ms"][k]) for k in ("p50", "p99")),
        ),
        ("errors (by code)", lambda d: json.dumps(d["errors"]) if d["errors"] else "none"),
        ("timeouts", lambda d: _fmt(d["timeouts"])),
        ("seats sold / left", lambda d: f"{d['seats_sold']} / {d['seats_left']}"),
        ("sold out after (s)", lambda d: _fmt(d["sold_out_after_s"])),
        ("users held / of them paying", lambda d: f"{d['held_users']} / {d['paying_holders']}"),
        (
            "last outcome after last request (s)",
            lambda d: _fmt(d["last_outcome_after_last_request_s"]),
        ),
        ("accepted without an outcome", lambda d: _fmt(d["accepted_without_outcome"])),
        ("CPU used by the stack (s)", lambda d: _fmt(d["cpu_s"])),
    ]
    width = max(len(name) for name, _ in rows)
    print("\n" + " " * width + "  " + "  ".join(f"{d['design']:>28}" for d in designs))
    for name, cell in rows:
        print(f"{name:<{width}}  " + "  ".join(f"{cell(d):>28}" for d in designs))
    ceiling = report.get("ceiling")
    if isinstance(ceiling, dict):
        print("\nThroughput ceiling (ticketing-bench, closed loop, same load):")
        for name in ("echo", "echo_nginx", "gateway_nginx"):
            run = ceiling[name]
            print(
                f"  {name:<14} {run['rps']:>9} req/s   "
                f"p50 {run['p50_ms']:.1f} ms   p99 {run['p99_ms']:.1f} ms"
            )
        print(
            f"  gateway through nginx = {ceiling['gateway_vs_echo_nginx']:.0%} "
            "of the echo server behind the same nginx"
        )
        fast = ceiling["sold_out_gateway_nginx"]
        print(
            f"  sold out (fast path) {fast['rps']:>9} req/s   p50 {fast['p50_ms']:.1f} ms   "
            f"p99 {fast['p99_ms']:.1f} ms = {ceiling['sold_out_vs_echo_nginx']:.0%} of the echo "
            "server behind the same nginx"
        )
    seated = report.get("seated")
    if isinstance(seated, dict):
        print_seated(seated)
    burst = report.get("spike")
    if isinstance(burst, dict):
        print(
            f"\nSpike: {burst['requests']} requests appended in {burst['append_s']} s, all decided "
            f"{burst['drain_after_append_s']} s later, {burst['total_s']} s in all "
            f"({burst['decisions_per_s']} decisions/s); {burst['seats_sold']} seats sold"
        )
    ledger = report.get("ledger")
    if isinstance(ledger, dict):
        print(
            f"\nLedger: {ledger['accepted']} accepted = {ledger['decided']} decided + "
            f"{ledger['dead_lettered']} dead-lettered + {ledger['queued']} queued "
            f"({'balanced' if ledger['balanced'] else 'NOT BALANCED'}; "
            f"seats {'ok' if ledger['seats_ok'] else 'BROKEN'})"
        )
    failures = report["failures"]
    assert isinstance(failures, list)
    print("\nInvariants: " + ("all hold" if not failures else "FAILED: " + "; ".join(failures)))


def print_seated(seated: Mapping[str, Any]) -> None:
    plan = seated["plan"]
    print(
        f"\nSeated rush: {seated['buyers']} buyers ({seated['accessible_asks']} asking for "
        f"accessible seats) on {plan['sections']} sections x {plan['rows']} rows x "
        f"{plan['seats_per_row']} seats and {plan['standing_places']} standing places "
        f"({plan['capacity']} for sale)"
    )
    rejected = ", ".join(f"{name} {n}" for name, n in seated["rejected"].items()) or "none"
    errors = json.dumps(seated["errors"]) if seated["errors"] else "none"
    print(f"  granted {seated['granted']}; rejected: {rejected}; errors: {errors}")
    for kind, n in seated["by_ask"].items():
        refused = ", ".join(f"{k} {v}" for k, v in n.items() if k not in ("asked", "granted"))
        print(
            f"    {ASKS.get(kind, kind):<24} {n['granted']:>5} of {n['asked']:>5} granted"
            + (f"; {refused}" if refused else "")
        )
    print(
        f"  seats sold {seated['seats_sold']}, held {seated['seats_held']}, left "
        f"{seated['seats_left']}; {seated['decided']} decided in {seated['elapsed_s']} s "
        f"({_fmt(seated['decided_per_s'])}/s), the last "
        f"{seated['last_decision_after_last_request_s']} s after the last request"
    )


# -- main -------------------------------------------------------------------


@dataclass
class Target:
    endpoint: str
    postgres_dsn: str
    kafka: KafkaSettings
    pids: list[int]
    # Mints the tokens of the demo's users and of its administrator.
    key: SigningKey
    # Derives the ids of the records the spike appends straight to the
    # queue, and signs them.
    record_keys: RecordKeys

    @property
    def admin_token(self) -> str:
        return self.key.mint("demo-admin", roles=(ADMIN,))


async def check_run(run: DesignRun, target: Target, failures: list[str]) -> dict[str, Any]:
    """The run's summary, with the event's final seats; broken invariants are
    added to ``failures``."""
    summary = summarize(run)
    event = await event_state(target, run.event_id)
    summary["seats_sold"], summary["seats_left"] = event.confirmed, event.available
    if event.capacity != event.available + event.confirmed + event.held:
        failures.append(f"{run.design}: capacity != available + held + confirmed")
    if summary["confirmed_seen"] != event.confirmed:
        failures.append(
            f"{run.design}: {summary['confirmed_seen']} users told CONFIRMED, "
            f"{event.confirmed} seats sold"
        )
    if run.design in ("queue", "held"):
        if event.confirmed != SEATS or event.available != 0 or event.held != 0:
            failures.append(
                f"{run.design}: {event.confirmed} seats sold, {event.held} held, "
                f"{event.available} left"
            )
        if summary["accepted_without_outcome"]:
            failures.append(
                f"{run.design}: {summary['accepted_without_outcome']} accepted requests "
                "without an outcome"
            )
    if run.design == "held":
        unpaid = [
            u
            for u in run.users
            if u.final_status == pb.RESERVATION_STATUS_CONFIRMED and not u.payer
        ]
        if unpaid:
            failures.append(f"held: {len(unpaid)} seats confirmed for users who never paid")
    elif run.design == "sync" and event.confirmed > SEATS:
        failures.append(f"sync: {event.confirmed} seats sold")
    return summary


async def ceiling(target: Target, seconds: int) -> dict[str, Any]:
    """Echo alone, echo behind the stack's nginx configuration, gateway behind
    the stack's nginx: the same closed-loop load against each."""
    print(
        f"gRPC ceiling: echo alone, echo behind nginx, gateway behind nginx ({seconds} s each)...",
        flush=True,
    )
    async with authorized_channel(target.endpoint, target.admin_token) as channel:
        event = (
            await rs_grpc.ReservationServiceStub(channel).CreateEvent(
                rs.CreateEventRequest(name="bench", capacity=10_000_000, per_user_limit=10_000_000),
                timeout=10,
            )
        ).event
    # One subject for the whole load (its per-user limit is set out of reach):
    # the ceiling measures the gateway, token verification included.
    load = partial(
        bench,
        event_id=event.event_id,
        token=target.key.mint("bench", ttl_s=3600),
        duration=f"{seconds}s",
        concurrency=64,
        connections=8,
    )
    fleet = await asyncio.to_thread(EchoFleet)
    try:
        echo = await asyncio.to_thread(load, fleet.addresses[0])
        echo_nginx = await asyncio.to_thread(load, f"127.0.0.1:{fleet.nginx_port}")
    finally:
        await asyncio.to_thread(fleet.stop)
    gateway = await asyncio.to_thread(load, target.endpoint)
    sold_out = await sold_out_event(target)
    fast_path = await asyncio.to_thread(partial(load, event_id=sold_out), target.endpoint)
    return {
        "load": {"duration_s": seconds, "concurrency": 64, "connections": 8},
        "echo": echo,
        "echo_nginx": echo_nginx,
        "gateway_nginx": gateway,
        "gateway_vs_echo_nginx": gateway["rps"] / max(echo_nginx["rps"], 1e-9),
        "sold_out_gateway_nginx": fast_path,
        "sold_out_vs_echo_nginx": fast_path["rps"] / max(echo_nginx["rps"], 1e-9),
    }


async def sold_out_event(target: Target) -> str:
    """An event whose one seat is sold, once every gateway answers its
    requests on the sold-out fast path."""
    async with authorized_channel(target.endpoint, target.admin_token) as channel:
        event = (
            await rs_grpc.ReservationServiceStub(channel).CreateEvent(
                rs.CreateEventRequest(name="sold out", capacity=1, per_user_limit=1), timeout=10
            )
        ).event
        buyer = TicketingClient.over(channel, token=target.key.mint("sold-out"))
        in_a_row = 0
        async with asyncio.timeout(30):
            while in_a_row < CHANNELS:
                # Rejected at once, nothing queued: the gateway's fast path.
                fast = isinstance(await buyer.reserve(event.event_id, 1), Rejected)
                in_a_row = in_a_row + 1 if fast else 0
                if not fast:
                    await asyncio.sleep(0.2)
    return str(event.event_id)


async def demo(
    target: Target,
    *,
    out_dir: Path,
    stages: Sequence[tuple[float, int]],
    ceiling_s: int,
    designs: Sequence[str] = ("queue", "sync"),
    spike_requests: int = 0,
    holds: Holds | None = None,
    seated_buyers: int = 0,
) -> int:
    runs = []
    for design in designs:
        print(f"rush against the {design} design ({scenario_length(stages):.0f} s)...", flush=True)
        runs.append(await run_design(design, target, stages, holds))
    failures: list[str] = []
    summaries = [await check_run(run, target, failures) for run in runs]

    report: dict[str, Any] = {"seats": SEATS, "stages": stages, "designs": summaries}
    if runs:
        pool = await asyncpg.create_pool(target.postgres_dsn, min_size=1, max_size=2)
        try:
            ledger = await reconcile(target.kafka, pool, event_id=runs[0].event_id)
        finally:
            await pool.close()
        report["ledger"] = ledger.as_dict()
        if not (ledger.balanced and ledger.seats_ok and ledger.money_ok):
            failures.append("the ledger does not balance")

    seat_map_svg = None
    if seated_buyers:
        print(f"seated rush: {seated_buyers} buyers on a seated event...", flush=True)
        report["seated"], seat_map_svg = await seated_rush(target, seated_buyers, failures)
    if ceiling_s:
        report["ceiling"] = await ceiling(target, ceiling_s)
    if spike_requests:
        print(f"spike: {spike_requests} requests on one event at once...", flush=True)
        result = await spike(target, spike_requests)
        report["spike"] = result
        if (result["seats_sold"], result["seats_left"]) != (SEATS, 0):
            failures.append(f"spike: {result['seats_sold']} seats sold")
    report["failures"] = failures
    await asyncio.to_thread(write_outputs, report, runs, out_dir, seat_map_svg)
    print_report(report)
    seat_map = f"   seat map: {out_dir / SEAT_MAP_SVG}" if seat_map_svg is not None else ""
    print(
        f"\nreport: {out_dir / 'demo-report.json'}   chart: {out_dir / 'demo-report.png'}"
        + seat_map
    )
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path("build/demo"))
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="scale the ramp's users and durations (e.g. 0.1 for a quick look)",
    )
    parser.add_argument(
        "--ceiling-seconds",
        type=int,
        default=10,
        help="seconds per ceiling measurement; 0 skips it",
    )
    parser.add_argument("--no-rush", action="store_true", help="measure the ceiling only")
    parser.add_argument(
        "--steady",
        type=float,
        metavar="RPS",
        help="instead of the ramp: users arrive at RPS per second for --steady-seconds "
        "(queue design only), to measure accept -> outcome at a steady rate",
    )
    parser.add_argument("--steady-seconds", type=float, default=30.0)
    parser.add_argument(
        "--holds",
        type=float,
        metavar="SECONDS",
        help="run the rush on a priced event instead, its seats held this long for payment "
        "(the held design; alone, without the other designs)",
    )
    parser.add_argument(
        "--payers",
        type=float,
        default=0.7,
        help="with --holds: the share of users who pay for a hold (0 to 1, in tenths)",
    )
    parser.add_argument(
        "--spike",
        type=int,
        metavar="N",
        help="also append N requests for one event straight to the queue and time the drain",
    )
    parser.add_argument(
        "--seated",
        type=int,
        metavar="N",
        help=f"N buyers rush a seated event (0 skips it; by default {SEATED_BUYERS:,} scaled "
        "by --scale, and none with --no-rush, --steady or --holds)",
    )
    args = parser.parse_args(argv)
    stages = tuple((d * args.scale, max(1, round(u * args.scale)) if u else 0) for d, u in STAGES)
    designs: tuple[str, ...] = ("queue", "sync")
    if args.steady:
        # A linear ramp of arrived users is a constant arrival rate.
        stages = ((args.steady_seconds, round(args.steady * args.steady_seconds)),)
        designs = ("queue",)
    holds = None
    if args.holds:
        holds = Holds(args.holds, args.payers)
        designs = ("held",)
    seated = args.seated
    if seated is not None and seated < 0:
        parser.error("--seated: the number of buyers must not be negative")
    if seated is None:
        plain = not (args.no_rush or args.steady or args.holds)
        seated = max(1, round(SEATED_BUYERS * args.scale)) if plain else 0
    run = partial(
        demo,
        out_dir=args.out_dir,
        stages=stages,
        ceiling_s=args.ceiling_seconds,
        designs=() if args.no_rush else designs,
        spike_requests=args.spike or 0,
        holds=holds,
        seated_buyers=seated,
    )
    running = settings_or_exit(RunningStack)
    if running.endpoint:
        if not (running.signing_key_file and running.reservation_id_secret):
            raise SystemExit(
                "the running stack's env file names no signing key or id secret: restart make run"
            )
        if running.tls_ca_file:
            # Its numbers compare with the plaintext echo server behind nginx.
            raise SystemExit(
                "the running stack serves TLS: make demo measures a plaintext stack; "
                "run it beside `make run` without TLS=1"
            )
        target = Target(
            endpoint=running.endpoint,
            postgres_dsn=running.postgres_dsn,
            kafka=running.kafka,
            pids=list(running.pids),
            key=SigningKey.load(Path(running.signing_key_file)),
            record_keys=RecordKeys.single(
                STACK_RECORD_KEY_ID, (running.reservation_id_secret or "").encode()
            ),
        )
        raise SystemExit(asyncio.run(run(target)))
    print("no running stack found (make run): starting one for the demo...", flush=True)
    config = settings_or_exit(StackConfig).model_copy(update={"listen_port": 0, "tls": False})
    # The synchronous design is off unless turned on, as it is for benchmarks.
    with LocalStack(config, service_env={"TICKETING_GATEWAY_SYNC_ENABLED": "true"}) as stack:
        target = Target(
            stack.endpoint,
            stack.postgres_dsn,
            stack.kafka,
            [c.pid for c in stack.children if c.alive()],
            stack.signing_key,
            stack.record_keys,
        )
        code = asyncio.run(run(target))
    raise SystemExit(code)


if __name__ == "__main__":
    main()
