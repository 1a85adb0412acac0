"""ghz's report: the JSON document, the text summary and CSV details.

Field names, order, units and rules are ghz's (``runner/reporter.go``,
``printer/``): durations are integer nanoseconds; ``average`` covers every
call; ``fastest``, ``slowest``, ``latencyDistribution`` and ``histogram``
cover the calls without error; the histogram has 11 marks, ``fastest`` and
then ten equal steps up to ``slowest``, each counting the latencies above the
previous mark and up to its own; ``details`` is ``null`` when nothing was
recorded (or with ``--skip-details``).

Percentiles come from an HDR histogram (0.1 % resolution) with ghz's
nearest-rank rule, clamped to the exact fastest and slowest.

Extension, present only for server-streaming calls: ``firstMessageAverage``,
``firstMessageFastest``, ``firstMessageSlowest`` (integer ns) and
``firstMessageLatencyDistribution`` (like ``latencyDistribution``) describe
the time to the first message of successful calls; the ghz fields keep
ghz's meaning, the time to the end of the stream.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .durations import NANOS_PER_SECOND
from .options import Options
from .tally import Detail, Distribution, Tally

PERCENTILES = (10, 25, 50, 75, 90, 95, 99)
HISTOGRAM_STEPS = 10
_BAR = "\u220e"  # the bar character ghz draws the histogram with
_BAR_WIDTH = 40


@dataclass(frozen=True)
class RunSummary:
    """How a run ended, next to what it measured."""

    end_reason: str  # "normal", "timeout" or "cancel"
    total_ns: int
    date: datetime
    server_streaming: bool = False


# ---- numbers -----------------------------------------------------------------


def percentile_latencies(distribution: Distribution) -> list[dict[str, int]]:
    """ghz's latencyDistribution: the nearest-rank value (rank ceil(p% of n))."""
    bins = distribution.bins()
    total = sum(count for _, _, count in bins)
    if total == 0:
        return []
    result = []
    for percentage in PERCENTILES:
        rank = max(1, -(-percentage * total // 100))
        seen = 0
        value = distribution.slowest_ns
        for _, highest, count in bins:
            seen += count
            if seen >= rank:
                value = highest
                break
        value = min(max(value, distribution.fastest_ns), distribution.slowest_ns)
        # ghz leaves a zero-valued entry when a latency rounds to 0 s.
        result.append({"percentage": percentage, "latency": value} if value > 0 else _ZERO_ENTRY)
    return result


_ZERO_ENTRY = {"percentage": 0, "latency": 0}


def go_seconds(nanos: int) -> float:
    """Go's ``Duration.Seconds()``, computed the same way so marks print alike."""
    seconds, rest = divmod(nanos, 1_000_000_000)
    return seconds + rest / 1e9


def histogram_buckets(distribution: Distribution) -> list[dict[str, Any]]:
    """ghz's histogram: marks in seconds from fastest to slowest."""
    bins = distribution.bins()
    total = sum(count for _, _, count in bins)
    if total == 0:
        return []
    fastest, slowest = distribution.fastest_ns, distribution.slowest_ns
    low, high = go_seconds(fastest), go_seconds(slowest)
    width = (high - low) / HISTOGRAM_STEPS
    marks = [low + width * index for index in range(HISTOGRAM_STEPS)] + [high]
    counts = [0] * len(marks)
    bucket = 0
    for lowest, _, count in bins:
        # An HDR bin stands for its lowest value, kept within the exact extremes.
        value = go_seconds(min(max(lowest, fastest), slowest))
        while bucket < len(marks) - 1 and value > marks[bucket]:
            bucket += 1
        counts[bucket] += count
    return [
        {"mark": mark, "count": count, "frequency": count / total}
        for mark, count in zip(marks, counts, strict=True)
    ]


# ---- JSON --------------------------------------------------------------------


def go_time(timestamp_ns: int) -> str:
    """Go's JSON form of a time.Time (RFC 3339 with trimmed nanoseconds), local."""
    seconds, nanos = divmod(timestamp_ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=UTC).astimezone()
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + _go_offset(moment)


def go_date(moment: datetime) -> str:
    """Go's ``time.RFC3339``: whole seconds, ``Z`` for UTC."""
    local = moment.astimezone()
    return local.strftime("%Y-%m-%dT%H:%M:%S") + _go_offset(local)


def _go_offset(moment: datetime) -> str:
    offset = moment.utcoffset()
    if not offset:
        return "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def ghz_options(options: Options) -> dict[str, Any]:
    """ghz's runner.Options, field for field (``omitempty`` fields left out
    when zero, as Go's encoder does). ``--arrival-rate N`` is reported as what
    ghz would have run: ``"rps": N, "async": true``."""
    fields: list[tuple[str, Any, bool]] = [
        # (name, value, omit when empty)
        ("call", options.call, True),
        ("host", options.host, True),
        ("protoset", options.protoset, True),
        ("cacert", options.cacert, True),
        ("cert", options.cert, True),
        ("key", options.key, True),
        ("cname", options.cname, True),
        ("insecure", options.insecure, False),
        ("authority", options.authority, True),
        ("rps", options.const_rate, True),
        ("load-schedule", options.load_schedule, False),
        ("load-start", options.load_start, False),
        ("load-end", options.load_end, False),
        ("load-step", options.load_step, False),
        (
            "load-step-duration",
            _step_ns(options.load_schedule, options.load_step_duration_ns),
            False,
        ),
        ("load-max-duration", options.load_max_duration_ns, False),
        ("concurrency", options.concurrency, True),
        ("concurrency-schedule", options.concurrency_schedule, False),
        ("concurrency-start", options.concurrency_start, False),
        ("concurrency-end", options.concurrency_end, False),
        ("concurrency-step", options.concurrency_step, False),
        (
            "concurrency-step-duration",
            _step_ns(options.concurrency_schedule, options.concurrency_step_duration_ns),
            False,
        ),
        ("concurrency-max-duration", options.concurrency_max_duration_ns, False),
        ("total", options.reported_total, True),
        ("async", options.open_loop, True),
        ("connections", options.connections, True),
        ("duration", options.run_ns, True),
        ("timeout", options.timeout_ns, True),
        ("dial-timeout", options.connect_timeout_ns, True),
        ("keepalive", options.keepalive_ns, True),
        ("data", options.data_json(), True),
        ("binary", False, False),
        ("metadata", options.metadata_json(), True),
        ("CPUs", options.cpus, False),
        ("name", options.name, True),
        ("skipFirst", options.skip_first, True),
    ]
    return {name: value for name, value, omit in fields if not (omit and not value)}


def _step_ns(schedule: str, given_ns: int) -> int:
    """ghz sets the step of a ``line`` schedule to one second, and says so."""
    return NANOS_PER_SECOND if schedule == "line" else given_ns


def _first_message_fields(distribution: Distribution) -> dict[str, Any]:
    count = distribution.count
    return {
        "firstMessageAverage": distribution.sum_ns // count if count else 0,
        "firstMessageFastest": distribution.fastest_ns,
        "firstMessageSlowest": distribution.slowest_ns,
        "firstMessageLatencyDistribution": percentile_latencies(distribution) or None,
    }


def build(options: Options, tally: Tally, run: RunSummary) -> dict[str, Any]:
    """The report as ghz's JSON has it, keys in ghz's order."""
    report: dict[str, Any] = {"date": go_date(run.date)}
    if options.name:
        report["name"] = options.name
    report["endReason"] = run.end_reason
    report["options"] = ghz_options(options)
    counted = tally.count > 0
    ok = tally.ok
    report.update(
        {
            "count": tally.count,
            "total": run.total_ns,
            "average": tally.latency_sum_ns // tally.count if counted else 0,
            "fastest": ok.fastest_ns,
            "slowest": ok.slowest_ns,
            "rps": tally.count / (run.total_ns / 1e9) if counted and run.total_ns > 0 else 0.0,
            "errorDistribution": dict(tally.errors),
            "statusCodeDistribution": dict(tally.statuses),
            "latencyDistribution": percentile_latencies(ok) or None,
            "histogram": histogram_buckets(ok) or None,
            "details": _details(tally.details) if counted and tally.details else None,
        }
    )
    if options.tags:
        report["tags"] = dict(options.tags)
    if run.server_streaming:
        report.update(_first_message_fields(tally.first_message))
    return report


def _details(details: list[Detail]) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": go_time(detail.timestamp_ns),
            "latency": detail.latency_ns,
            "error": detail.error,
            "status": detail.status,
        }
        for detail in details
    ]


# ---- text --------------------------------------------------------------------


def format_nanos(nanos: int) -> str:
    """ghz's formatNanoUnit: ns below 10 µs, then ms, then s."""
    if nanos < 10_000:
        return f"{nanos} ns"
    millis = nanos / 1e6
    if millis < 1000:
        return f"{millis:4.2f} ms"
    return f"{millis / 1000:4.2f} s"


def _histogram_lines(buckets: list[dict[str, Any]]) -> list[str]:
    if not buckets:
        return []
    most = max(bucket["count"] for bucket in buckets)
    marks = [f"{bucket['mark'] * 1000:.3f}" for bucket in buckets]
    counts = [str(bucket["count"]) for bucket in buckets]
    mark_width, count_width = max(map(len, marks)), max(map(len, counts))
    lines = []
    for mark, count, bucket in zip(marks, counts, buckets, strict=True):
        bar = (bucket["count"] * _BAR_WIDTH + most // 2) // most if most else 0
        lines.append(
            f"  {mark:<{mark_width}} [{count}]{' ' * (count_width - len(count))} |{_BAR * bar}"
        )
    return lines


def _table(rows: list[tuple[str, str]]) -> list[str]:
    """``"  left\tright\t"`` lines through Go's tabwriter with padding 3:
    every cell padded to its column's width plus 3."""
    if not rows:
        return []
    first = max(len(left) for left, _ in rows) + 2 + 3
    second = max(len(right) for _, right in rows) + 3
    return [f"{'  ' + left:<{first}}{right:<{second}}" for left, right in rows]


def _distribution_lines(title: str, entries: list[dict[str, int]] | None) -> list[str]:
    lines = [f"{title}:"]
    for entry in entries or []:
        lines.append(f"  {entry['percentage']} % in {format_nanos(entry['latency'])} ")
    return lines


def summary(report: dict[str, Any]) -> str:
    """ghz's default text output."""
    lines = ["", "Summary:"]
    if report.get("name"):
        lines.append(f"  Name:\t\t{report['name']}")
    lines += [
        f"  Count:\t{report['count']}",
        f"  Total:\t{format_nanos(report['total'])}",
        f"  Slowest:\t{format_nanos(report['slowest'])}",
        f"  Fastest:\t{format_nanos(report['fastest'])}",
        f"  Average:\t{format_nanos(report['average'])}",
        f"  Requests/sec:\t{report['rps']:4.2f}",
        "",
        "Response time histogram:",
        *_histogram_lines(report["histogram"] or []),
        "",
        *_distribution_lines("Latency distribution", report["latencyDistribution"]),
    ]
    if "firstMessageLatencyDistribution" in report:
        lines += [
            "",
            "First message (server streaming):",
            f"  Slowest:\t{format_nanos(report['firstMessageSlowest'])}",
            f"  Fastest:\t{format_nanos(report['firstMessageFastest'])}",
            f"  Average:\t{format_nanos(report['firstMessageAverage'])}",
            "",
            *_distribution_lines(
                "First message latency distribution", report["firstMessageLatencyDistribution"]
            ),
        ]
    lines.append("")
    statuses = report["statusCodeDistribution"]
    if statuses:
        lines.append("Status code distribution:")
        lines += _table([(f"[{name}]", f"{count} responses") for name, count in statuses.items()])
        lines.append("")
    errors = report["errorDistribution"]
    if errors:
        lines.append("Error distribution:")
        lines += _table([(f"[{count}]", message) for message, count in errors.items()])
        lines.append("")
    return "\n".join(lines) + "\n"


def details_csv(report: dict[str, Any]) -> str:
    """ghz's ``-O csv``: one line per call."""
    out = io.StringIO()
    out.write("duration (ms),status,error\n")
    writer = csv.writer(out, lineterminator="\n")
    for detail in report["details"] or []:
        writer.writerow([f"{detail['latency'] / 1e6:4.2f}", detail["status"], detail["error"]])
    return out.getvalue()


def render(report: dict[str, Any], output_format: str) -> str:
    if output_format == "json":
        return json.dumps(report, ensure_ascii=False, separators=(",", ":"))
    if output_format == "pretty":
        return json.dumps(report, ensure_ascii=False, indent=2)
    if output_format == "csv":
        return details_csv(report)
    return summary(report)
