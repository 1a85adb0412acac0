"""The decision logic, without a network."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from ticketing_common.decisions import Request, Seats, decide, reject_all, settle_waitlist
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


HOLD = timedelta(minutes=5)


def settled(waiting: list[Request], seats: Seats) -> list[str]:
    result = settle_waitlist(seats, waiting, NOW, {})
    return [
        f"{d.request.reservation_id}:{d.status.value}"
        + (f"/{d.reject_reason.value}" if d.reject_reason else "")
        for d in result.decisions
    ]


def test_with_holds_winners_are_held_and_the_rest_wait_while_seats_are_held() -> None:
    seats = Seats(available=2, per_user_limit=4, queue_ttl=TTL, held=1, hold_ttl=HOLD)
    batch = [req("r1", "a", 2), req("r2", "b"), req("r3", "c", 4), req("r4", "d")]
    result = decide(seats, {}, batch, NOW)
    # r1 takes both free seats; r2 and r4 may get the held one back; r3 wants
    # more than is unsold (0 free + 3 held after r1) and never could.
    assert [
        (d.request.reservation_id, d.status.value, d.reject_reason) for d in result.decisions
    ] == [
        ("r1", "HELD", None),
        ("r2", "QUEUED", None),
        ("r3", "REJECTED", RejectReason.SOLD_OUT),
        ("r4", "QUEUED", None),
    ]
    assert (result.seats_held, result.seats_confirmed) == (2, 0)


def test_a_new_request_waits_behind_the_waitlist_even_with_a_seat_free() -> None:
    seats = Seats(available=1, per_user_limit=4, queue_ttl=TTL, held=2, hold_ttl=HOLD, waiting=1)
    assert outcomes([req("r9", "z")], seats) == ["QUEUED"]


def test_the_waitlist_is_served_in_order_and_a_big_head_blocks_the_line() -> None:
    waiting = [req("r1", "a"), req("r2", "b", 3), req("r3", "c"), req("r4", "d", 9)]
    # One seat came back, two are still held: r1 gets it; r2 (3) could fit
    # once the holds end, so it blocks r3; r4 (9) never could: SOLD_OUT.
    seats = Seats(available=1, per_user_limit=9, queue_ttl=TTL, held=2, hold_ttl=HOLD)
    assert settled(waiting, seats) == ["r1:HELD", "r4:REJECTED/SOLD_OUT"]


def test_when_no_seat_is_held_any_more_nobody_waits() -> None:
    waiting = [req("r1", "a"), req("r2", "b"), req("r3", "c")]
    # Every held seat was paid, one was cancelled: r1 gets it and holds it,
    # r2 may still get it if r1 does not pay, r3 (behind r2) too.
    seats = Seats(available=1, per_user_limit=9, queue_ttl=TTL, held=0, hold_ttl=HOLD)
    assert settled(waiting, seats) == ["r1:HELD"]
    # Every held seat was paid and none is free: nobody can be served.
    sold = Seats(available=0, per_user_limit=9, queue_ttl=TTL, held=0, hold_ttl=HOLD)
    assert settled(waiting, sold) == [f"{r}:REJECTED/SOLD_OUT" for r in ("r1", "r2", "r3")]


def test_a_waiting_request_past_the_queue_ttl_expires_in_the_queue() -> None:
    stale = dataclasses.replace(req("r1", "a"), accepted_at=NOW - TTL - timedelta(seconds=1))
    seats = Seats(available=1, per_user_limit=9, queue_ttl=TTL, held=1, hold_ttl=HOLD)
    assert settled([stale, req("r2", "b")], seats) == [
        "r1:REJECTED/EXPIRED_IN_QUEUE",
        "r2:HELD",
    ]


def test_while_paused_everything_waits_and_nothing_expires() -> None:
    stale = dataclasses.replace(req("r1", "a"), accepted_at=NOW - TTL - timedelta(seconds=1))
    paused = Seats(available=5, per_user_limit=9, queue_ttl=TTL, paused=True)
    assert outcomes([stale, req("r2", "b")], paused) == ["QUEUED", "QUEUED"]
    assert settled([stale, req("r2", "b")], paused) == []
    # Closed instead: both are told the sale is closed.
    closed = Seats(available=5, per_user_limit=9, queue_ttl=TTL, closed=True)
    assert settled([req("r1", "a"), req("r2", "b")], closed) == [
        "r1:REJECTED/SALE_CLOSED",
        "r2:REJECTED/SALE_CLOSED",
    ]


def test_the_priority_lane_is_decided_first_each_lane_in_order() -> None:
    seats = Seats(available=2, per_user_limit=9, queue_ttl=TTL, priority_tiers=frozenset({"vip"}))
    batch = [
        req("r1", "a"),
        dataclasses.replace(req("r2", "b"), tier="vip"),
        req("r3", "c"),
        dataclasses.replace(req("r4", "d"), tier="vip"),
    ]
    result = decide(seats, {}, batch, NOW)
    assert [(d.request.reservation_id, d.status.value) for d in result.decisions] == [
        ("r2", "CONFIRMED"),
        ("r4", "CONFIRMED"),
        ("r1", "REJECTED"),
        ("r3", "REJECTED"),
    ]


def test_the_limit_holds_while_the_sale_is_paused() -> None:
    paused = Seats(available=20, per_user_limit=2, queue_ttl=TTL, paused=True)
    batch = [req(f"r{n}", "scalper") for n in range(1, 6)] + [req("r9", "other")]
    assert outcomes(batch, paused, held={"scalper": 0}) == [
        "QUEUED",
        "QUEUED",
        "REJECTED/LIMIT_EXCEEDED",
        "REJECTED/LIMIT_EXCEEDED",
        "REJECTED/LIMIT_EXCEEDED",
        "QUEUED",
    ]


def test_a_paused_sale_counts_what_a_user_already_waits_for() -> None:
    paused = Seats(available=20, per_user_limit=2, queue_ttl=TTL, paused=True)
    assert outcomes([req("r1", "a", 2)], paused, held={"a": 1}) == ["REJECTED/LIMIT_EXCEEDED"]


def waiting_line(*requests: Request) -> list[Request]:
    return list(requests)


def test_settling_the_waitlist_never_grants_past_the_limit() -> None:
    # However the line came to be (a lowered limit, say), a user is served
    # only up to the limit, counting what they hold and what waits ahead.
    seats = Seats(available=10, per_user_limit=2, queue_ttl=TTL)
    line = waiting_line(req("r1", "a"), req("r2", "a"), req("r3", "a"), req("r4", "b", 2))
    result = settle_waitlist(seats, line, NOW, {"a": 1})
    assert [(d.request.reservation_id, d.status, d.reject_reason) for d in result.decisions] == [
        ("r1", Status.CONFIRMED, None),
        ("r2", Status.REJECTED, RejectReason.LIMIT_EXCEEDED),
        ("r3", Status.REJECTED, RejectReason.LIMIT_EXCEEDED),
        ("r4", Status.CONFIRMED, None),
    ]
    assert result.seats_confirmed == 3


def test_a_lowered_limit_refuses_the_waiting_above_it_even_while_paused() -> None:
    seats = Seats(available=0, held=4, per_user_limit=1, queue_ttl=TTL, paused=True)
    line = waiting_line(req("r1", "a"), req("r2", "b"), req("r3", "b"))
    result = settle_waitlist(seats, line, NOW, {"a": 2})
    # a keeps the two seats granted before; nothing more, not even a place
    # in line; b keeps one place.
    assert [(d.request.reservation_id, d.reject_reason) for d in result.decisions] == [
        ("r1", RejectReason.LIMIT_EXCEEDED),
        ("r3", RejectReason.LIMIT_EXCEEDED),
    ]
    assert result.seats_taken == 0


def test_a_request_that_waits_keeps_its_user_s_place_in_the_count() -> None:
    # The head cannot be served yet (3 > 2 available); the user's next request
    # behind it is still counted against the limit.
    seats = Seats(available=2, held=5, per_user_limit=4, queue_ttl=TTL)
    line = waiting_line(req("r1", "a", 3), req("r2", "a", 2))
    result = settle_waitlist(seats, line, NOW, {})
    assert [(d.request.reservation_id, d.reject_reason) for d in result.decisions] == [
        ("r2", RejectReason.LIMIT_EXCEEDED)
    ]
