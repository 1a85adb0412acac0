"""The options of one run, validated in one place.

Names, defaults and rules follow ghz (``runner/options.go``,
``cmd/ghz/main.go``); the exceptions are listed on the fields. Durations are
integer nanoseconds, like Go's ``time.Duration``.

The rate options mean what they mean in ghz: ``--rps`` and the
``--load-*`` schedule limit how fast the ``-c`` workers may start calls, and
each worker still waits for its answer before it sends again (closed loop).
Only ``--async`` sends without waiting (open loop); ``--arrival-rate N``
(extension) is a name of its own for the open loop at ``N`` calls a second,
the same run as ``--async --rps N``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

from .durations import NANOS_PER_SECOND
from .schedule import SCHEDULE_KINDS, LoadSchedule, ScheduleKind, WorkerSchedule

FORMATS = ("summary", "json", "pretty", "csv")
DURATION_STOPS = ("close", "wait", "ignore")
# ghz sets n to math.MaxInt32 when -z is given ("n is ignored") and reports it.
GHZ_UNBOUNDED_TOTAL = 2_147_483_647


class OptionsError(ValueError):
    """Options that do not make a run; the message names the flag."""


@dataclass(frozen=True)
class Options:
    host: str
    call: str
    data: str | None = None
    metadata: str | None = None
    protoset: str = ""

    total: int = 200  # -n
    duration_ns: int = 0  # -z: n is ignored
    max_duration_ns: int = 0  # -x: n is respected
    duration_stop: str = "close"
    concurrency: int = 50  # -c
    connections: int = 1
    # Open loop: calls start when due, not when a worker is free (see engine).
    async_: bool = False
    max_in_flight: int = 10_000  # extension: cap on outstanding calls per process
    arrival_rate: int = 0  # extension: open loop at this many calls a second

    rps: int = 0  # rate limit of the run, shared by the workers; open loop only with async_
    load_schedule: str = "const"
    load_start: int = 0
    load_end: int = 0
    load_step: int = 0
    load_step_duration_ns: int = 0
    load_max_duration_ns: int = 0

    concurrency_schedule: str = "const"
    concurrency_start: int = 0
    concurrency_end: int = 0
    concurrency_step: int = 1
    concurrency_step_duration_ns: int = 0
    concurrency_max_duration_ns: int = 0

    timeout_ns: int = 20 * NANOS_PER_SECOND  # 0: no deadline
    connect_timeout_ns: int = 10 * NANOS_PER_SECOND
    keepalive_ns: int = 0

    insecure: bool = False
    cacert: str = ""
    cert: str = ""
    key: str = ""
    cname: str = ""
    authority: str = ""

    format: str = "summary"
    output: str = ""
    skip_details: bool = False  # extension: drop "details" from JSON output
    skip_first: int = 0
    name: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    cpus: int = 1  # ghz defaults to every core; one process is enough for most runs

    def __post_init__(self) -> None:
        self._validate()

    # ---- derived -------------------------------------------------------------

    @property
    def run_ns(self) -> int:
        """How long the run may last (0: until the calls are done)."""
        return self.duration_ns or self.max_duration_ns

    @property
    def bounded_total(self) -> int | None:
        """Calls to make, or None when only the duration bounds the run."""
        return None if self.duration_ns else self.total

    @property
    def reported_total(self) -> int:
        return GHZ_UNBOUNDED_TOTAL if self.duration_ns else self.total

    @property
    def open_loop(self) -> bool:
        """Calls start when due, answered or not (ghz's ``--async``), instead
        of when a worker's previous call is answered."""
        return self.async_ or self.arrival_rate > 0

    @property
    def const_rate(self) -> int:
        """Calls a second of the const schedule (0: no limit), whichever flag
        gave it: a limit on the workers (``--rps``) or an arrival rate."""
        return self.rps or self.arrival_rate

    @property
    def keep_details(self) -> bool:
        return self.format in ("json", "pretty", "csv") and not self.skip_details

    def load(self) -> LoadSchedule:
        return LoadSchedule(
            kind=cast(ScheduleKind, self.load_schedule),  # validated
            rps=float(self.const_rate),
            start=float(self.load_start),
            end=float(self.load_end),
            step=float(self.load_step),
            step_seconds=self.load_step_duration_ns / NANOS_PER_SECOND,
            max_seconds=self.load_max_duration_ns / NANOS_PER_SECOND,
        )

    def workers(self) -> WorkerSchedule:
        return WorkerSchedule(
            kind=cast(ScheduleKind, self.concurrency_schedule),  # validated
            count=self.concurrency,
            start=self.concurrency_start,
            end=self.concurrency_end,
            step=self.concurrency_step,
            step_seconds=self.concurrency_step_duration_ns / NANOS_PER_SECOND,
            max_seconds=self.concurrency_max_duration_ns / NANOS_PER_SECOND,
        )

    def data_json(self) -> object | None:
        """The call data as JSON for the report (ghz omits it when the raw
        text, templates included, is not valid JSON)."""
        return _loads_or_none(self.data)

    def metadata_json(self) -> object | None:
        return _loads_or_none(self.metadata)

    # ---- validation ----------------------------------------------------------

    def _validate(self) -> None:  # noqa: PLR0912  (one rule per flag reads best flat)
        if not self.host.strip():
            raise OptionsError("host required (the positional host:port)")
        if not self.call.strip():
            raise OptionsError("--call required, e.g. --call ticketing.v1.GatewayService.Reserve")
        _at_least("-n/--total", self.total, 1)
        _at_least("-c/--concurrency", self.concurrency, 1)
        _at_least("--connections", self.connections, 1)
        _at_least("--cpus", self.cpus, 1)
        _at_least("--max-in-flight", self.max_in_flight, 1)
        for flag, value in (
            ("-z/--duration", self.duration_ns),
            ("-x/--max-duration", self.max_duration_ns),
            ("-t/--timeout", self.timeout_ns),
            ("--connect-timeout", self.connect_timeout_ns),
            ("--keepalive", self.keepalive_ns),
            ("--rps", self.rps),
            ("--arrival-rate", self.arrival_rate),
            ("--skipFirst", self.skip_first),
        ):
            _at_least(flag, value, 0)
        if self.duration_ns and self.max_duration_ns:
            raise OptionsError("-z/--duration and -x/--max-duration exclude each other")
        if self.duration_stop not in DURATION_STOPS:
            raise OptionsError(f"--duration-stop must be one of {', '.join(DURATION_STOPS)}")
        if self.format not in FORMATS:
            raise OptionsError(f"-O/--format must be one of {', '.join(FORMATS)}")
        if self.format == "csv" and self.skip_details:
            raise OptionsError(
                "-O csv lists the details; it cannot be combined with --skip-details"
            )
        if self.concurrency_schedule == "const" and self.connections > self.concurrency:
            raise OptionsError(
                f"--connections ({self.connections}) cannot be greater than "
                f"-c/--concurrency ({self.concurrency})"
            )
        if self.skip_first and self.bounded_total and self.skip_first > self.bounded_total:
            raise OptionsError("--skipFirst: you cannot skip more requests than those run")
        if bool(self.cert) != bool(self.key):
            raise OptionsError("--cert and --key go together")
        if self.insecure and (self.cacert or self.cert or self.cname):
            raise OptionsError("--insecure excludes --cacert, --cert, --key and --cname")
        self._validate_load()
        self._validate_concurrency()
        if self.cpus > 1:
            peak = self.workers().peak
            if peak is not None and self.cpus > peak:
                raise OptionsError(
                    f"--cpus ({self.cpus}) cannot exceed the number of workers ({peak}): "
                    "each process needs at least one"
                )

    def _validate_load(self) -> None:
        schedule = self.load_schedule
        if schedule not in SCHEDULE_KINDS:
            raise OptionsError(f"--load-schedule must be one of {', '.join(SCHEDULE_KINDS)}")
        if self.arrival_rate and self.rps:
            raise OptionsError(
                "--arrival-rate and --rps exclude each other: --rps limits the rate of the "
                "-c workers, who wait for each answer; --arrival-rate starts calls on the "
                "clock, answered or not"
            )
        if self.arrival_rate and schedule != "const":
            raise OptionsError(
                "--arrival-rate is a constant rate; for a step or line open loop use "
                f"--async with --load-schedule {schedule}"
            )
        shaped = (
            self.load_start,
            self.load_end,
            self.load_step,
            self.load_step_duration_ns,
            self.load_max_duration_ns,
        )
        if schedule == "const":
            if any(shaped):
                raise OptionsError(
                    "--load-start/-end/-step/-step-duration/-max-duration need "
                    "--load-schedule step or line"
                )
            return
        if self.rps:
            raise OptionsError(
                f"--rps is the const schedule's rate; with --load-schedule {schedule} "
                "use --load-start"
            )
        _at_least("--load-start", self.load_start, 1)
        _at_least("--load-end", self.load_end, 0)
        _at_least("--load-step-duration", self.load_step_duration_ns, 0)
        _at_least("--load-max-duration", self.load_max_duration_ns, 0)
        if self.load_step == 0:
            raise OptionsError(f"--load-step must not be 0 for the {schedule} schedule")
        if self.load_start == self.load_end:
            raise OptionsError("--load-start cannot equal --load-end")
        if self.load_end and (self.load_end > self.load_start) != (self.load_step > 0):
            raise OptionsError(
                "--load-step must move from --load-start towards --load-end "
                f"({self.load_start} -> {self.load_end} with step {self.load_step})"
            )
        if schedule == "step" and self.load_step_duration_ns <= 0:
            raise OptionsError("--load-step-duration is required for the step schedule")

    def _validate_concurrency(self) -> None:
        schedule = self.concurrency_schedule
        if schedule not in SCHEDULE_KINDS:
            raise OptionsError(f"--concurrency-schedule must be one of {', '.join(SCHEDULE_KINDS)}")
        if schedule == "const":
            return
        _at_least("--concurrency-start", self.concurrency_start, 0)
        _at_least("--concurrency-end", self.concurrency_end, 0)
        _at_least("--concurrency-step-duration", self.concurrency_step_duration_ns, 0)
        _at_least("--concurrency-max-duration", self.concurrency_max_duration_ns, 0)
        if self.concurrency_step == 0:
            raise OptionsError(f"--concurrency-step must not be 0 for the {schedule} schedule")
        if self.concurrency_start == self.concurrency_end:
            raise OptionsError("--concurrency-start cannot equal --concurrency-end")
        if self.concurrency_end and (self.concurrency_end > self.concurrency_start) != (
            self.concurrency_step > 0
        ):
            raise OptionsError(
                "--concurrency-step must move from --concurrency-start towards --concurrency-end"
            )
        if schedule == "step" and self.concurrency_step_duration_ns <= 0:
            raise OptionsError("--concurrency-step-duration is required for the step schedule")


def _at_least(flag: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise OptionsError(f"{flag} must be at least {minimum}, got {value}")


def _loads_or_none(text: str | None) -> object | None:
    if text is None:
        return None
    try:
        loaded: object = json.loads(text)
    except json.JSONDecodeError:
        return None
    return loaded


def parse_tags(text: str) -> tuple[tuple[str, str], ...]:
    """``--tags '{"env":"staging"}'``: a JSON object of strings."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OptionsError(f"--tags is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not all(
        isinstance(value, str) for value in document.values()
    ):
        raise OptionsError('--tags must be a JSON object of strings, e.g. {"env":"staging"}')
    return tuple(document.items())
