"""ticketing-bench: ghz's report built from synthetic latencies."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from ticketing_tools.bench import report
from ticketing_tools.bench.options import Options
from ticketing_tools.bench.report import RunSummary
from ticketing_tools.bench.tally import STATUS_NAMES, Tally, rpc_error, status_name

MS = 1_000_000
GHZ_KEYS = [
    "date",
    "endReason",
    "options",
    "count",
    "total",
    "average",
    "fastest",
    "slowest",
    "rps",
    "errorDistribution",
    "statusCodeDistribution",
    "latencyDistribution",
    "histogram",
    "details",
]


def options(**changes: Any) -> Options:
    base: dict[str, Any] = {
        "host": "127.0.0.1:50051",
        "call": "ticketing.v1.GatewayService.Reserve",
        "insecure": True,
        "data": '{"event_id":"e","user_id":"u{{.RequestNumber}}"}',
        "total": 100,
        "concurrency": 10,
        "format": "json",
    }
    base.update(changes)
    return Options(**base)


def summary(total_ns: int = 2_000 * MS, streaming: bool = False) -> RunSummary:
    return RunSummary(
        end_reason="normal",
        total_ns=total_ns,
        date=datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC),
        server_streaming=streaming,
    )


def tally_of(latencies_ns: list[int], keep_details: bool = True) -> Tally:
    tally = Tally(keep_details=keep_details)
    for index, latency in enumerate(latencies_ns):
        tally.record(latency, end_wall_ns=1_777_636_800_000_000_000 + index)
    return tally


def test_report_has_ghz_fields_in_ghz_order_with_integer_nanoseconds() -> None:
    latencies = [(index + 1) * MS for index in range(100)]  # 1 ms .. 100 ms
    built = report.build(options(), tally_of(latencies), summary())
    assert list(built) == GHZ_KEYS
    assert built["count"] == 100
    assert built["total"] == 2_000 * MS
    assert built["average"] == 50_500_000
    assert built["fastest"] == 1 * MS
    assert built["slowest"] == 100 * MS
    assert built["rps"] == pytest.approx(50.0)
    for key in ("count", "total", "average", "fastest", "slowest"):
        assert type(built[key]) is int
    assert type(built["rps"]) is float
    assert built["endReason"] == "normal"
    assert built["date"].startswith("2026-05-01T")
    assert built["statusCodeDistribution"] == {"OK": 100}
    assert built["errorDistribution"] == {}


def test_latency_distribution_is_ghz_nearest_rank_within_hdr_resolution() -> None:
    latencies = [(index + 1) * MS for index in range(100)]
    random.shuffle(latencies)
    distribution = report.build(options(), tally_of(latencies), summary())["latencyDistribution"]
    assert [entry["percentage"] for entry in distribution] == [10, 25, 50, 75, 90, 95, 99]
    for entry in distribution:
        assert type(entry["latency"]) is int
        exact = entry["percentage"] * MS  # rank p of 100 values 1..100 ms
        assert entry["latency"] == pytest.approx(exact, rel=1e-3)


def test_histogram_has_ghz_marks_and_counts_that_add_up() -> None:
    latencies = [10 * MS] * 5 + [15 * MS] * 20 + [25 * MS] * 10 + [110 * MS] * 2
    built = report.build(options(), tally_of(latencies), summary())
    histogram = built["histogram"]
    # ghz: fastest, then ten equal steps up to slowest (10 intervals, 11 marks).
    assert len(histogram) == report.HISTOGRAM_STEPS + 1
    marks = [bucket["mark"] for bucket in histogram]
    assert marks[0] == pytest.approx(0.010)
    assert marks[-1] == pytest.approx(0.110)
    assert marks == sorted(marks)
    assert all(isinstance(bucket["count"], int) for bucket in histogram)
    assert sum(bucket["count"] for bucket in histogram) == built["count"]
    assert sum(bucket["frequency"] for bucket in histogram) == pytest.approx(1.0)
    # Marks at 10, 20, 30, ... 110 ms; each counts latencies up to itself.
    counts = [bucket["count"] for bucket in histogram]
    assert counts == [5, 20, 10, 0, 0, 0, 0, 0, 0, 0, 2]


def test_errors_count_in_average_but_not_in_latencies() -> None:
    tally = tally_of([2 * MS, 4 * MS])
    unavailable = status_name(grpc.StatusCode.UNAVAILABLE)
    message = rpc_error(unavailable, "the queue is unavailable")
    tally.record(100 * MS, unavailable, message)
    tally.record(100 * MS, unavailable, message)
    tally.record(30 * MS, "InvalidArgument", rpc_error("InvalidArgument", "bad"))
    built = report.build(options(), tally, summary())
    assert built["count"] == 5
    assert built["average"] == (2 + 4 + 100 + 100 + 30) * MS // 5
    assert (built["fastest"], built["slowest"]) == (2 * MS, 4 * MS)
    assert built["statusCodeDistribution"] == {"OK": 2, "Unavailable": 2, "InvalidArgument": 1}
    assert built["errorDistribution"] == {
        "rpc error: code = Unavailable desc = the queue is unavailable": 2,
        "rpc error: code = InvalidArgument desc = bad": 1,
    }
    assert sum(bucket["count"] for bucket in built["histogram"]) == 2
    assert [detail["status"] for detail in built["details"]][-1] == "InvalidArgument"


def test_status_names_are_go_code_names() -> None:
    assert status_name(grpc.StatusCode.OK) == "OK"
    assert status_name(grpc.StatusCode.CANCELLED) == "Canceled"
    assert status_name(grpc.StatusCode.DEADLINE_EXCEEDED) == "DeadlineExceeded"
    assert status_name(grpc.StatusCode.RESOURCE_EXHAUSTED) == "ResourceExhausted"
    assert len(STATUS_NAMES) == len(grpc.StatusCode)


def test_details_follow_ghz_and_can_be_skipped() -> None:
    built = report.build(options(), tally_of([3 * MS, 5 * MS]), summary())
    first = built["details"][0]
    assert list(first) == ["timestamp", "latency", "error", "status"]
    assert first["latency"] == 3 * MS
    assert first["status"] == "OK"
    assert first["error"] == ""
    assert first["timestamp"].startswith("2026-05-01T")
    skipped = report.build(
        options(skip_details=True), tally_of([3 * MS], keep_details=False), summary()
    )
    assert skipped["details"] is None


def test_an_empty_run_reports_nulls_like_ghz() -> None:
    built = report.build(options(), Tally(keep_details=True), summary())
    assert built["count"] == 0
    assert built["rps"] == 0.0
    assert built["latencyDistribution"] is None
    assert built["histogram"] is None
    assert built["details"] is None


def test_options_use_ghz_names_and_units() -> None:
    built = report.build(options(rps=100, duration_ns=2 * 10**9, name="spike"), Tally(), summary())
    ghz = built["options"]
    assert ghz["call"] == "ticketing.v1.GatewayService.Reserve"
    assert ghz["host"] == "127.0.0.1:50051"
    assert ghz["insecure"] is True
    assert ghz["rps"] == 100
    assert ghz["concurrency"] == 10
    assert ghz["connections"] == 1
    assert ghz["timeout"] == 20 * 10**9
    assert ghz["duration"] == 2 * 10**9
    assert ghz["total"] == 2_147_483_647  # ghz ignores -n with -z and says so
    assert ghz["load-schedule"] == "const"
    assert ghz["concurrency-schedule"] == "const"
    assert ghz["CPUs"] == 1
    assert ghz["data"] == {"event_id": "e", "user_id": "u{{.RequestNumber}}"}
    assert built["name"] == "spike"
    assert list(built).index("name") == 1


def test_server_streaming_adds_first_message_latencies() -> None:
    tally = Tally()
    for latency, first in ((10 * MS, 2 * MS), (20 * MS, 4 * MS)):
        tally.record(latency, first_message_ns=first)
    built = report.build(options(), tally, summary(streaming=True))
    assert list(built)[: len(GHZ_KEYS)] == GHZ_KEYS
    assert built["firstMessageAverage"] == 3 * MS
    assert (built["firstMessageFastest"], built["firstMessageSlowest"]) == (2 * MS, 4 * MS)
    first_message = built["firstMessageLatencyDistribution"]
    assert [entry["percentage"] for entry in first_message] == [10, 25, 50, 75, 90, 95, 99]
    assert first_message[-1]["latency"] == 4 * MS
    assert built["slowest"] == 20 * MS  # the ghz fields stay time-to-last-message


def test_skip_first_leaves_out_the_first_calls() -> None:
    tally = Tally(skip_first=2)
    for latency in (900 * MS, 800 * MS, 5 * MS, 6 * MS):
        tally.record(latency)
    assert tally.count == 2
    assert tally.ok.slowest_ns == 6 * MS


def test_tallies_from_processes_merge_exactly() -> None:
    left, right = tally_of([1 * MS, 2 * MS]), tally_of([3 * MS, 40 * MS])
    right.record(7 * MS, "Unavailable", "rpc error: code = Unavailable desc = x")
    merged = Tally.merge([left.snapshot(), right.snapshot()])
    assert merged.count == 5
    assert merged.latency_sum_ns == 53 * MS
    assert (merged.ok.fastest_ns, merged.ok.slowest_ns) == (1 * MS, 40 * MS)
    assert merged.ok.count == 4
    assert merged.statuses == {"OK": 4, "Unavailable": 1}
    assert merged.details is not None
    assert len(merged.details) == 5


def test_renderings() -> None:
    built = report.build(options(), tally_of([1 * MS, 2 * MS, 3 * MS]), summary())
    assert json.loads(report.render(built, "json")) == built
    assert report.render(built, "pretty").startswith('{\n  "date"')
    text = report.render(built, "summary")
    for heading in (
        "Summary:",
        "Count:\t3",
        "Requests/sec:\t1.50",
        "Response time histogram:",
        "Latency distribution:",
        "  50 % in 2.00 ms",
        "Status code distribution:",
        "[OK]   3 responses",
    ):
        assert heading in text
    assert report.render(built, "csv").splitlines()[:2] == [
        "duration (ms),status,error",
        "1.00,OK,",
    ]


@pytest.mark.parametrize(
    ("nanos", "text"),
    [(999, "999 ns"), (12_345, "0.01 ms"), (2_500_000, "2.50 ms"), (1_500_000_000, "1.50 s")],
)
def test_durations_print_like_ghz(nanos: int, text: str) -> None:
    assert report.format_nanos(nanos) == text
