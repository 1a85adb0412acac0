"""Load and concurrency schedules as pure functions of elapsed time.

The load schedule follows ghz's pacers (``load/pacer.go``). It says when
calls are due; whether a due call waits for a free worker (closed loop, the
default) or starts anyway (open loop) is the engine's business.

* ``const``: ``--rps`` (or ``--arrival-rate``) calls per second; 0 means no
  rate limit.
* ``step``: ``--load-start``, changed by ``--load-step`` every
  ``--load-step-duration``. The rate holds at ``--load-end`` once it gets
  there; after ``--load-max-duration`` it jumps to ``--load-end`` (or, with no
  end, keeps the rate reached then) and stays constant.
* ``line``: ``step`` with a step every second (ghz's ``LinearPacer``).

A rate that falls to zero with nothing to hold it ends the arrivals.

Arrival ``k`` (counting from 0) is due when the integral of the rate reaches
``k + 1``, so a constant 100/s schedule sends its first call at 10 ms and its
200th at 2 s, as ghz's constant pacer does. Times are in seconds since the
start of the run.

The concurrency schedule follows ghz's worker tickers
(``load/worker_ticker.go``) with the same parameters. Two differences make it
safer: the count never goes below one worker and never past
``--concurrency-end`` (ghz can overshoot by part of a step).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

ScheduleKind = Literal["const", "step", "line"]
SCHEDULE_KINDS: tuple[ScheduleKind, ...] = ("const", "step", "line")
LINE_STEP_SECONDS = 1.0
# A float tolerance so an arrival that lands exactly on a segment boundary is
# not lost to rounding.
_EPSILON = 1e-9


@dataclass(frozen=True)
class Segment:
    """A stretch of constant rate, ``[start, end)`` seconds; ``end`` may be inf."""

    start: float
    end: float
    rate: float


@dataclass(frozen=True)
class LoadSchedule:
    kind: ScheduleKind = "const"
    rps: float = 0.0
    start: float = 0.0
    end: float = 0.0
    step: float = 0.0
    step_seconds: float = 0.0
    max_seconds: float = 0.0

    @property
    def unlimited(self) -> bool:
        """No rate at all: calls go as fast as the generator allows."""
        return self.kind == "const" and self.rps <= 0

    def segments(self) -> Iterator[Segment]:
        """The rate over time, in order; the last segment ends at infinity
        unless the schedule keeps stepping forever."""
        if self.kind == "const":
            yield Segment(0.0, math.inf, max(self.rps, 0.0))
            return
        step_seconds = LINE_STEP_SECONDS if self.kind == "line" else self.step_seconds
        if step_seconds <= 0:
            raise ValueError("a step schedule needs a positive step duration")
        for index in itertools.count():
            begin = index * step_seconds
            rate = self.start + self.step * index
            if self.end > 0 and (
                (self.step > 0 and rate >= self.end) or (self.step < 0 and rate <= self.end)
            ):
                yield Segment(begin, math.inf, self.end)
                return
            if rate <= 0:
                yield Segment(begin, math.inf, 0.0)
                return
            finish = begin + step_seconds
            if self.max_seconds > 0 and finish >= self.max_seconds:
                yield Segment(begin, self.max_seconds, rate)
                yield Segment(self.max_seconds, math.inf, self._rate_after_max(step_seconds))
                return
            yield Segment(begin, finish, rate)

    def _rate_after_max(self, step_seconds: float) -> float:
        if self.end > 0:
            return self.end
        steps = math.floor(self.max_seconds / step_seconds + _EPSILON)
        return max(self.start + self.step * steps, 0.0)

    def rate(self, elapsed: float) -> float:
        """Calls per second due at ``elapsed`` seconds (inf when unlimited)."""
        if self.unlimited:
            return math.inf
        for segment in self.segments():
            if segment.start <= elapsed < segment.end:
                return segment.rate
        return 0.0

    def expected_arrivals(self, elapsed: float) -> float:
        """How many calls are due in ``[0, elapsed]``: the integral of the rate."""
        if self.unlimited:
            return math.inf
        total = 0.0
        for segment in self.segments():
            if elapsed <= segment.start:
                break
            total += segment.rate * (min(elapsed, segment.end) - segment.start)
        return total

    def arrival_times(self) -> Iterator[float]:
        """When each call is due, in order; ends if the rate falls to zero for
        good. Unlimited schedules have every call due at once (time 0)."""
        if self.unlimited:
            yield from itertools.repeat(0.0)
            return
        reached = 0.0  # the integral of the rate at the start of the segment
        upcoming = 1  # arrival k is due when the integral reaches k + 1
        for segment in self.segments():
            if segment.rate <= 0:
                if math.isinf(segment.end):
                    return
                continue
            ceiling = reached + segment.rate * (segment.end - segment.start)
            while upcoming <= ceiling + _EPSILON:
                yield segment.start + (upcoming - reached) / segment.rate
                upcoming += 1
            reached = ceiling


@dataclass(frozen=True)
class WorkerSchedule:
    kind: ScheduleKind = "const"
    count: int = 50
    start: int = 0
    end: int = 0
    step: int = 0
    step_seconds: float = 0.0
    max_seconds: float = 0.0

    def changes(self) -> Iterator[tuple[float, int]]:
        """``(time, workers)`` from time 0, one pair per change; finite unless
        the schedule grows without an end or a maximum duration."""
        if self.kind == "const":
            yield 0.0, max(self.count, 1)
            return
        step_seconds = LINE_STEP_SECONDS if self.kind == "line" else self.step_seconds
        if step_seconds <= 0:
            raise ValueError("a step schedule needs a positive step duration")
        workers = max(self.start, 1)
        yield 0.0, workers
        for index in itertools.count(1):
            at = index * step_seconds
            if self.max_seconds > 0 and at >= self.max_seconds:
                if self.end > 0 and self.end != workers:
                    yield self.max_seconds, self.end
                return
            if self._reached_end(workers):
                return
            wanted = self.start + self.step * index
            if self.end > 0:
                wanted = min(wanted, self.end) if self.step > 0 else max(wanted, self.end)
            wanted = max(wanted, 1)
            if wanted == workers:
                return  # at the floor of one worker: nothing more will change
            workers = wanted
            yield at, workers

    def _reached_end(self, workers: int) -> bool:
        if self.end > 0:
            return workers >= self.end if self.step > 0 else workers <= self.end
        return False

    def workers_at(self, elapsed: float) -> int:
        current = 1
        for at, workers in self.changes():
            if at > elapsed:
                break
            current = workers
        return current

    @property
    def peak(self) -> int | None:
        """The most workers the schedule ever asks for; None when unbounded."""
        if self.kind == "const":
            return max(self.count, 1)
        if self.step > 0 and self.end <= 0 and self.max_seconds <= 0:
            return None
        return max(workers for _, workers in self.changes())
