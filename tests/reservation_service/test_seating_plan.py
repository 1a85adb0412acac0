"""A seating plan checked at CreateEvent: the plan it becomes, and every
problem named by the field of its section, row or seat."""

from __future__ import annotations

import pytest

from reservation_service.seating_plan import MAX_PROBLEMS
from reservation_service.validation import validate_create
from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_common.errors import InvalidArgument


def hall(rows: int = 2, seats: int = 4) -> pb.SeatingPlan:
    plan = pb.SeatingPlan()
    section = plan.sections.add(section_id="A", name="Stalls")
    for r in range(1, rows + 1):
        section.rows.add(row_id=f"A-{r}", seat_ids=[f"A-{r}-{n}" for n in range(1, seats + 1)])
    return plan


def problems(request: rs.CreateEventRequest) -> list[str]:
    with pytest.raises(InvalidArgument) as refused:
        validate_create(request)
    return [str(v) for v in refused.value.violations]


def seated(plan: pb.SeatingPlan, **fields: object) -> rs.CreateEventRequest:
    fields.setdefault("per_user_limit", 2)
    return rs.CreateEventRequest(name="Hall", seating_plan=plan, **fields)  # type: ignore[arg-type]


def test_a_plan_becomes_sections_and_the_event_s_capacity() -> None:
    plan = hall()
    plan.sections[0].rows[0].blocked_seat_ids.append("A-1-4")
    plan.sections[0].rows[1].accessible_seat_ids.append("A-2-1")
    plan.sections.add(section_id="GA", name="Standing", capacity=50)
    new = validate_create(seated(plan))
    assert new.capacity == 7 + 50
    assert new.plan is not None
    stalls, standing = new.plan.sections
    assert (stalls.section_id, stalls.sellable, stalls.standing) == ("A", 7, False)
    assert stalls.rows[1].accessible == frozenset({"A-2-1"})
    assert (standing.standing, standing.capacity) == (True, 50)
    # The plan's total given as capacity is as good as 0.
    assert validate_create(seated(plan, capacity=57)).capacity == 57


def test_every_problem_names_its_seat_row_or_section() -> None:
    plan = hall()
    plan.sections[0].rows[1].seat_ids[2] = "A-1-1"
    plan.sections[0].rows.add(row_id="A-1", seat_ids=["z"])
    plan.sections[0].rows[0].accessible_seat_ids.extend(["A-1-2", "A-1-2"])
    plan.sections.add(section_id="A", capacity=5)
    plan.sections.add(section_id="bad id", capacity=0)
    assert problems(seated(plan)) == [
        "seating_plan.sections[0].rows[0].accessible_seat_ids: names a seat twice",
        "seating_plan.sections[0].rows[1].seat_ids[2]: seat 'A-1-1' is in the plan twice "
        "(also seating_plan.sections[0].rows[0].seat_ids[0])",
        "seating_plan.sections[0].rows[2].row_id: 'A-1' is in the section twice",
        "seating_plan.sections[1].section_id: 'A' is in the plan twice",
        "seating_plan.sections[2].section_id: must be 1 to 64 of A-Z a-z 0-9 . _ : -, got 'bad id'",
        "seating_plan.sections[2].capacity: a standing section (no rows) has 1 to 100000 "
        "places, got 0",
    ]


def test_prices_are_the_event_s_currency_and_only_for_a_priced_event() -> None:
    plan = hall()
    plan.sections[0].price.CopyFrom(pb.Money(currency_code="USD", amount_minor=500))
    priced = seated(plan, price=pb.Money(currency_code="EUR", amount_minor=100))
    priced.hold_ttl.FromSeconds(60)
    assert problems(priced) == [
        "seating_plan.sections[0].price.currency_code: must be the event's currency EUR, got 'USD'"
    ]
    assert problems(seated(plan)) == [
        "seating_plan.sections[0].price: a free event's sections have no price (set the "
        "event's price)"
    ]
    priced.seating_plan.sections[0].price.currency_code = "EUR"
    assert validate_create(priced).plan.sections[0].price_minor == 500  # type: ignore[union-attr]


def test_capacity_and_the_limit_are_checked_against_the_plan() -> None:
    assert problems(seated(hall(), capacity=9, per_user_limit=9)) == [
        "capacity: must be 0 or the seating plan's places (8), got 9",
        "per_user_limit: must be between 1 and capacity, got 9",
    ]
    assert problems(seated(pb.SeatingPlan())) == [
        "seating_plan.sections: must be 1 to 1000 sections, got 0"
    ]


def test_a_hostile_plan_costs_one_short_answer() -> None:
    plan = pb.SeatingPlan()
    section = plan.sections.add(section_id="A")
    section.rows.add(row_id="A-1", seat_ids=["bad seat"] * 1000)
    found = problems(seated(plan))
    assert len(found) == MAX_PROBLEMS
    # Ids that fit but make a map too big for one answer.
    plan = pb.SeatingPlan()
    for s in range(100):
        section = plan.sections.add(section_id=f"S{s}-" + "x" * 60)
        for r in range(10):
            section.rows.add(
                row_id=f"R{r}-" + "y" * 60,
                seat_ids=[f"{s}-{r}-{n}-" + "z" * 50 for n in range(100)],
            )
    (too_big,) = problems(seated(plan))
    assert too_big.startswith("seating_plan.sections: its seat map would be ")
