"""Seated decisions (``decide_seated``, ``settle_seated``): the checks of
general admission in the same order, then the seat map, in queue order;
and, over random batches, no seat given twice and every grant together."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from ticketing_common.decisions import Request, Seats, decide_seated, settle_seated
from ticketing_common.domain import RejectReason, Status
from ticketing_common.seating import PlanRow, PlanSection, SeatMap, SeatState

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
TERMS = Seats(available=0, per_user_limit=4, queue_ttl=timedelta(minutes=5))
HOLDS = Seats(
    available=0, per_user_limit=4, queue_ttl=timedelta(minutes=5), hold_ttl=timedelta(minutes=1)
)


def arena(sections: int = 1, rows: int = 2, seats: int = 6, standing: int = 0) -> SeatMap:
    plan = [
        PlanSection(
            f"S{s}",
            tuple(
                PlanRow(f"S{s}-{r}", tuple(f"S{s}-{r}-{n}" for n in range(1, seats + 1)))
                for r in range(1, rows + 1)
            ),
        )
        for s in range(1, sections + 1)
    ]
    if standing:
        plan.append(PlanSection("GA", (), capacity=standing))
    return SeatMap(plan)


def request(n: int, quantity: int = 1, user: str | None = None, **where: object) -> Request:
    return Request(
        reservation_id=f"r{n}",
        event_id="e",
        user_id=user or f"u{n}",
        quantity=quantity,
        idempotency_key=f"k{n}",
        accepted_at=NOW - timedelta(seconds=10) + timedelta(milliseconds=n),
        offset=n,
        **where,  # type: ignore[arg-type]
    )


def outcome_of(decisions: list) -> list[tuple[str, Status, RejectReason | None, list[str]]]:  # type: ignore[type-arg]
    return [
        (d.request.reservation_id, d.status, d.reject_reason, [s.seat_id for s in d.seats])
        for d in decisions
    ]


def test_queue_order_decides_who_gets_the_best_block_and_a_contested_seat() -> None:
    seats = arena()
    out = decide_seated(
        TERMS,
        seats,
        {},
        [
            request(1, 2),
            request(2, seat_ids=("S1-1-1",), quantity=1),
            request(3, seat_ids=("S1-1-1",), quantity=1),
            request(4, 2, section_id="S1"),
        ],
        NOW,
    )
    assert outcome_of(out.decisions) == [
        ("r1", Status.CONFIRMED, None, ["S1-1-3", "S1-1-4"]),
        ("r2", Status.CONFIRMED, None, ["S1-1-1"]),
        ("r3", Status.REJECTED, RejectReason.SEAT_TAKEN, []),
        ("r4", Status.CONFIRMED, None, ["S1-1-5", "S1-1-6"]),
    ]
    assert out.seats_confirmed == 5
    assert seats.states["S1-1-1"] is SeatState.SOLD


def test_the_checks_of_general_admission_come_first_in_their_order() -> None:
    seats = arena()
    old = Request(
        reservation_id="old",
        event_id="e",
        user_id="x",
        quantity=1,
        idempotency_key="k",
        accepted_at=NOW - timedelta(hours=1),
    )
    out = decide_seated(
        TERMS,
        seats,
        {"greedy": 3},
        [old, request(1, 2, user="greedy"), request(2, 1, user="greedy"), request(2, 1)],
        NOW,
    )
    assert outcome_of(out.decisions) == [
        ("old", Status.REJECTED, RejectReason.EXPIRED_IN_QUEUE, []),
        ("r1", Status.REJECTED, RejectReason.LIMIT_EXCEEDED, []),
        ("r2", Status.CONFIRMED, None, ["S1-1-3"]),
    ]
    assert [d.reservation_id for d in out.duplicates] == ["r2"]
    closed = decide_seated(
        Seats(available=0, per_user_limit=4, queue_ttl=timedelta(minutes=5), closed=True),
        seats,
        {},
        [request(5)],
        NOW,
    )
    assert outcome_of(closed.decisions) == [("r5", Status.REJECTED, RejectReason.SALE_CLOSED, [])]


def test_unknown_seats_and_sections_are_invalid_and_take_nothing() -> None:
    seats = arena()
    out = decide_seated(
        TERMS,
        seats,
        {},
        [request(1, seat_ids=("S1-1-1", "nope"), quantity=2), request(2, section_id="S9")],
        NOW,
    )
    assert [(d.status, d.reject_reason) for d in out.decisions] == [
        (Status.REJECTED, RejectReason.INVALID)
    ] * 2
    assert seats.states["S1-1-1"] is SeatState.AVAILABLE


def test_a_pair_waits_on_held_seats_that_could_make_a_pair_and_singles_still_go() -> None:
    seats = arena(rows=1, seats=3)
    seats.set_state(["S1-1-2"], SeatState.HELD)
    out = decide_seated(HOLDS, seats, {}, [request(1, 2), request(2, 1), request(3, 2)], NOW)
    # 1 and 3 are free, 2 held: a pair could form when the hold runs out.
    assert outcome_of(out.decisions) == [
        ("r1", Status.QUEUED, None, []),
        ("r2", Status.HELD, None, ["S1-1-1"]),
        # Now only 2-3 could make a pair, once the hold on 2 runs out.
        ("r3", Status.QUEUED, None, []),
    ]
    # The hold runs out: the first waiting pair gets 2-3; the next waits on
    # (every seat is held now, and holds may run out).
    seats.set_state(["S1-1-2"], SeatState.AVAILABLE)
    waiting = [request(1, 2), request(3, 2)]
    settled = settle_seated(HOLDS, seats, waiting, NOW, {})
    assert outcome_of(settled.decisions) == [("r1", Status.HELD, None, ["S1-1-2", "S1-1-3"])]
    # Those holds are paid: no pair can ever form, the waiting pair is refused.
    seats.set_state(["S1-1-1", "S1-1-2", "S1-1-3"], SeatState.SOLD)
    settled = settle_seated(HOLDS, seats, [request(3, 2)], NOW, {})
    assert outcome_of(settled.decisions) == [("r3", Status.REJECTED, RejectReason.SOLD_OUT, [])]


def test_no_block_together_is_refused_and_nothing_left_is_sold_out() -> None:
    seats = arena(rows=1, seats=5)
    seats.set_state(["S1-1-2", "S1-1-4"], SeatState.SOLD)
    out = decide_seated(TERMS, seats, {}, [request(1, 2), request(2, 3, section_id="S1")], NOW)
    assert [(d.status, d.reject_reason) for d in out.decisions] == [
        (Status.REJECTED, RejectReason.NO_SEATS_TOGETHER)
    ] * 2
    seats.set_state(["S1-1-1", "S1-1-3", "S1-1-5"], SeatState.SOLD)
    out = decide_seated(TERMS, seats, {}, [request(3)], NOW)
    assert out.decisions[0].reject_reason is RejectReason.SOLD_OUT


def test_paused_everything_waits_the_limit_holding_and_resumed_the_waitlist_is_served() -> None:
    seats = arena(rows=1, seats=4)
    paused = Seats(available=4, per_user_limit=2, queue_ttl=timedelta(minutes=5), paused=True)
    out = decide_seated(
        paused, seats, {}, [request(1, 2, user="a"), request(2, 1, user="a"), request(3, 2)], NOW
    )
    assert [(d.status, d.reject_reason) for d in out.decisions] == [
        (Status.QUEUED, None),
        (Status.REJECTED, RejectReason.LIMIT_EXCEEDED),
        (Status.QUEUED, None),
    ]
    assert all(s is SeatState.AVAILABLE for s in seats.states.values())
    # Paused, the waitlist keeps waiting; resumed, it is served in order.
    assert settle_seated(paused, seats, [request(1, 2, user="a")], NOW, {}).decisions == []
    resumed = settle_seated(TERMS, seats, [request(1, 2, user="a"), request(3, 2)], NOW, {})
    assert outcome_of(resumed.decisions) == [
        ("r1", Status.CONFIRMED, None, ["S1-1-2", "S1-1-3"]),
        ("r3", Status.REJECTED, RejectReason.NO_SEATS_TOGETHER, []),
    ]


def test_the_priority_lane_chooses_first() -> None:
    seats = arena(rows=1, seats=2)
    vip = Seats(
        available=2,
        per_user_limit=4,
        queue_ttl=timedelta(minutes=5),
        priority_tiers=frozenset({"vip"}),
    )
    late_vip = Request(
        reservation_id="v",
        event_id="e",
        user_id="v",
        quantity=2,
        idempotency_key="k",
        accepted_at=NOW,
        tier="vip",
    )
    out = decide_seated(vip, seats, {}, [request(1, 2), late_vip], NOW)
    assert outcome_of(out.decisions) == [
        ("v", Status.CONFIRMED, None, ["S1-1-1", "S1-1-2"]),
        ("r1", Status.REJECTED, RejectReason.SOLD_OUT, []),
    ]


def test_a_standing_section_serves_any_number_of_its_places() -> None:
    seats = arena(rows=1, seats=2, standing=3)
    out = decide_seated(
        TERMS, seats, {}, [request(1, 3, section_id="GA"), request(2, 1, section_id="GA")], NOW
    )
    assert [(d.status, d.reject_reason) for d in out.decisions] == [
        (Status.CONFIRMED, None),
        (Status.REJECTED, RejectReason.SOLD_OUT),
    ]
    assert {(s.section_id, s.row_id) for s in out.decisions[0].seats} == {("GA", "")}
    assert len({s.seat_id for s in out.decisions[0].seats}) == 3


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 4),
            st.sampled_from(["", "S1", "S2"]),
            st.lists(
                st.sampled_from(
                    [f"S{s}-{r}-{n}" for s in (1, 2) for r in (1, 2) for n in range(1, 6)]
                ),
                max_size=3,
                unique=True,
            ),
        ),
        max_size=40,
    ),
    st.booleans(),
)
def test_no_seat_twice_every_grant_together_and_nobody_refused_a_free_block(
    asks: list[tuple[int, str, list[str]]], holds: bool
) -> None:
    seats = arena(sections=2, rows=2, seats=5)
    terms = HOLDS if holds else TERMS
    requests = [
        request(i, len(chosen) or quantity, seat_ids=tuple(chosen))
        if chosen
        else request(i, quantity, section_id=section)
        for i, (quantity, section, chosen) in enumerate(asks)
    ]
    given_out: dict[str, str] = {}
    # Decided one by one, checking each against the map as it stood.
    for r in requests:
        before = SeatMap(
            [PlanSection(s.section_id, s.rows) for s in seats.sections], dict(seats.states)
        )
        out = decide_seated(terms, seats, {}, [r], NOW)
        (d,) = out.decisions
        if d.status in (Status.HELD, Status.CONFIRMED):
            for s in d.seats:
                assert s.seat_id not in given_out
                given_out[s.seat_id] = r.reservation_id
            assert [s.seat_id for s in d.seats] == list(r.seat_ids) or not r.seat_ids
            if not r.seat_ids:
                assert len({s.row_id for s in d.seats}) == 1
                numbers = sorted(int(s.seat_id.rsplit("-", 1)[1]) for s in d.seats)
                assert numbers == list(range(numbers[0], numbers[0] + r.quantity))
        elif r.seat_ids:
            assert d.reject_reason is RejectReason.SEAT_TAKEN
        else:
            # Refused or waiting only when no free block of its size was there.
            free = before.best_available(r.quantity, section_id=r.section_id or None)
            assert free.verdict.value != "GRANTED"
    assert {
        seat for seat, state in seats.states.items() if state is not SeatState.AVAILABLE
    } == set(given_out)
