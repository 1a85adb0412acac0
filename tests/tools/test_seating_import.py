"""Seating plans from JSON: pretix's plans and ours become the sections the
seat map reads, ours is the proto JSON mapping of the contract's SeatingPlan
(and its schema names the contract's fields), and every malformed plan is
refused naming where it is wrong."""

# The tables of malformed plans keep one case a line, its exact message whole.
# ruff: noqa: E501

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from ticketing.v1 import reservation_pb2, reservation_service_pb2
from ticketing_common.seating import PlanRow, PlanSection, SeatMap, Verdict
from ticketing_tools import seating_import
from ticketing_tools.seating_import import (
    MONEY_FIELDS,
    PLAN_FIELDS,
    ROW_FIELDS,
    SECTION_FIELDS,
    Plan,
    PlanError,
    from_json,
    from_pretix,
    from_proto,
    load,
    to_json,
    to_proto,
)

SCHEMA = Path(__file__).parents[2] / "docs" / "seating-plan.schema.json"


def seat(guid: str, number: str, x: float, y: float = 0) -> dict[str, Any]:
    return {
        "seat_guid": guid,
        "seat_number": number,
        "position": {"x": x, "y": y},
        "category": "Stalls",
    }


def pretix_plan() -> dict[str, Any]:
    """A plan in the shape of pretix's seating-plan.schema.json: two zones
    of seats and one of drawing only; seats listed out of their x order."""
    return {
        "name": "Grosser Saal",
        "categories": [{"name": "Stalls", "color": "#ff0000"}, {"name": "Balcony"}],
        "size": {"width": 600, "height": 400},
        "zones": [
            {
                "name": "Parkett",
                "zone_id": "parkett",
                "uuid": "0b6f0f3e-8b7a-4c3e-9d0e-3c1f2d4b5a6c",
                "position": {"x": 0, "y": 0},
                "areas": [
                    {
                        "shape": "rectangle",
                        "position": {"x": 0, "y": 0},
                        "rectangle": {"width": 300, "height": 40},
                        "text": {"text": "Stage", "position": {"x": 10, "y": 10}},
                    }
                ],
                "rows": [
                    {
                        "row_number": "1",
                        "row_label": "Row %s",
                        "position": {"x": 40, "y": 60},
                        "seats": [
                            seat("parkett-1-3", "3", 66),
                            seat("parkett-1-1", "1", 0),
                            seat("parkett-1-2", "2", 33.5),
                        ],
                    },
                    {
                        "row_number": "2",
                        "position": {"x": 40, "y": 90},
                        "seats": [seat("parkett-2-2", "2", 30), seat("parkett-2-1", "1", 0)],
                    },
                ],
            },
            {
                "name": "Decoration",
                "position": {"x": 0, "y": 0},
                "rows": [],
                "areas": [{"shape": "circle", "circle": {"radius": 5}}],
            },
            {
                "name": "Balkon",
                "position": {"x": 0, "y": 200},
                "rows": [
                    {
                        "row_number": "1",
                        "seats": [
                            # Drawn upright: x equal, along y.
                            seat("Balkon Links/Reihe 1/Platz 1", "1", 10, 0),
                            seat("b-1-2", "2", 10, -30),
                        ],
                    },
                    {
                        # The same row number again, the row's other half past an aisle.
                        "row_number": "1",
                        "seats": [seat("b-1-3", "3", 100)],
                    },
                ],
            },
        ],
    }


PRETIX_SECTIONS = (
    PlanSection(
        "parkett",
        (
            PlanRow("parkett:1", ("parkett-1-1", "parkett-1-2", "parkett-1-3")),
            PlanRow("parkett:2", ("parkett-2-1", "parkett-2-2")),
        ),
        name="Parkett",
    ),
    PlanSection(
        "Balkon",
        (
            PlanRow("Balkon:1", ("b-1-2", "Balkon_Links_Reihe_1_Platz_1.c2dc8eeadbda")),
            PlanRow("Balkon:1.2", ("b-1-3",)),
        ),
        name="Balkon",
    ),
)
PRETIX = Plan(PRETIX_SECTIONS)


def test_pretix_zones_become_sections_rows_in_order_seats_along_x() -> None:
    plan = from_pretix(pretix_plan())

    assert plan == PRETIX
    sections = plan.sections
    # Nothing in pretix's plan blocks a seat or makes it accessible.
    assert all(not row.blocked and not row.accessible for s in sections for row in s.rows)
    # What it imports, the seat map seats: three together in the front row's middle.
    choice = SeatMap(sections).best_available(3)
    assert choice.verdict is Verdict.GRANTED
    assert [ref.seat_id for ref in choice.seats] == ["parkett-1-1", "parkett-1-2", "parkett-1-3"]


def test_pretix_ids_that_do_not_fit_are_mapped_deterministically_and_stay_distinct() -> None:
    plan = pretix_plan()
    long = "x" * 70
    plan["zones"][0]["rows"][1]["seats"] = [seat(long, "1", 0), seat(long + "y", "2", 30)]
    plan["zones"][2]["name"] = "Balkon rechts"
    del plan["zones"][0]["zone_id"]

    sections = from_pretix(plan).sections

    first, second = sections[0].rows[1].seat_ids
    assert first == "x" * 51 + ".c71bd109227e"
    assert second.startswith("x" * 51 + ".") and second != first
    assert all(len(seat_id) <= 64 for seat_id in (first, second))
    assert sections[0].section_id == "Parkett"
    balcony = sections[1]
    assert balcony.section_id.startswith("Balkon_rechts.")
    assert balcony.rows[0].row_id.startswith("Balkon_rechts.")
    assert from_pretix(plan).sections == sections


def test_pretix_seats_at_one_place_keep_the_order_listed() -> None:
    plan = pretix_plan()
    plan["zones"][0]["rows"][1]["seats"] = [seat("z", "1", 5, 5), seat("a", "2", 5, 5)]
    assert from_pretix(plan).sections[0].rows[1].seat_ids == ("z", "a")


def test_pretix_zone_without_name_or_id_is_named_by_its_index() -> None:
    plan = pretix_plan()
    del plan["zones"][2]["name"]
    sections = from_pretix(plan).sections
    assert [(s.section_id, s.name) for s in sections] == [("parkett", "Parkett"), ("zone-2", "")]


def broken(path: list[str | int], value: Any) -> dict[str, Any]:
    """pretix's plan with the value at ``path`` replaced (``...`` deletes it)."""
    plan = pretix_plan()
    target: Any = plan
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return plan


SEAT: list[str | int] = ["zones", 2, "rows", 0, "seats", 1]


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ([], "plan: expected an object, got an array"),
        (broken(["name"], ...), "name: missing"),
        (broken(["categories"], {}), "categories: expected an array, got an object"),
        (broken(["categories", 1, "name"], 5), "categories[1].name: expected a string, got a number"),
        (broken(["zones"], ...), "zones: missing"),
        (broken(["zones"], []), "zones: no zone has a row of seats"),
        (broken(["zones", 1], "Balkon"), "zones[1]: expected an object, got a string"),
        (broken(["zones", 0, "position"], ...), "zones[0].position: missing"),
        (broken(["zones", 0, "rows"], None), "zones[0].rows: expected an array, got null"),
        (broken(["zones", 2, "name"], 7), "zones[2].name: expected a string, got a number"),
        (broken(["zones", 0, "zone_id"], False), "zones[0].zone_id: expected a string, got a boolean"),
        (broken(["zones", 2, "rows", 1, "row_number"], ...), "zones[2].rows[1].row_number: missing"),
        (broken(["zones", 2, "rows", 1, "row_number"], 1), "zones[2].rows[1].row_number: expected a string, got a number"),
        (broken(["zones", 0, "rows", 1, "seats"], []), "zones[0].rows[1].seats: a row needs at least one seat"),
        (broken(["zones", 0, "rows", 1, "seats"], ...), "zones[0].rows[1].seats: missing"),
        (broken([*SEAT], 3), "zones[2].rows[0].seats[1]: expected an object, got a number"),
        (broken([*SEAT, "seat_guid"], ...), "zones[2].rows[0].seats[1].seat_guid: missing"),
        (broken([*SEAT, "seat_guid"], ""), "zones[2].rows[0].seats[1].seat_guid: empty seat_guid"),
        (broken([*SEAT, "seat_guid"], "parkett-2-1"), "zones[2].rows[0].seats[1].seat_guid: duplicate seat_guid 'parkett-2-1' (first at zones[0].rows[1].seats[1].seat_guid)"),
        (broken([*SEAT, "seat_number"], 2), "zones[2].rows[0].seats[1].seat_number: expected a string, got a number"),
        (broken([*SEAT, "category"], ...), "zones[2].rows[0].seats[1].category: missing"),
        (broken([*SEAT, "position"], ...), "zones[2].rows[0].seats[1].position: missing"),
        (broken([*SEAT, "position", "x"], ...), "zones[2].rows[0].seats[1].position.x: missing"),
        (broken([*SEAT, "position", "y"], "0"), "zones[2].rows[0].seats[1].position.y: expected a number, got a string"),
        (broken([*SEAT, "position", "x"], True), "zones[2].rows[0].seats[1].position.x: expected a number, got a boolean"),
        (broken([*SEAT, "position", "x"], float("nan")), "zones[2].rows[0].seats[1].position.x: expected a finite number, got nan"),
        (broken(["zones", 2, "name"], "B" * 201), "zones[2].name: a section's name is at most 200 printable characters"),
        (broken(["zones", 2, "name"], "Balkon\n"), "zones[2].name: a section's name is at most 200 printable characters"),
        (broken([*SEAT, "seat_guid"], "Balkon_Links_Reihe_1_Platz_1.c2dc8eeadbda"), "zones[2].rows[0].seats[1].seat_guid: seat id 'Balkon_Links_Reihe_1_Platz_1.c2dc8eeadbda' of 'Balkon_Links_Reihe_1_Platz_1.c2dc8eeadbda' is taken (by zones[2].rows[0].seats[0].seat_guid)"),
    ],
)  # fmt: skip
def test_pretix_malformed_plans_are_refused_naming_the_path(plan: object, message: str) -> None:
    with pytest.raises(PlanError) as raised:
        from_pretix(plan)
    assert str(raised.value) == message
    assert raised.value.path == message.split(": ", 1)[0]


def our_plan() -> dict[str, Any]:
    """Our format as someone might write it: JSON names mostly, a proto name
    here and there (the mapping takes either), an int64 as the string the
    mapping writes; a seated section, one whose row id is another
    section's too, and a standing one."""
    return {
        "sections": [
            {
                "sectionId": "A",
                "name": "Stalls",
                "price": {"currencyCode": "EUR", "amountMinor": "4500"},
                "rows": [
                    {
                        "rowId": "A-1",
                        "seatIds": ["A-1-1", "A-1-2", "A-1-3"],
                        "accessibleSeatIds": ["A-1-1"],
                        "blockedSeatIds": ["A-1-3"],
                    },
                    {"rowId": "A-2", "seatIds": ["A-2-1", "A-2-2"]},
                ],
            },
            {
                "section_id": "B",
                "capacity": 1,
                "rows": [{"row_id": "A-1", "seat_ids": ["B-1-1"], "blocked_seat_ids": []}],
            },
            {
                "sectionId": "GA",
                "name": "Standing",
                "price": {"currency_code": "EUR", "amount_minor": 2000},
                "capacity": "50",
            },
        ]
    }


OUR_SECTIONS = (
    PlanSection(
        "A",
        (
            PlanRow(
                "A-1",
                ("A-1-1", "A-1-2", "A-1-3"),
                accessible=frozenset({"A-1-1"}),
                blocked=frozenset({"A-1-3"}),
            ),
            PlanRow("A-2", ("A-2-1", "A-2-2")),
        ),
        name="Stalls",
        price_minor=4500,
    ),
    # A seated section's capacity as given: 0 (left out) or its seats' count.
    PlanSection("B", (PlanRow("A-1", ("B-1-1",)),), capacity=1),
    PlanSection("GA", (), name="Standing", price_minor=2000, capacity=50),
)
OURS = Plan(OUR_SECTIONS, "EUR")

# What to_json writes: JSON names, defaults left out.
OURS_WRITTEN = {
    "sections": [
        {
            "sectionId": "A",
            "name": "Stalls",
            "price": {"currencyCode": "EUR", "amountMinor": 4500},
            "rows": [
                {
                    "rowId": "A-1",
                    "seatIds": ["A-1-1", "A-1-2", "A-1-3"],
                    "accessibleSeatIds": ["A-1-1"],
                    "blockedSeatIds": ["A-1-3"],
                },
                {"rowId": "A-2", "seatIds": ["A-2-1", "A-2-2"]},
            ],
        },
        {"sectionId": "B", "capacity": 1, "rows": [{"rowId": "A-1", "seatIds": ["B-1-1"]}]},
        {
            "sectionId": "GA",
            "name": "Standing",
            "price": {"currencyCode": "EUR", "amountMinor": 2000},
            "capacity": 50,
        },
    ]
}


def test_our_format_reads_and_round_trips() -> None:
    plan = from_json(our_plan())
    assert plan == OURS
    assert plan.places == 4 + 1 + 50  # A-1-3 is blocked

    written = to_json(plan)
    assert written == OURS_WRITTEN
    assert from_json(written) == plan
    assert from_json(json.loads(json.dumps(written))) == plan
    assert from_proto(to_proto(plan)) == plan
    assert to_json(from_pretix(pretix_plan())) == to_json(PRETIX)


def test_our_format_is_the_proto_json_mapping_of_the_seating_plan() -> None:
    """The file as written, parsed by protobuf's own JSON parser (as grpcurl
    parses it), is the message we send for it; and what we write it parses
    back to the same."""
    message = to_proto(from_json(our_plan()))
    assert json_format.ParseDict(our_plan(), reservation_pb2.SeatingPlan()) == message
    assert json_format.ParseDict(to_json(OURS), reservation_pb2.SeatingPlan()) == message
    # Embedded in a CreateEventRequest as grpcurl is given it.
    request = json_format.ParseDict(
        {"name": "Hall", "per_user_limit": 2, "seating_plan": our_plan()},
        reservation_service_pb2.CreateEventRequest(),
    )
    assert request.seating_plan == message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (PLAN_FIELDS, reservation_pb2.SeatingPlan),
        (SECTION_FIELDS, reservation_pb2.Section),
        (ROW_FIELDS, reservation_pb2.Row),
        (MONEY_FIELDS, reservation_pb2.Money),
    ],
)
def test_the_fields_read_are_the_contracts_fields(fields: dict[str, str], message: Any) -> None:
    """A field added to the contract fails here until the importer reads it."""
    assert fields == {f.name: f.json_name for f in message.DESCRIPTOR.fields}


def ours(path: list[str | int], value: Any) -> dict[str, Any]:
    plan = our_plan()
    target: Any = plan
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return plan


ROW: list[str | int] = ["sections", 0, "rows", 1]
PRICE: list[str | int] = ["sections", 0, "price"]
STANDING: list[str | int] = ["sections", 2]
ALL_BLOCKED = {
    "sections": [
        {"sectionId": "X", "rows": [{"rowId": "1", "seatIds": ["s"], "blockedSeatIds": ["s"]}]}
    ]
}


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ("A", "plan: expected an object, got a string"),
        (ours(["sections"], ...), "sections: missing"),
        (ours(["sections"], []), "sections: a plan needs at least one section"),
        (ours(["event"], "e1"), "event: unknown field"),
        (ALL_BLOCKED, "sections: a plan has 1 to 100000 places to sell, got 0"),
        (ours(["sections", 1], []), "sections[1]: expected an object, got an array"),
        (ours(["sections", 1, "section_id"], ...), "sections[1].sectionId: missing"),
        (ours(["sections", 0, "section_id"], "A"), "sections[0].section_id: the same field as 'sectionId': give it once"),
        (ours(["sections", 1, "section_id"], ""), "sections[1].section_id: empty section id"),
        (ours(["sections", 1, "section_id"], "A"), "sections[1].section_id: duplicate section id 'A' (first at sections[0].sectionId)"),
        (ours(["sections", 1, "section_id"], "B 1"), "sections[1].section_id: section id 'B 1' is not at most 64 characters of [A-Za-z0-9._:-]"),
        (ours(["sections", 1, "section_id"], "B" * 65), f"sections[1].section_id: section id '{'B' * 65}' is not at most 64 characters of [A-Za-z0-9._:-]"),
        (ours(["sections", 0, "name"], 3), "sections[0].name: expected a string, got a number"),
        (ours(["sections", 0, "name"], "S" * 201), "sections[0].name: a section's name is at most 200 printable characters"),
        (ours(["sections", 0, "name"], "Stalls\t"), "sections[0].name: a section's name is at most 200 printable characters"),
        (ours(["sections", 0, "title"], "x"), "sections[0].title: unknown field"),
        (ours(["sections", 0, "rows"], []), "sections[0].capacity: missing: a section without rows is standing, of capacity places"),
        (ours(["sections", 1, "rows"], None), "sections[1].rows: expected an array, got null"),
        (ours(["sections", 1, "capacity"], 2), "sections[1].capacity: a seated section's capacity is 0 or its seats not blocked (1), got 2"),
        (ours([*STANDING, "capacity"], 0), "sections[2].capacity: a standing section (no rows) has 1 to 100000 places, got 0"),
        (ours([*STANDING, "capacity"], 100_001), "sections[2].capacity: a standing section (no rows) has 1 to 100000 places, got 100001"),
        (ours([*STANDING, "capacity"], "fifty"), "sections[2].capacity: expected an integer, got 'fifty'"),
        (ours([*STANDING, "capacity"], 2.5), "sections[2].capacity: expected an integer, got 2.5"),
        (ours([*STANDING, "capacity"], True), "sections[2].capacity: expected an integer, got a boolean"),
        (ours([*STANDING, "capacity"], None), "sections[2].capacity: expected an integer, got null"),
        (ours([*PRICE], None), "sections[0].price: expected an object, got null"),
        (ours([*PRICE], {}), "sections[0].price.currencyCode: missing"),
        (ours([*PRICE, "amount"], 1), "sections[0].price.amount: unknown field"),
        (ours([*PRICE, "currencyCode"], "eur"), "sections[0].price.currencyCode: expected an ISO 4217 code such as 'EUR', got 'eur'"),
        (ours([*PRICE, "amountMinor"], ...), "sections[0].price.amountMinor: missing"),
        (ours([*PRICE, "amountMinor"], 0), "sections[0].price.amountMinor: must be 1 to 1000000000000, got 0"),
        (ours([*PRICE, "amountMinor"], "-5"), "sections[0].price.amountMinor: must be 1 to 1000000000000, got -5"),
        (ours([*PRICE, "amount_minor"], 5), "sections[0].price.amount_minor: the same field as 'amountMinor': give it once"),
        (ours([*STANDING, "price", "currency_code"], "USD"), "sections[2].price.currency_code: 'USD' is not the plan's currency 'EUR' (of sections[0].price.currencyCode): a plan is priced in its event's currency"),
        (ours([*ROW], None), "sections[0].rows[1]: expected an object, got null"),
        (ours([*ROW, "rowId"], 2), "sections[0].rows[1].rowId: expected a string, got a number"),
        (ours([*ROW, "rowId"], "A-1"), "sections[0].rows[1].rowId: duplicate row id 'A-1' (first at sections[0].rows[0].rowId)"),
        (ours([*ROW, "blocked"], []), "sections[0].rows[1].blocked: unknown field"),
        (ours([*ROW, "seatIds"], ...), "sections[0].rows[1].seatIds: missing"),
        (ours([*ROW, "seatIds"], []), "sections[0].rows[1].seatIds: a row needs at least one seat"),
        (ours([*ROW, "seatIds"], "A-2-1"), "sections[0].rows[1].seatIds: expected an array, got a string"),
        (ours([*ROW, "seatIds", 1], "A-1-2"), "sections[0].rows[1].seatIds[1]: duplicate seat id 'A-1-2' (first at sections[0].rows[0].seatIds[1])"),
        (ours([*ROW, "seatIds", 1], "A-2-1"), "sections[0].rows[1].seatIds[1]: duplicate seat id 'A-2-1' (first at sections[0].rows[1].seatIds[0])"),
        (ours(["sections", 1, "rows", 0, "seat_ids"], ["A-2-2"]), "sections[1].rows[0].seat_ids[0]: duplicate seat id 'A-2-2' (first at sections[0].rows[1].seatIds[1])"),
        (ours([*ROW, "seatIds", 0], ""), "sections[0].rows[1].seatIds[0]: empty seat id"),
        (ours([*ROW, "seatIds", 0], "A/2/1"), "sections[0].rows[1].seatIds[0]: seat id 'A/2/1' is not at most 64 characters of [A-Za-z0-9._:-]"),
        (ours([*ROW, "seatIds", 0], 21), "sections[0].rows[1].seatIds[0]: expected a string, got a number"),
        (ours([*ROW, "accessibleSeatIds"], ["A-1-1"]), "sections[0].rows[1].accessibleSeatIds[0]: 'A-1-1' is not a seat of row 'A-2'"),
        (ours([*ROW, "blocked_seat_ids"], ["A-2-2", "A-2-9"]), "sections[0].rows[1].blocked_seat_ids[1]: 'A-2-9' is not a seat of row 'A-2'"),
        (ours([*ROW, "blockedSeatIds"], ["A-2-2", "A-2-2"]), "sections[0].rows[1].blockedSeatIds[1]: 'A-2-2' listed twice (first at sections[0].rows[1].blockedSeatIds[0])"),
        (ours([*ROW, "blockedSeatIds"], "A-2-2"), "sections[0].rows[1].blockedSeatIds: expected an array, got a string"),
        (ours([*ROW, "accessibleSeatIds"], [None]), "sections[0].rows[1].accessibleSeatIds[0]: expected a string, got null"),
    ],
)  # fmt: skip
def test_our_malformed_plans_are_refused_naming_the_path(plan: object, message: str) -> None:
    with pytest.raises(PlanError) as raised:
        from_json(plan)
    assert str(raised.value) == message


def test_from_proto_names_the_message_fields() -> None:
    message = to_proto(OURS)
    message.sections[1].rows[0].blocked_seat_ids.append("A-1-1")
    with pytest.raises(PlanError) as raised:
        from_proto(message)
    assert str(raised.value) == (
        "sections[1].rows[0].blocked_seat_ids[0]: 'A-1-1' is not a seat of row 'A-1'"
    )


def test_the_service_s_limits_are_refused_before_the_service_sees_the_plan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The limits are the reservation service's own (imported), made small
    here so that a plan past them stays small."""
    for name, value in (("MAX_SECTIONS", 2), ("MAX_ROWS", 1), ("MAX_ROW_SEATS", 2)):
        monkeypatch.setattr(seating_import, name, value)
    refusals = {
        "sections: at most 2 sections, got 3": our_plan(),
        "sections[0].rows: at most 1 rows in a section, got 2": {
            "sections": our_plan()["sections"][:2]
        },
        "sections[0].rows[0].seatIds: at most 2 seats in a row, got 3": {
            "sections": [
                {**our_plan()["sections"][0], "rows": our_plan()["sections"][0]["rows"][:1]}
            ]
        },
        "zones[0].rows: at most 1 rows in a zone, got 2": pretix_plan(),
    }
    for message, plan in refusals.items():
        with pytest.raises(PlanError) as raised:
            load(json.dumps(plan))
        assert str(raised.value) == message
    monkeypatch.setattr(seating_import, "MAX_ROWS", 2)
    with pytest.raises(PlanError) as raised:
        from_pretix(pretix_plan())
    assert str(raised.value) == "zones[0].rows[0].seats: at most 2 seats in a row, got 3"
    monkeypatch.setattr(seating_import, "MAX_ROW_SEATS", 3)
    monkeypatch.setattr(seating_import, "MAX_PLACES", 7)
    with pytest.raises(PlanError) as raised:
        from_pretix(pretix_plan())
    assert str(raised.value) == "zones: a plan has 1 to 7 places to sell, got 8"
    monkeypatch.setattr(seating_import, "MAX_SECTIONS", 1)
    with pytest.raises(PlanError) as raised:
        from_pretix(pretix_plan())
    assert str(raised.value) == "zones: at most 1 zones with rows, got 2"


def test_a_seat_map_too_large_for_one_answer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Section, row and seat ids and 12 bytes a seat: (1 + 3 + 5 + 12) * 5 + (1 + 3 + 5 + 12).
    monkeypatch.setattr(seating_import, "MAX_MAP_BYTES", 125)
    with pytest.raises(PlanError) as raised:
        from_json(our_plan())
    assert str(raised.value) == (
        "sections: its seat map would be 126 bytes, more than 125 (one GetSeatMap answer): "
        "use shorter ids or fewer seats"
    )
    monkeypatch.setattr(seating_import, "MAX_MAP_BYTES", 126)
    assert from_json(our_plan()) == OURS


def test_a_plan_has_a_currency_when_a_section_has_a_price() -> None:
    with pytest.raises(ValueError):
        Plan(OUR_SECTIONS)
    with pytest.raises(ValueError):
        Plan(PRETIX_SECTIONS, "EUR")


# -- the schema --------------------------------------------------------------


def schema() -> dict[str, Any]:
    loaded = json.loads(SCHEMA.read_text())
    assert isinstance(loaded, dict)
    return loaded


def resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """``node`` with its ``$ref`` (``#/$defs/...``) followed, its own keywords kept."""
    while "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        node = {**{k: v for k, v in node.items() if k != "$ref"}, **root["$defs"][name]}
    return node


def types_of(node: dict[str, Any], root: dict[str, Any]) -> set[str]:
    node = resolve(node, root)
    found = {node["type"]} if "type" in node else set()
    for branch in node.get("anyOf", ()):
        found |= types_of(branch, root)
    return found


def required_names(node: dict[str, Any]) -> set[str]:
    """Every property name a ``required`` in ``node`` or its branches names."""
    names = set(node.get("required", ()))
    for key in ("allOf", "anyOf", "oneOf"):
        for branch in node.get(key, ()):
            names |= required_names(branch)
    if "not" in node:
        names |= required_names(node["not"])
    return names


# A proto field's type -> the JSON types the mapping gives it.
JSON_TYPES = {
    FieldDescriptor.TYPE_STRING: {"string"},
    FieldDescriptor.TYPE_INT32: {"integer", "string"},
    FieldDescriptor.TYPE_INT64: {"integer", "string"},
    FieldDescriptor.TYPE_MESSAGE: {"object"},
}


def test_the_schema_describes_the_contracts_seating_plan_by_its_field_names() -> None:
    """jsonschema is not among our dependencies, so the schema is held to
    the generated descriptor instead: per message its properties are the
    fields' JSON and proto names, nothing else; what it requires are
    fields; each field's JSON type is the mapping's, a message field's the
    definition of its message."""
    root = schema()
    assert root["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    definitions: dict[str, tuple[dict[str, Any], Descriptor]] = {
        "SeatingPlan": (root, reservation_pb2.SeatingPlan.DESCRIPTOR)
    }
    for message in (reservation_pb2.Section, reservation_pb2.Row, reservation_pb2.Money):
        definitions[message.DESCRIPTOR.name] = (
            root["$defs"][message.DESCRIPTOR.name],
            message.DESCRIPTOR,
        )
    for name, (node, descriptor) in definitions.items():
        names = {n for f in descriptor.fields for n in (f.name, f.json_name)}
        assert node["type"] == "object", name
        assert node["additionalProperties"] is False, name
        assert set(node["properties"]) == names, name
        assert required_names(node) <= names and required_names(node), name
        for field in descriptor.fields:
            for key in {field.name, field.json_name}:
                prop = node["properties"][key]
                if field.is_repeated:
                    assert resolve(prop, root)["type"] == "array", (name, key)
                    prop = resolve(prop, root)["items"]
                if field.message_type is not None:
                    assert prop["$ref"] == f"#/$defs/{field.message_type.name}", (name, key)
                assert types_of(prop, root) == JSON_TYPES[field.type], (name, key)


def test_load_picks_the_format_by_its_top_level_key() -> None:
    assert load(json.dumps(pretix_plan())) == PRETIX
    assert load(json.dumps(our_plan()).encode()) == OURS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"zones": [], "sections": []}', "plan: has both 'zones' (pretix) and 'sections' (ours): which is it?"),
        ('{"seats": []}', "plan: neither 'zones' (a pretix seating plan) nor 'sections' (ours)"),
        ("[1]", "plan: expected an object, got an array"),
        ("{", "plan: not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        (b"\xff", "plan: not JSON: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
    ],
)  # fmt: skip
def test_load_refuses_what_is_neither(text: str | bytes, message: str) -> None:
    with pytest.raises(PlanError) as raised:
        load(text)
    assert str(raised.value) == message
