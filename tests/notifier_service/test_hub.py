"""The notifier's in-process fan-out and pending set."""

from __future__ import annotations

import pytest

from notifier_service.hub import WATCH_QUEUE, PendingRequests, WatchHub
from ticketing.v1 import reservation_pb2 as pb


def reservation(rid: str, status: int = pb.RESERVATION_STATUS_CONFIRMED) -> pb.Reservation:
    return pb.Reservation(reservation_id=rid, status=status)  # type: ignore[arg-type]


def test_updates_reach_every_watcher_of_that_id_only() -> None:
    hub = WatchHub()
    with hub.subscribe("a") as first, hub.subscribe("a") as second, hub.subscribe("b") as other:
        assert hub.watching == 3
        hub.publish(reservation("a"))
        assert first.get_nowait().reservation_id == "a"
        assert second.get_nowait().reservation_id == "a"
        assert other.empty()
    assert hub.watching == 0
    hub.publish(reservation("a"))  # nobody watching: a no-op


def test_a_watcher_that_does_not_read_keeps_the_newest_updates_only() -> None:
    hub = WatchHub()
    with hub.subscribe("a") as queue:
        for version in range(1, WATCH_QUEUE + 11):
            hub.publish(pb.Reservation(reservation_id="a", version=version))
        kept = [queue.get_nowait().version for _ in range(queue.qsize())]
    assert kept == list(range(11, WATCH_QUEUE + 11))


def test_pending_requests_are_forgotten_when_decided_or_too_old(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr("notifier_service.hub.time.monotonic", lambda: clock[0])
    pending = PendingRequests(ttl_s=10)
    pending.add(reservation("old", pb.RESERVATION_STATUS_QUEUED))
    clock[0] = 105.0
    pending.add(reservation("young", pb.RESERVATION_STATUS_QUEUED))
    pending.discard("young")
    assert pending.get("young") is None
    assert pending.get("old") is not None
    clock[0] = 111.0
    pending.add(reservation("new", pb.RESERVATION_STATUS_QUEUED))
    assert pending.get("old") is None
    assert len(pending) == 1


def test_pending_requests_are_bounded_oldest_first() -> None:
    pending = PendingRequests(ttl_s=3600, max_entries=3)
    for n in range(5):
        pending.add(pb.Reservation(reservation_id=f"r{n}"))
    assert len(pending) == 3
    assert [pending.get(f"r{n}") is not None for n in range(5)] == [False, False, True, True, True]
