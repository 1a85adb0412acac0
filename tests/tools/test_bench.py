"""ticketing-bench against the real stack through nginx, as a user runs it."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from typing import Any

from ticketing_tools.stack import LocalStack

from ..helpers import (
    ADMIN_TOKEN,
    Gateway,
    Notifier,
    Reservations,
    consumers_paused,
    create_event,
    get_event,
    queue_drained,
    reserve,
    watch,
)

RESERVE = "ticketing.v1.GatewayService.Reserve"
WATCH = "ticketing.v1.NotifierService.WatchReservation"
PERCENTAGES = [10, 25, 50, 75, 90, 95, 99]


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str

    def report(self) -> dict[str, Any]:
        assert self.returncode == 0, self.stderr
        parsed: dict[str, Any] = json.loads(self.stdout)
        return parsed


async def bench(stack: LocalStack, *flags: str, timeout_s: float = 60) -> Ran:
    """``python -m ticketing_tools.bench.cli --insecure <flags> <endpoint>``"""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ticketing_tools.bench.cli",
        "--insecure",
        # Every call as the test administrator (a single subject).
        "-m",
        json.dumps({"authorization": f"Bearer {ADMIN_TOKEN}"}),
        *flags,
        stack.endpoint,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(timeout_s):
        out, err = await process.communicate()
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


def reserve_data(event_id: str) -> str:
    return f'{{"event_id":"{event_id}","quantity":1,"idempotency_key":"{{{{newUUID}}}}"}}'


def assert_ghz_shape(report: dict[str, Any]) -> None:
    for key in ("count", "total", "average", "fastest", "slowest"):
        assert type(report[key]) is int, key
    assert type(report["rps"]) is float
    assert isinstance(report["date"], str)
    assert report["endReason"] in ("normal", "timeout", "cancel")
    distribution = report["latencyDistribution"]
    assert [entry["percentage"] for entry in distribution] == PERCENTAGES
    latencies = [entry["latency"] for entry in distribution]
    assert all(type(latency) is int and latency > 0 for latency in latencies)
    assert latencies == sorted(latencies)
    assert report["fastest"] <= latencies[0] <= latencies[-1] <= report["slowest"]
    histogram = report["histogram"]
    assert len(histogram) == 11
    ok = report["statusCodeDistribution"].get("OK", 0)
    assert sum(bucket["count"] for bucket in histogram) == ok
    assert all(type(bucket["mark"]) is float for bucket in histogram)


async def test_closed_loop_reserve_reports_like_ghz_and_every_call_lands(
    stack: LocalStack, reservations: Reservations
) -> None:
    # One subject (the bench sends one token): its limit is the whole event.
    event = await create_event(reservations, capacity=500, per_user_limit=500)
    ran = await bench(
        stack,
        "--call",
        RESERVE,
        "-d",
        reserve_data(event.event_id),
        "-n",
        "200",
        "-c",
        "20",
        "-O",
        "json",
    )
    report = ran.report()
    assert report["count"] == 200
    assert report["statusCodeDistribution"] == {"OK": 200}
    assert report["errorDistribution"] == {}
    assert report["endReason"] == "normal"
    assert_ghz_shape(report)
    assert len(report["details"]) == 200
    assert {detail["status"] for detail in report["details"]} == {"OK"}
    options = report["options"]
    assert (options["call"], options["host"], options["insecure"]) == (
        RESERVE,
        stack.endpoint,
        True,
    )
    assert (options["total"], options["concurrency"], options["connections"]) == (200, 20, 1)
    assert options["load-schedule"] == "const"
    assert "reflection_unavailable" not in ran.stderr  # found by reflection through nginx

    # 200 distinct users (u0..u199) each got their seat once decided.
    await queue_drained(stack)
    assert (await get_event(reservations, event.event_id)).confirmed == 200


async def test_open_loop_rate_sends_on_the_clock_for_the_duration(
    stack: LocalStack, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=1000, per_user_limit=1000)
    report = (
        await bench(
            stack,
            "--call",
            RESERVE,
            "-d",
            reserve_data(event.event_id),
            "--arrival-rate",
            "100",
            "-z",
            "2s",
            "-c",
            "20",
            "-O",
            "json",
            "--skip-details",
        )
    ).report()
    assert 150 <= report["count"] <= 250
    assert report["endReason"] == "timeout"
    assert 1.9e9 <= report["total"] <= 3e9
    statuses = report["statusCodeDistribution"]
    assert set(statuses) <= {"OK", "Canceled"}  # calls in flight at 2 s are cancelled, as in ghz
    assert statuses["OK"] >= 150
    assert report["details"] is None
    options = report["options"]
    assert (options["rps"], options["async"], options["duration"]) == (100, True, 2_000_000_000)
    assert_ghz_shape(report)


async def test_server_streaming_watch_reports_ok_and_first_message_latency(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=5, per_user_limit=1)
    reply = await reserve(gateway, event.event_id, "streamer")
    await watch(notifier, reply.reservation_id)  # decided: each watch is snapshot, end
    report = (
        await bench(
            stack,
            "--call",
            WATCH,
            "-d",
            f'{{"reservation_id":"{reply.reservation_id}"}}',
            "-n",
            "20",
            "-c",
            "5",
            "-O",
            "json",
        )
    ).report()
    assert report["count"] == 20
    assert report["statusCodeDistribution"] == {"OK": 20}
    assert_ghz_shape(report)
    first = report["firstMessageLatencyDistribution"]
    assert [entry["percentage"] for entry in first] == PERCENTAGES
    assert 0 < report["firstMessageFastest"] <= report["firstMessageSlowest"] <= report["slowest"]


async def test_open_loop_keeps_sending_while_every_answer_is_pending(
    stack: LocalStack, gateway: Gateway, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=5, per_user_limit=1)
    with consumers_paused(stack):
        # Undecided while the consumers are stopped: every watch stays open.
        reply = await reserve(gateway, event.event_id, "patient")
        data = f'{{"reservation_id":"{reply.reservation_id}"}}'
        flags = ("--call", WATCH, "-d", data, "-z", "1s", "-c", "1", "-O", "json")
        arrivals = await bench(stack, *flags, "--arrival-rate", "50")
        limited = await bench(stack, *flags, "--rps", "50")
    report = arrivals.report()
    # One worker, no answer ever, and still about 50 calls: arrivals follow the
    # clock, not the replies. At the end of -z they are cancelled, as in ghz.
    assert 40 <= report["count"] <= 60
    assert report["statusCodeDistribution"] == {"Canceled": report["count"]}
    assert report["endReason"] == "timeout"
    assert report["latencyDistribution"] is None
    # --rps is ghz's rate limit on the closed loop: the one worker waits for
    # its answer, so one call is all it makes.
    report = limited.report()
    assert report["statusCodeDistribution"] == {"Canceled": 1}
    assert report["endReason"] == "timeout"


async def test_several_processes_merge_into_one_report(
    stack: LocalStack, reservations: Reservations
) -> None:
    # One subject (the bench sends one token): its limit is the whole event.
    event = await create_event(reservations, capacity=500, per_user_limit=500)
    report = (
        await bench(
            stack,
            "--call",
            RESERVE,
            "-d",
            reserve_data(event.event_id),
            "-n",
            "100",
            "-c",
            "10",
            "--connections",
            "2",
            "--cpus",
            "2",
            "-O",
            "json",
        )
    ).report()
    assert report["count"] == 100
    assert report["statusCodeDistribution"] == {"OK": 100}
    assert report["options"]["CPUs"] == 2
    assert len(report["details"]) == 100
    assert_ghz_shape(report)
    await queue_drained(stack)
    assert (await get_event(reservations, event.event_id)).confirmed == 100


async def test_an_unknown_method_fails_with_a_message(stack: LocalStack) -> None:
    ran = await bench(stack, "--call", "ticketing.v1.GatewayService.Nope", "-n", "1")
    assert ran.returncode == 1
    assert "method Nope not found in ticketing.v1.GatewayService" in ran.stderr
