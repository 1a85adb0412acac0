"""Seating plans from JSON: pretix's plans and ours become the sections the
seat map reads, and every malformed plan is refused naming where it is wrong."""

# The tables of malformed plans keep one case a line, its exact message whole.
# ruff: noqa: E501

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ticketing_common.seating import PlanRow, PlanSection, SeatMap, Verdict
from ticketing_tools.seating_import import PlanError, from_json, from_pretix, load, to_json


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


PRETIX_SECTIONS = [
    PlanSection(
        "parkett",
        (
            PlanRow("parkett:1", ("parkett-1-1", "parkett-1-2", "parkett-1-3")),
            PlanRow("parkett:2", ("parkett-2-1", "parkett-2-2")),
        ),
    ),
    PlanSection(
        "Balkon",
        (
            PlanRow("Balkon:1", ("b-1-2", "Balkon_Links_Reihe_1_Platz_1.c2dc8eeadbda")),
            PlanRow("Balkon:1.2", ("b-1-3",)),
        ),
    ),
]


def test_pretix_zones_become_sections_rows_in_order_seats_along_x() -> None:
    sections = from_pretix(pretix_plan())

    assert sections == PRETIX_SECTIONS
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

    sections = from_pretix(plan)

    first, second = sections[0].rows[1].seat_ids
    assert first == "x" * 51 + ".c71bd109227e"
    assert second.startswith("x" * 51 + ".") and second != first
    assert all(len(seat_id) <= 64 for seat_id in (first, second))
    assert sections[0].section_id == "Parkett"
    balcony = sections[1]
    assert balcony.section_id.startswith("Balkon_rechts.")
    assert balcony.rows[0].row_id.startswith("Balkon_rechts.")
    assert from_pretix(plan) == sections


def test_pretix_seats_at_one_place_keep_the_order_listed() -> None:
    plan = pretix_plan()
    plan["zones"][0]["rows"][1]["seats"] = [seat("z", "1", 5, 5), seat("a", "2", 5, 5)]
    assert from_pretix(plan)[0].rows[1].seat_ids == ("z", "a")


def test_pretix_zone_without_name_or_id_is_named_by_its_index() -> None:
    plan = pretix_plan()
    del plan["zones"][2]["name"]
    assert [s.section_id for s in from_pretix(plan)] == ["parkett", "zone-2"]


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
        (broken([*SEAT, "seat_guid"], "Balkon_Links_Reihe_1_Platz_1.c2dc8eeadbda"), "zones[2].rows[0].seats[1].seat_guid: seat id 'Balkon_Links_Reihe_1_Platz_1.c2dc8eeadbda' of 'Balkon_Links_Reihe_1_Platz_1.c2dc8eeadbda' is taken (by zones[2].rows[0].seats[0].seat_guid)"),
    ],
)  # fmt: skip
def test_pretix_malformed_plans_are_refused_naming_the_path(plan: object, message: str) -> None:
    with pytest.raises(PlanError) as raised:
        from_pretix(plan)
    assert str(raised.value) == message
    assert raised.value.path == message.split(": ", 1)[0]


def our_plan() -> dict[str, Any]:
    return {
        "sections": [
            {
                "section_id": "A",
                "name": "Stalls",
                "rows": [
                    {
                        "row_id": "A-1",
                        "seat_ids": ["A-1-1", "A-1-2", "A-1-3"],
                        "accessible": ["A-1-1"],
                        "blocked": ["A-1-3"],
                    },
                    {"row_id": "A-2", "seat_ids": ["A-2-1", "A-2-2"]},
                ],
            },
            {
                "section_id": "B",
                "rows": [{"row_id": "B-1", "seat_ids": ["B-1-1"], "blocked": []}],
            },
        ]
    }


OUR_SECTIONS = [
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
    ),
    PlanSection("B", (PlanRow("B-1", ("B-1-1",)),)),
]


def test_our_format_reads_and_round_trips() -> None:
    sections = from_json(our_plan())
    assert sections == OUR_SECTIONS

    written = to_json(sections)
    assert from_json(written) == sections
    assert from_json(json.loads(json.dumps(written))) == sections
    # All but the names, which the seat map does not keep.
    expected = copy.deepcopy(our_plan())
    del expected["sections"][0]["name"]
    expected["sections"][0]["rows"][1].update(accessible=[], blocked=[])
    expected["sections"][1]["rows"][0]["accessible"] = []
    assert written == expected
    assert to_json(from_pretix(pretix_plan()))["sections"] == to_json(PRETIX_SECTIONS)["sections"]


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


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ("A", "plan: expected an object, got a string"),
        (ours(["sections"], ...), "sections: missing"),
        (ours(["sections"], []), "sections: a plan needs at least one section"),
        (ours(["event"], "e1"), "event: unknown field"),
        (ours(["sections", 1], []), "sections[1]: expected an object, got an array"),
        (ours(["sections", 1, "section_id"], ...), "sections[1].section_id: missing"),
        (ours(["sections", 1, "section_id"], ""), "sections[1].section_id: empty section id"),
        (ours(["sections", 1, "section_id"], "A"), "sections[1].section_id: duplicate section id 'A' (first at sections[0].section_id)"),
        (ours(["sections", 1, "section_id"], "B 1"), "sections[1].section_id: section id 'B 1' is not at most 64 characters of [A-Za-z0-9._:-]"),
        (ours(["sections", 1, "section_id"], "B" * 65), f"sections[1].section_id: section id '{'B' * 65}' is not at most 64 characters of [A-Za-z0-9._:-]"),
        (ours(["sections", 0, "name"], 3), "sections[0].name: expected a string, got a number"),
        (ours(["sections", 0, "title"], "x"), "sections[0].title: unknown field"),
        (ours(["sections", 1, "rows"], []), "sections[1].rows: a section needs at least one row"),
        (ours(["sections", 1, "rows"], ...), "sections[1].rows: missing"),
        (ours([*ROW], None), "sections[0].rows[1]: expected an object, got null"),
        (ours([*ROW, "row_id"], 2), "sections[0].rows[1].row_id: expected a string, got a number"),
        (ours(["sections", 1, "rows", 0, "row_id"], "A-2"), "sections[1].rows[0].row_id: duplicate row id 'A-2' (first at sections[0].rows[1].row_id)"),
        (ours([*ROW, "blocked_seats"], []), "sections[0].rows[1].blocked_seats: unknown field"),
        (ours([*ROW, "seat_ids"], ...), "sections[0].rows[1].seat_ids: missing"),
        (ours([*ROW, "seat_ids"], []), "sections[0].rows[1].seat_ids: a row needs at least one seat"),
        (ours([*ROW, "seat_ids"], "A-2-1"), "sections[0].rows[1].seat_ids: expected an array, got a string"),
        (ours([*ROW, "seat_ids", 1], "A-1-2"), "sections[0].rows[1].seat_ids[1]: duplicate seat id 'A-1-2' (first at sections[0].rows[0].seat_ids[1])"),
        (ours([*ROW, "seat_ids", 1], "A-2-1"), "sections[0].rows[1].seat_ids[1]: duplicate seat id 'A-2-1' (first at sections[0].rows[1].seat_ids[0])"),
        (ours([*ROW, "seat_ids", 0], ""), "sections[0].rows[1].seat_ids[0]: empty seat id"),
        (ours([*ROW, "seat_ids", 0], "A/2/1"), "sections[0].rows[1].seat_ids[0]: seat id 'A/2/1' is not at most 64 characters of [A-Za-z0-9._:-]"),
        (ours([*ROW, "seat_ids", 0], 21), "sections[0].rows[1].seat_ids[0]: expected a string, got a number"),
        (ours([*ROW, "accessible"], ["A-1-1"]), "sections[0].rows[1].accessible[0]: 'A-1-1' is not a seat of row 'A-2'"),
        (ours([*ROW, "blocked"], ["A-2-2", "A-2-9"]), "sections[0].rows[1].blocked[1]: 'A-2-9' is not a seat of row 'A-2'"),
        (ours([*ROW, "blocked"], ["A-2-2", "A-2-2"]), "sections[0].rows[1].blocked[1]: 'A-2-2' listed twice (first at sections[0].rows[1].blocked[0])"),
        (ours([*ROW, "blocked"], "A-2-2"), "sections[0].rows[1].blocked: expected an array, got a string"),
        (ours([*ROW, "accessible"], [None]), "sections[0].rows[1].accessible[0]: expected a string, got null"),
    ],
)  # fmt: skip
def test_our_malformed_plans_are_refused_naming_the_path(plan: object, message: str) -> None:
    with pytest.raises(PlanError) as raised:
        from_json(plan)
    assert str(raised.value) == message


def test_load_picks_the_format_by_its_top_level_key() -> None:
    assert load(json.dumps(pretix_plan())) == PRETIX_SECTIONS
    assert load(json.dumps(our_plan()).encode()) == OUR_SECTIONS


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
