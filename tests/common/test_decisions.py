"""The decision logic, without a network."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from ticketing_common.decisions import Request, Seats, decide, reject_all
from ticketing_common.domain import RejectReason, Status

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(minutes=10)


def req(rid: str, user: str, quantity: int = 1) -> Request:
    return Request(rid, "event", user, quantity, f"key-{rid}", NOW, 0, int(rid.strip("r") or 0))


def outcomes(batch: list[Request], seats: Seats, held: dict[str, int] | None = None) -> list[str]:
    result = decide(seats, held or {}, batch, NOW)
    return [
        d.status.value + (f"/{d.reject_reason.value}" if d.reject_reason else "")
        for d in result.decisions
    ]


def test_confirms_in_queue_order_while_seats_last() -> None:
    batch = [req(f"r{n}", f"u{n}") for n in range(5)]
    result = decide(Seats(available=3, per_user_limit=1, queue_ttl=TTL), {}, batch, NOW)
    assert [d.request.reservation_id for d in result.decisions] == ["r0", "r1", "r2", "r3", "r4"]
    assert [d.status for d in result.decisions] == [Status.CONFIRMED] * 3 + [Status.REJECTED] * 2
    assert {d.reject_reason for d in result.decisions[3:]} == {RejectReason.SOLD_OUT}
    assert result.seats_confirmed == 3


def test_a_request_larger_than_what_is_left_is_sold_out_but_a_smaller_later_one_fits() -> None:
    batch = [req("r1", "a", 3), req("r2", "b", 2), req("r3", "c", 1)]
    assert outcomes(batch, Seats(available=4, per_user_limit=4, queue_ttl=TTL)) == [
        "CONFIRMED",
        "REJECTED/SOLD_OUT",
        "CONFIRMED",
    ]


def test_per_user_limit_counts_earlier_seats_and_this_batch() -> None:
    batch = [req("r1", "a", 2), req("r2", "a", 1), req("r3", "b", 3), req("r4", "c", 4)]
    assert outcomes(
        batch, Seats(available=100, per_user_limit=3, queue_ttl=TTL), held={"b": 1}
    ) == [
        "CONFIRMED",
        "CONFIRMED",
        "REJECTED/LIMIT_EXCEEDED",  # b already holds 1; 1 + 3 > 3
        "REJECTED/LIMIT_EXCEEDED",  # 4 > 3 on its own
    ]


def test_limit_is_checked_before_stock() -> None:
    assert outcomes([req("r1", "a", 5)], Seats(available=0, per_user_limit=2, queue_ttl=TTL)) == [
        "REJECTED/LIMIT_EXCEEDED"
    ]


def test_a_rejected_request_does_not_count_towards_the_limit() -> None:
    batch = [req("r1", "a", 2), req("r2", "a", 1)]
    assert outcomes(batch, Seats(available=1, per_user_limit=2, queue_ttl=TTL)) == [
        "REJECTED/SOLD_OUT",
        "CONFIRMED",
    ]


def test_a_duplicate_inside_the_batch_is_decided_once() -> None:
    first, again = req("r1", "a"), req("r1", "a")
    result = decide(
        Seats(available=5, per_user_limit=5, queue_ttl=TTL), {}, [first, again, req("r2", "b")], NOW
    )
    assert [d.request.reservation_id for d in result.decisions] == ["r1", "r2"]
    assert result.duplicates == [again]
    assert result.seats_confirmed == 2


def test_nothing_left_rejects_everything_and_confirms_nothing() -> None:
    result = decide(
        Seats(available=0, per_user_limit=1, queue_ttl=TTL),
        {},
        [req("r1", "a"), req("r2", "b")],
        NOW,
    )
    assert result.seats_confirmed == 0
    assert {(d.status, d.reject_reason) for d in result.decisions} == {
        (Status.REJECTED, RejectReason.SOLD_OUT)
    }


def test_reject_all_names_the_reason_once_per_id() -> None:
    result = reject_all([req("r1", "a"), req("r1", "a"), req("r2", "b")], RejectReason.INVALID)
    assert [(d.request.reservation_id, d.reject_reason) for d in result.decisions] == [
        ("r1", RejectReason.INVALID),
        ("r2", RejectReason.INVALID),
    ]
    assert len(result.duplicates) == 1
    assert result.seats_confirmed == 0


def test_a_request_older_than_the_queue_ttl_expires_without_taking_seats() -> None:
    stale = dataclasses.replace(req("r1", "a"), accepted_at=NOW - timedelta(minutes=11))
    on_time = dataclasses.replace(req("r2", "b"), accepted_at=NOW - timedelta(minutes=9))
    result = decide(Seats(available=1, per_user_limit=1, queue_ttl=TTL), {}, [stale, on_time], NOW)
    assert [(d.status, d.reject_reason) for d in result.decisions] == [
        (Status.REJECTED, RejectReason.EXPIRED_IN_QUEUE),
        (Status.CONFIRMED, None),
    ]
    assert result.seats_confirmed == 1


def test_expiry_wins_over_the_per_user_limit_and_stock() -> None:
    stale = dataclasses.replace(req("r1", "a", 9), accepted_at=NOW - timedelta(hours=1))
    result = decide(Seats(available=0, per_user_limit=1, queue_ttl=TTL), {}, [stale], NOW)
    assert result.decisions[0].reject_reason is RejectReason.EXPIRED_IN_QUEUE
