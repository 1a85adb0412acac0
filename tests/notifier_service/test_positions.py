"""Queue positions and estimated waits from the feeds' events, without a
network: lanes, the waitlist, retries, departures and the rate."""

from __future__ import annotations

import pytest

from notifier_service.positions import Place, QueuePositions
from ticketing.v1 import reservation_pb2 as pb

EVENT = "00000000-0000-4000-8000-00000000000e"
OTHER = "00000000-0000-4000-8000-00000000000f"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def line(clock: Clock) -> QueuePositions:
    return QueuePositions(window_s=10, ttl_s=3_600, clock=clock)


def result(
    reservation_id: str, status: pb.ReservationStatus.ValueType, *, priority: bool = False
) -> pb.Reservation:
    return pb.Reservation(
        reservation_id=reservation_id, event_id=EVENT, status=status, priority=priority
    )


def positions(line: QueuePositions, ids: list[str]) -> list[int | None]:
    return [None if (p := line.place(i)) is None else p.position for i in ids]


def test_requests_are_placed_in_queue_order_per_event(line: QueuePositions) -> None:
    for n in range(3):
        line.queued(f"r{n}", EVENT, 4, 100 + n, "")
    line.queued("x", OTHER, 4, 103, "")  # another event on the same partition
    assert positions(line, ["r0", "r1", "r2", "x", "unknown"]) == [0, 1, 2, 0, None]
    # A retry appended later keeps the first record's place.
    line.queued("r0", EVENT, 4, 200, "")
    assert positions(line, ["r0", "r1", "r2"]) == [0, 1, 2]


def test_those_decided_leave_and_the_waitlisted_keep_their_place(line: QueuePositions) -> None:
    for n in range(4):
        line.queued(f"r{n}", EVENT, 0, n, "")
    line.on_result(result("r0", pb.RESERVATION_STATUS_QUEUED))  # waitlisted
    line.on_result(result("r1", pb.RESERVATION_STATUS_CONFIRMED))
    assert positions(line, ["r0", "r1", "r2", "r3"]) == [0, None, 1, 2]
    line.on_result(result("r0", pb.RESERVATION_STATUS_HELD))
    assert positions(line, ["r2", "r3"]) == [0, 1]


def test_the_priority_lane_goes_first_and_moves_the_standard_lane_back(
    line: QueuePositions,
) -> None:
    line.queued("s0", EVENT, 0, 0, "")
    line.queued("s1", EVENT, 0, 1, "gold")  # a tier the event does not favour
    line.on_result(result("s0", pb.RESERVATION_STATUS_QUEUED))
    line.on_result(result("s1", pb.RESERVATION_STATUS_QUEUED))
    line.queued("v0", EVENT, 0, 2, "vip")
    line.on_result(result("v0", pb.RESERVATION_STATUS_QUEUED, priority=True))
    line.queued("s2", EVENT, 0, 3, "")
    line.queued("v1", EVENT, 0, 4, "vip")  # still in the topic: lane from the tiers
    assert positions(line, ["v0", "v1", "s0", "s1", "s2"]) == [0, 4, 1, 2, 3]
    line._lines[EVENT].priority_tiers = frozenset({"vip"})  # as refresh() reads them
    assert positions(line, ["v0", "v1", "s0", "s1", "s2"]) == [0, 1, 2, 3, 4]


def test_the_estimate_comes_from_the_departure_rate(line: QueuePositions, clock: Clock) -> None:
    for n in range(100):
        line.queued(f"r{n}", EVENT, 0, n, "")
    assert line.place("r99") == Place(99, None)  # nothing departed yet
    # One departure every 0.15 s, 21 in all: 20 after the first, over the
    # 3.15 s since it.
    for n in range(21):
        line.on_result(result(f"r{n}", pb.RESERVATION_STATUS_CONFIRMED))
        clock.now += 0.15
    place = line.place("r99")
    assert place is not None and place.position == 78 and place.wait_s is not None
    assert place.wait_s == pytest.approx(79 / (20 / 3.15))
    # A queue that stops moving sees its rate fall, and after the window none.
    clock.now += 5
    slower = line.place("r99")
    assert slower is not None and slower.wait_s is not None and slower.wait_s > 2 * place.wait_s
    clock.now += 10
    assert line.place("r99") == Place(78, None)


def test_a_paused_sale_has_no_estimate(line: QueuePositions, clock: Clock) -> None:
    for n in range(30):
        line.queued(f"r{n}", EVENT, 0, n, "")
    for n in range(20):
        line.on_result(result(f"r{n}", pb.RESERVATION_STATUS_CONFIRMED))
        clock.now += 0.15
    assert line.place("r29").wait_s is not None  # type: ignore[union-attr]
    line._lines[EVENT].paused = True
    assert line.place("r29") == Place(9, None)


def test_requests_the_consumers_committed_past_are_found(line: QueuePositions) -> None:
    for n in range(5):
        line.queued(f"r{n}", EVENT, 2, 10 + n, "")
    line.queued("p", OTHER, 3, 1, "")
    line.on_result(result("r0", pb.RESERVATION_STATUS_QUEUED))
    # The waitlisted one is not in doubt; r1 and r2 are below the commit.
    assert sorted(line._undecided_below({2: 13, 3: 0})) == ["r1", "r2"]


def test_a_request_past_the_ttl_is_forgotten(clock: Clock) -> None:
    line = QueuePositions(window_s=10, ttl_s=60, clock=clock)
    line.queued("old", EVENT, 0, 0, "")
    clock.now += 61
    line.queued("new", EVENT, 0, 1, "")
    line.forget_stale()
    assert positions(line, ["old", "new"]) == [None, 0]


def test_a_result_read_before_its_request_is_applied_when_the_request_comes(
    line: QueuePositions,
) -> None:
    line.queued("s0", EVENT, 0, 0, "")
    decided = result("gone", pb.RESERVATION_STATUS_CONFIRMED)
    decided.version = 2
    line.on_result(decided)
    waiting = result("vip", pb.RESERVATION_STATUS_QUEUED, priority=True)
    waiting.version = 2
    line.on_result(waiting)
    line.queued("gone", EVENT, 0, 1, "")  # decided already: never in the line
    line.queued("vip", EVENT, 0, 2, "vip")  # in the waitlist's priority lane
    line.queued("s3", EVENT, 0, 3, "")
    assert positions(line, ["vip", "s0", "gone", "s3"]) == [0, 1, None, 2]


def test_a_waitlisting_and_its_promotion_both_read_before_the_request_leave_nothing(
    line: QueuePositions,
) -> None:
    waiting = result("r", pb.RESERVATION_STATUS_QUEUED)
    waiting.version = 2
    line.on_result(waiting)
    served = result("r", pb.RESERVATION_STATUS_HELD)
    served.version = 3
    line.on_result(served)
    line.queued("r", EVENT, 0, 0, "")
    assert line.place("r") is None and len(line) == 0


def test_the_ttl_forgets_undecided_requests_but_not_the_waitlisted(clock: Clock) -> None:
    line = QueuePositions(window_s=10, ttl_s=60, clock=clock)
    line.queued("waiting", EVENT, 0, 0, "")
    line.on_result(result("waiting", pb.RESERVATION_STATUS_QUEUED))
    line.queued("lost", EVENT, 0, 1, "")
    clock.now += 61
    line.forget_stale()
    assert positions(line, ["waiting", "lost"]) == [0, None]
