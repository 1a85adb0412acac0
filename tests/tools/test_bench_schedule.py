"""ticketing-bench: load and concurrency schedules over time (ghz's pacers)."""

from __future__ import annotations

import itertools
import math

import pytest

from ticketing_tools.bench.schedule import LoadSchedule, WorkerSchedule


def first(schedule: LoadSchedule, count: int) -> list[float]:
    return list(itertools.islice(schedule.arrival_times(), count))


def arrivals_before(schedule: LoadSchedule, seconds: float) -> int:
    return sum(1 for _ in itertools.takewhile(lambda t: t < seconds, schedule.arrival_times()))


def test_const_rate_is_flat_and_spaces_arrivals_evenly() -> None:
    schedule = LoadSchedule(kind="const", rps=100)
    assert schedule.rate(0) == schedule.rate(59.5) == 100
    times = first(schedule, 200)
    assert times[0] == pytest.approx(0.01)  # like ghz: the first call after one interval
    assert times[-1] == pytest.approx(2.0)
    assert all(b - a == pytest.approx(0.01) for a, b in itertools.pairwise(times))
    assert schedule.expected_arrivals(2.0) == pytest.approx(200)


def test_no_rate_means_every_call_is_due_at_once() -> None:
    schedule = LoadSchedule(kind="const", rps=0)
    assert schedule.unlimited
    assert first(schedule, 5) == [0.0] * 5
    assert schedule.rate(3) == math.inf


def test_step_schedule_climbs_then_holds_at_the_end_rate() -> None:
    schedule = LoadSchedule(kind="step", start=50, step=10, end=80, step_seconds=5)
    assert [schedule.rate(t) for t in (0, 4.9, 5, 10, 15, 20, 300)] == [50, 50, 60, 70, 80, 80, 80]
    # 5 s at each of 50, 60, 70, then 80/s.
    assert schedule.expected_arrivals(15) == pytest.approx(250 + 300 + 350)
    assert arrivals_before(schedule, 15) == 899  # the 900th falls exactly on 15 s
    assert arrivals_before(schedule, 16) == 979


def test_step_down_with_a_max_duration_then_holds_constant() -> None:
    # ghz's example: start at 200, -10 every 5 s, for 40 s; then constant.
    schedule = LoadSchedule(kind="step", start=200, step=-10, step_seconds=5, max_seconds=40)
    assert schedule.rate(0) == 200
    assert schedule.rate(39) == 130
    assert schedule.rate(40) == schedule.rate(1000) == 120


def test_max_duration_jumps_to_the_end_rate_when_given() -> None:
    schedule = LoadSchedule(kind="step", start=50, step=10, end=150, step_seconds=5, max_seconds=20)
    assert schedule.rate(19) == 80
    assert schedule.rate(20) == 150


def test_line_schedule_changes_every_second() -> None:
    schedule = LoadSchedule(kind="line", start=5, step=5)
    assert [schedule.rate(t) for t in (0, 0.99, 1, 2.5, 10)] == [5, 5, 10, 15, 55]
    assert arrivals_before(schedule, 3.0) == 5 + 10 + 15 - 1  # the last one is due at 3 s


def test_line_down_to_zero_without_an_end_stops_the_arrivals() -> None:
    schedule = LoadSchedule(kind="line", start=3, step=-1)
    assert list(schedule.arrival_times()) == pytest.approx(
        [1 / 3, 2 / 3, 1.0, 1.5, 2.0, 3.0]  # 3/s, then 2/s, then 1/s, then 0
    )
    assert schedule.rate(5) == 0


def test_const_workers() -> None:
    schedule = WorkerSchedule(kind="const", count=20)
    assert list(schedule.changes()) == [(0.0, 20)]
    assert schedule.workers_at(100) == 20
    assert schedule.peak == 20


def test_step_workers_grow_until_the_end_and_never_overshoot() -> None:
    schedule = WorkerSchedule(kind="step", start=5, step=10, end=30, step_seconds=5)
    assert list(schedule.changes()) == [(0.0, 5), (5.0, 15), (10.0, 25), (15.0, 30)]
    assert schedule.workers_at(12) == 25
    assert schedule.peak == 30


def test_step_workers_down_with_a_max_duration_stop_there() -> None:
    schedule = WorkerSchedule(kind="step", start=50, step=-5, step_seconds=5, max_seconds=30)
    assert list(schedule.changes())[-1] == (25.0, 25)
    assert schedule.workers_at(1000) == 25


def test_line_workers_step_every_second_and_keep_one_worker() -> None:
    schedule = WorkerSchedule(kind="line", start=3, step=-1)
    assert list(schedule.changes()) == [(0.0, 3), (1.0, 2), (2.0, 1)]


def test_unbounded_growth_has_no_peak() -> None:
    assert WorkerSchedule(kind="line", start=1, step=2).peak is None
