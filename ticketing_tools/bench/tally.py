"""What a run measured: counts, HDR latency histograms and, if asked, details.

One ``Tally`` per process records every finished call. It keeps exactly what
ghz's report needs and no more: the count and latency sum of all calls (for
``average``), an HDR histogram plus the exact extremes of the successful
calls (ghz's ``fastest``, ``slowest``, percentiles and histogram count only
calls without error), status and error counts, and per-call details only
when the output shows them. Processes ship a ``TallySnapshot`` (HDR
histograms encoded, everything else plain) that ``Tally.merge`` adds up.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import grpc
from hdrh.histogram import HdrHistogram

# One nanosecond to one hour, three significant digits: 0.1 % resolution.
_LOWEST_NS = 1
_HIGHEST_NS = 3_600 * 1_000_000_000
_SIGNIFICANT_DIGITS = 3
# ghz keeps at most this many details (runner.maxResult).
MAX_DETAILS = 1_000_000

# Go's codes.Code String() names, which ghz prints and reports.
STATUS_NAMES: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}


def status_name(code: grpc.StatusCode) -> str:
    return STATUS_NAMES.get(code, "Unknown")


def rpc_error(status: str, details: str) -> str:
    """An error as grpc-go prints it, which is what ghz reports."""
    return f"rpc error: code = {status} desc = {details}"


def new_histogram() -> HdrHistogram:
    return HdrHistogram(_LOWEST_NS, _HIGHEST_NS, _SIGNIFICANT_DIGITS)


@dataclass(frozen=True)
class Detail:
    """One call, as ghz's ``details`` list has it."""

    timestamp_ns: int  # wall clock when the call ended
    latency_ns: int
    error: str
    status: str


@dataclass
class Distribution:
    """Latencies of successful calls: HDR histogram plus exact extremes."""

    histogram: HdrHistogram = field(default_factory=new_histogram)
    fastest_ns: int = 0
    slowest_ns: int = 0
    sum_ns: int = 0

    @property
    def count(self) -> int:
        return int(self.histogram.get_total_count())

    def record(self, latency_ns: int) -> None:
        value = min(max(latency_ns, _LOWEST_NS), _HIGHEST_NS)
        if self.count == 0:
            self.fastest_ns = self.slowest_ns = latency_ns
        else:
            self.fastest_ns = min(self.fastest_ns, latency_ns)
            self.slowest_ns = max(self.slowest_ns, latency_ns)
        self.histogram.record_value(value)
        self.sum_ns += latency_ns

    def add(self, other: Distribution) -> None:
        if other.count == 0:
            return
        if self.count == 0:
            self.fastest_ns, self.slowest_ns = other.fastest_ns, other.slowest_ns
        else:
            self.fastest_ns = min(self.fastest_ns, other.fastest_ns)
            self.slowest_ns = max(self.slowest_ns, other.slowest_ns)
        self.histogram.add(other.histogram)
        self.sum_ns += other.sum_ns

    def bins(self) -> list[tuple[int, int, int]]:
        """Recorded HDR buckets as ``(lowest, highest, count)``, ascending."""
        found: list[tuple[int, int, int]] = []
        for item in self.histogram.get_recorded_iterator():
            highest = int(item.value_iterated_to)
            lowest = int(self.histogram.get_lowest_equivalent_value(highest))
            found.append((lowest, highest, int(item.count_at_value_iterated_to)))
        return found

    def snapshot(self) -> DistributionSnapshot:
        return DistributionSnapshot(
            encoded=bytes(self.histogram.encode()) if self.count else b"",
            fastest_ns=self.fastest_ns,
            slowest_ns=self.slowest_ns,
            sum_ns=self.sum_ns,
        )

    @classmethod
    def restore(cls, snapshot: DistributionSnapshot) -> Distribution:
        restored = cls(
            fastest_ns=snapshot.fastest_ns, slowest_ns=snapshot.slowest_ns, sum_ns=snapshot.sum_ns
        )
        if snapshot.encoded:
            restored.histogram.add(HdrHistogram.decode(snapshot.encoded))
        return restored


@dataclass(frozen=True)
class DistributionSnapshot:
    encoded: bytes
    fastest_ns: int
    slowest_ns: int
    sum_ns: int


@dataclass(frozen=True)
class TallySnapshot:
    """A picklable ``Tally``, sent from worker processes to the parent."""

    count: int
    latency_sum_ns: int
    ok: DistributionSnapshot
    first_message: DistributionSnapshot
    statuses: dict[str, int]
    errors: dict[str, int]
    details: list[Detail] | None


class Tally:
    def __init__(self, *, keep_details: bool = False, skip_first: int = 0) -> None:
        self.count = 0
        self.latency_sum_ns = 0
        self.ok = Distribution()
        # Server-streaming calls: time to the first message, successful calls only.
        self.first_message = Distribution()
        self.statuses: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.details: list[Detail] | None = [] if keep_details else None
        self._to_skip = skip_first

    def record(
        self,
        latency_ns: int,
        status: str = "OK",
        error: str = "",
        *,
        end_wall_ns: int = 0,
        first_message_ns: int | None = None,
    ) -> None:
        """Counts one finished call; ghz's ``--skipFirst`` drops the first few."""
        if self._to_skip > 0:
            self._to_skip -= 1
            return
        self.count += 1
        self.latency_sum_ns += latency_ns
        self.statuses[status] += 1
        if error:
            self.errors[error] += 1
        else:
            self.ok.record(latency_ns)
            if first_message_ns is not None:
                self.first_message.record(first_message_ns)
        if self.details is not None and len(self.details) < MAX_DETAILS:
            self.details.append(Detail(end_wall_ns, latency_ns, error, status))

    def snapshot(self) -> TallySnapshot:
        return TallySnapshot(
            count=self.count,
            latency_sum_ns=self.latency_sum_ns,
            ok=self.ok.snapshot(),
            first_message=self.first_message.snapshot(),
            statuses=dict(self.statuses),
            errors=dict(self.errors),
            details=self.details,
        )

    @classmethod
    def merge(cls, snapshots: list[TallySnapshot]) -> Tally:
        keep = any(snapshot.details is not None for snapshot in snapshots)
        merged = cls(keep_details=keep)
        for snapshot in snapshots:
            merged.count += snapshot.count
            merged.latency_sum_ns += snapshot.latency_sum_ns
            merged.ok.add(Distribution.restore(snapshot.ok))
            merged.first_message.add(Distribution.restore(snapshot.first_message))
            merged.statuses.update(snapshot.statuses)
            merged.errors.update(snapshot.errors)
            if merged.details is not None and snapshot.details:
                room = MAX_DETAILS - len(merged.details)
                merged.details.extend(snapshot.details[:room])
        if merged.details is not None:
            merged.details.sort(key=lambda detail: detail.timestamp_ns)
        return merged
