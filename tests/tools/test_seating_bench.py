"""The seating benchmark's pure parts: the arena, the burst, what the rules
give each buyer, the checks on what was stored, and the summary."""

from __future__ import annotations

from ticketing_tools.seating_bench import (
    GENERAL,
    SEATED,
    Arena,
    Outcome,
    Phase,
    apart,
    burst,
    busy_and_stolen,
    differences,
    expected_general,
    expected_seated,
    is_consumer,
    order,
    sold_twice,
    summary,
    table,
)


def test_the_arena_is_50_sections_of_20_rows_of_20_seats_named_along_each_row() -> None:
    arena = Arena()
    plan = arena.plan()
    seats = [seat for section in plan for row in section.rows for seat in row.seat_ids]
    assert (arena.capacity, len(seats), len(set(seats))) == (20_000, 20_000, 20_000)
    assert [s.section_id for s in plan[:2]] == ["S01", "S02"]
    assert plan[0].rows[0].row_id == "S01-R01"
    assert plan[0].rows[0].seat_ids[:3] == ("S01-R01-01", "S01-R01-02", "S01-R01-03")
    assert plan[-1].rows[-1].seat_ids[-1] == "S50-R20-20"
    assert not any(row.accessible or row.blocked for section in plan for row in section.rows)
    proto = arena.proto()
    assert [s.section_id for s in proto.sections] == [s.section_id for s in plan]
    assert list(proto.sections[49].rows[19].seat_ids) == list(plan[49].rows[19].seat_ids)


def test_ids_widen_for_a_hundred_rows_or_more() -> None:
    assert Arena(1, 100, 2).plan()[0].rows[99].seat_ids == ("S001-R100-001", "S001-R100-002")


def test_the_burst_is_the_same_for_a_seed_and_asks_1_to_4_seats() -> None:
    first = burst(7, 40_000)
    assert first == burst(7, 40_000)
    assert first != burst(8, 40_000)
    assert set(first) == {1, 2, 3, 4}
    assert 2.4 < sum(first) / len(first) < 2.6


def test_general_admission_grants_whatever_still_fits() -> None:
    sold_out = Outcome(reason="SOLD_OUT")
    assert expected_general([2, 2, 2, 1, 1], 5) == [
        Outcome(2),
        Outcome(2),
        sold_out,
        Outcome(1),
        sold_out,
    ]


def test_the_arena_grants_blocks_nearest_the_middle_then_refuses_what_cannot_sit_together() -> None:
    got = expected_seated([2, 2, 2, 1, 1], Arena(1, 1, 5))
    assert got == [
        # Two blocks as near the middle, each stranding one seat: the leftmost.
        Outcome(2, ("S01-R01-02", "S01-R01-03")),
        Outcome(2, ("S01-R01-04", "S01-R01-05")),
        Outcome(reason="NO_SEATS_TOGETHER"),
        Outcome(1, ("S01-R01-01",)),
        Outcome(reason="SOLD_OUT"),
    ]


def test_the_arena_sells_out_to_the_burst_with_every_grant_together_and_no_seat_twice() -> None:
    arena = Arena(3, 4, 10)
    got = expected_seated(burst(1, 200), arena)
    grants = {str(n): o.seats for n, o in enumerate(got) if o.seats}
    positions = {
        seat: (section.section_id, row.row_id, place)
        for section in arena.plan()
        for row in section.rows
        for place, seat in enumerate(row.seat_ids)
    }
    assert sum(o.quantity for o in got) == arena.capacity
    assert all(len(o.seats) == o.quantity for o in got)
    assert sold_twice(grants) == []
    assert apart(grants, positions) == []


def test_differences_name_each_buyer_not_as_expected_up_to_a_few() -> None:
    expected = [Outcome(2, ("a", "b")), Outcome(reason="SOLD_OUT"), Outcome(1, ("c",))]
    assert differences(expected, dict(enumerate(expected)), seats=True) == []
    # Other seats: a difference for a seated event, not for general admission.
    moved = {0: Outcome(2, ("b", "c")), 1: expected[1], 2: expected[2]}
    assert differences(expected, moved, seats=False) == []
    assert differences(expected, moved, seats=True) == [
        f"buyer 0: {moved[0]}, expected {expected[0]}"
    ]
    assert differences(expected, {0: expected[0], 5: Outcome(1)}, seats=True) == [
        "buyer 1: no outcome",
        "buyer 2: no outcome",
        "buyer 5: not sent, but decided",
    ]
    many = differences([Outcome(1)] * 10, {}, seats=False, shown=3)
    assert many == [
        "buyer 0: no outcome",
        "buyer 1: no outcome",
        "buyer 2: no outcome",
        "... 10 buyers in all",
    ]


def test_a_seat_listed_twice_is_found() -> None:
    assert sold_twice({"r1": ["a", "b"], "r2": ["c"]}) == []
    assert sold_twice({"r1": ["a", "b"], "r2": ["b", "c"], "r3": ["c"]}) == ["b", "c"]
    assert sold_twice({"r1": ["a", "a"]}) == ["a"]


def test_grants_not_side_by_side_in_one_row_are_found() -> None:
    positions = {
        "a1": ("A", "1", 0),
        "a2": ("A", "1", 1),
        "a3": ("A", "1", 2),
        "b1": ("A", "2", 0),
        "c2": ("B", "1", 1),
    }
    grants = {
        "together": ["a3", "a2"],
        "gap": ["a1", "a3"],
        "two rows": ["a1", "b1"],
        "two sections": ["a2", "c2"],
        "alone": ["b1"],
    }
    assert apart(grants, positions) == ["gap", "two rows", "two sections"]


def phase(round_: int, kind: str, seconds: float, cpu_s: float = 1.0) -> Phase:
    return Phase(
        round_, kind, f"{kind}-{round_}", 40_000, committed_s=seconds, consumer_cpu_s=cpu_s
    )


def test_rounds_alternate_which_kind_goes_first() -> None:
    assert [order(r) for r in (1, 2, 3)] == [
        (GENERAL, SEATED),
        (SEATED, GENERAL),
        (GENERAL, SEATED),
    ]


def test_the_summary_is_the_ratio_of_the_medians_and_of_each_round() -> None:
    phases = [
        phase(1, GENERAL, 4.0),  # 10,000/s
        phase(1, SEATED, 5.0),  # 8,000/s
        phase(2, SEATED, 8.0),  # 5,000/s
        phase(2, GENERAL, 5.0),  # 8,000/s
        phase(3, GENERAL, 5.0, cpu_s=4.0),
        phase(3, SEATED, 4.0),  # 10,000/s
    ]
    totals = summary(phases)
    assert totals["median"][GENERAL]["decisions_per_s"] == 8_000
    assert totals["median"][SEATED]["decisions_per_s"] == 8_000
    assert totals["median"][GENERAL]["consumer_cpu_s"] == 1.0
    assert totals["median"][GENERAL]["consumer_cpu_ms_per_decision"] == 0.025
    assert totals["ratio"] == 1.0
    assert totals["ratio_by_round"] == {1: 0.8, 2: 0.625, 3: 1.25}
    text = table(phases, totals)
    assert "seated / general admission (medians): 1.00  (target >= 0.8: met)" in text
    assert "round 2: 0.62" in text
    slow = summary([phase(1, GENERAL, 4.0), phase(1, SEATED, 6.0)])
    assert "(target >= 0.8: NOT met)" in table([], slow)


def test_consumers_are_told_by_their_command_line() -> None:
    assert is_consumer(["/venv/bin/python", "-m", "consumer_service"])
    assert not is_consumer(["/venv/bin/python", "-m", "gateway"])
    assert not is_consumer(["postgres", "-D", "/data", "consumer_service"])


def test_the_machine_s_busy_and_stolen_seconds_come_from_proc_stat() -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice, in ticks
    line = "cpu  700 50 200 9000 40 5 45 30 0 0\n"
    assert busy_and_stolen(line, 100) == (10.0, 0.3)
