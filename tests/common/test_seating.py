"""Best available seats together, by examples and by properties: what the
seat map chooses is what a brute-force reading of the rules chooses, over
random plans and seat states."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ticketing_common.seating import (
    PlanRow,
    PlanSection,
    Runs,
    SeatMap,
    SeatRef,
    SeatState,
    Verdict,
)

A, H, S = SeatState.AVAILABLE, SeatState.HELD, SeatState.SOLD


def row(row_id: str, size: int, **marks: frozenset[str]) -> PlanRow:
    return PlanRow(row_id, tuple(f"{row_id}{n}" for n in range(1, size + 1)), **marks)


def one_row_map(states: str) -> SeatMap:
    """A one-row map from a picture: ``.`` free, ``h`` held, ``x`` sold."""
    plan = [PlanSection("A", (row("r", len(states)),))]
    return SeatMap(plan, {f"r{i + 1}": {".": A, "h": H, "x": S}[c] for i, c in enumerate(states)})


def chosen_ids(choice_seats: tuple[SeatRef, ...]) -> list[str]:
    return [s.seat_id for s in choice_seats]


def test_the_first_request_gets_the_middle_of_the_front_row() -> None:
    plan = [PlanSection("A", (row("a", 10), row("b", 10))), PlanSection("B", (row("c", 10),))]
    seats = SeatMap(plan)
    choice = seats.best_available(2)
    assert choice.verdict is Verdict.GRANTED
    assert chosen_ids(choice.seats) == ["a5", "a6"]
    assert {(s.section_id, s.row_id) for s in choice.seats} == {("A", "a")}
    seats.set_state(chosen_ids(choice.seats), H)
    # Then beside it: an odd block leans as near the middle as it can.
    assert chosen_ids(seats.best_available(3).seats) == ["a2", "a3", "a4"]


def test_among_equally_near_blocks_one_that_strands_no_single_seat() -> None:
    # Seat ids count from 1, positions from 0. Free: positions 0-2 and 6-9 of
    # 10 (the middle is 4.5): the pair at 6-7 is nearer than 1-2.
    assert chosen_ids(one_row_map("...xxx....").best_available(2).seats) == ["r7", "r8"]
    # Free 2-7 of 9 (middle 4): pairs 3-4 and 4-5 are equally near; 3-4
    # would strand seat 2 alone, 4-5 strands nothing: 4-5, not the leftmost.
    assert chosen_ids(one_row_map("xx......x").best_available(2).seats) == ["r5", "r6"]
    # Free 1-6 of 9: 3-4 strands nothing, 4-5 would strand 6: 3-4.
    assert chosen_ids(one_row_map("x......xx").best_available(2).seats) == ["r4", "r5"]
    # Both strand one (free 2-6): the leftmost of the two.
    assert chosen_ids(one_row_map("xx.....xx").best_available(2).seats) == ["r4", "r5"]


def test_no_block_now_but_one_behind_a_hold_waits_else_no_seats_together_else_sold_out() -> None:
    assert one_row_map(".x.x.").best_available(2).verdict is Verdict.NO_SEATS_TOGETHER
    assert one_row_map(".h.x.").best_available(2).verdict is Verdict.WAIT
    assert one_row_map("xhxhx").best_available(1).verdict is Verdict.WAIT
    assert one_row_map("xxxxx").best_available(1).verdict is Verdict.SOLD_OUT
    assert one_row_map(".x.x.").best_available(1).verdict is Verdict.GRANTED


def test_chosen_seats_are_granted_only_all_available() -> None:
    seats = one_row_map("..h..")
    assert chosen_ids(seats.chosen(["r1", "r2"]).seats) == ["r1", "r2"]
    assert seats.chosen(["r2", "r3"]).verdict is Verdict.SEAT_TAKEN
    seats.set_state(["r1"], S)
    assert seats.chosen(["r1"]).verdict is Verdict.SEAT_TAKEN


def test_blocked_seats_never_go_and_accessible_ones_only_to_who_asks() -> None:
    plan = [
        PlanSection(
            "A",
            (row("a", 4, accessible=frozenset({"a2", "a3"}), blocked=frozenset({"a4"})),),
        )
    ]
    seats = SeatMap(plan)
    assert seats.states["a4"] is SeatState.BLOCKED
    assert seats.best_available(2).verdict is Verdict.NO_SEATS_TOGETHER
    assert chosen_ids(seats.best_available(2, accessible=True).seats) == ["a2", "a3"]
    assert seats.chosen(["a2"]).verdict is Verdict.SEAT_TAKEN
    assert seats.chosen(["a2"], accessible=True).verdict is Verdict.GRANTED
    assert seats.chosen(["a4"], accessible=True).verdict is Verdict.SEAT_TAKEN
    # A stored state never unblocks a seat.
    assert SeatMap(plan, {"a4": A}).states["a4"] is SeatState.BLOCKED


def test_a_section_asked_for_is_the_only_one_looked_in() -> None:
    plan = [PlanSection("A", (row("a", 2),)), PlanSection("B", (row("b", 3),))]
    seats = SeatMap(plan)
    assert [s.section_id for s in seats.best_available(2, section_id="B").seats] == ["B", "B"]
    seats.set_state(["b1", "b3"], S)
    assert seats.best_available(2, section_id="B").verdict is Verdict.NO_SEATS_TOGETHER
    assert seats.best_available(2).verdict is Verdict.GRANTED


# -- properties -------------------------------------------------------------

STATES = st.sampled_from([A, A, A, H, S])


@st.composite
def maps(draw: st.DrawFn) -> tuple[list[PlanSection], dict[str, SeatState]]:
    sections = []
    states: dict[str, SeatState] = {}
    for s in range(draw(st.integers(1, 3))):
        rows = []
        for r in range(draw(st.integers(1, 3))):
            plan_row = row(f"s{s}r{r}-", draw(st.integers(1, 9)))
            rows.append(plan_row)
            for seat in plan_row.seat_ids:
                states[seat] = draw(STATES)
        sections.append(PlanSection(f"s{s}", tuple(rows)))
    return sections, states


def brute_best(row_seats: tuple[str, ...], free: set[str], quantity: int) -> int | None:
    best = None
    n = len(row_seats)
    for first in range(n - quantity + 1):
        block = row_seats[first : first + quantity]
        if not all(s in free for s in block):
            continue
        distance = abs(2 * first + quantity - 1 - (n - 1))
        left_lone = (
            first >= 1
            and row_seats[first - 1] in free
            and (first == 1 or row_seats[first - 2] not in free)
        )
        end = first + quantity
        right_lone = (
            end < n and row_seats[end] in free and (end == n - 1 or row_seats[end + 1] not in free)
        )
        key = (distance, int(left_lone) + int(right_lone), first)
        best = key if best is None or key < best else best
    return None if best is None else best[2]


@settings(max_examples=300, deadline=None)
@given(maps(), st.integers(1, 4))
def test_best_available_is_the_rules_read_by_brute_force(
    drawn: tuple[list[PlanSection], dict[str, SeatState]], quantity: int
) -> None:
    plan, states = drawn
    choice = SeatMap(plan, states).best_available(quantity)
    free = {s for s, state in states.items() if state is A}
    opened = {s for s, state in states.items() if state in (A, H)}
    rows = [r for section in plan for r in section.rows]
    expected = next(
        ((r, first) for r in rows if (first := brute_best(r.seat_ids, free, quantity)) is not None),
        None,
    )
    if expected is not None:
        r, first = expected
        assert choice.verdict is Verdict.GRANTED
        assert chosen_ids(choice.seats) == list(r.seat_ids[first : first + quantity])
        assert {s.row_id for s in choice.seats} == {r.row_id}
    elif any(brute_best(r.seat_ids, opened, quantity) is not None for r in rows):
        assert choice.verdict is Verdict.WAIT
    elif opened:
        assert choice.verdict is Verdict.NO_SEATS_TOGETHER
    else:
        assert choice.verdict is Verdict.SOLD_OUT


@settings(max_examples=200, deadline=None)
@given(maps(), st.lists(st.integers(1, 4), min_size=1, max_size=30))
def test_a_run_of_requests_never_gives_a_seat_twice_and_every_block_is_together(
    drawn: tuple[list[PlanSection], dict[str, SeatState]], quantities: list[int]
) -> None:
    plan, states = drawn
    seats = SeatMap(plan, states)
    given_out: set[str] = set()
    for quantity in quantities:
        choice = seats.best_available(quantity)
        if choice.verdict is not Verdict.GRANTED:
            continue
        ids = chosen_ids(choice.seats)
        assert len(ids) == quantity
        assert not given_out & set(ids)
        assert all(seats.states[s] is A for s in ids)
        (r,) = [r for section in plan for r in section.rows if r.row_id == choice.seats[0].row_id]
        first = r.seat_ids.index(ids[0])
        assert list(r.seat_ids[first : first + quantity]) == ids  # side by side
        given_out |= set(ids)
        seats.set_state(ids, H)


def test_runs_of_a_row() -> None:
    runs = Runs([True, True, False, True, True, True, False])
    assert runs.longest == 3
    assert runs.best(3) == 3
    assert runs.best(4) is None
    assert Runs([]).longest == 0
