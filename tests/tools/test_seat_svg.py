"""The seat map drawn as SVG: a well-formed document with one circle per
seat, filled by its state, accessible seats outlined, sections titled with
their counts, standing sections as boxes, a legend, and every id escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ticketing.v1 import reservation_pb2 as pb
from ticketing_tools import seat_svg

NS = {"svg": seat_svg.SVG_NS}
AVAILABLE, HELD, SOLD, BLOCKED = (
    pb.SEAT_STATE_AVAILABLE,
    pb.SEAT_STATE_HELD,
    pb.SEAT_STATE_SOLD,
    pb.SEAT_STATE_BLOCKED,
)
FILL = {state: look.fill for state, look in seat_svg.LOOKS.items()}


def seat_map() -> pb.SeatMap:
    """Section A of two rows (A-1: 4 seats, A-2: 3), a standing floor."""
    states = {
        "A-1": [AVAILABLE, HELD, SOLD, BLOCKED],
        "A-2": [SOLD, SOLD, AVAILABLE],
    }
    out = pb.SeatMap(event_id="ev-1", version=12)
    for row_id, row in states.items():
        for n, state in enumerate(row, start=1):
            out.seats.add(
                section_id="A",
                row_id=row_id,
                seat_id=f"{row_id}-{n}",
                state=state,
                accessible=(row_id, n) == ("A-2", 3),
            )
    out.sections.add(section_id="A", capacity=6, available=2, held=1, sold=3)
    out.sections.add(section_id="floor", capacity=200, available=150, held=10, sold=40)
    return out


def parse(document: str) -> ET.Element:
    assert document.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    return ET.fromstring(document.encode())


def seats(root: ET.Element) -> list[ET.Element]:
    return [c for c in root.iterfind(".//svg:circle", NS) if "seat" in c.get("class", "").split()]


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iterfind(".//svg:text", NS)]


def test_one_circle_per_seat_in_row_order_filled_by_its_state() -> None:
    root = parse(seat_svg.render(seat_map()))
    assert root.tag == f"{{{seat_svg.SVG_NS}}}svg"
    drawn = seats(root)
    assert [(c.get("data-row"), c.get("data-seat")) for c in drawn] == [
        ("A-1", "A-1-1"),
        ("A-1", "A-1-2"),
        ("A-1", "A-1-3"),
        ("A-1", "A-1-4"),
        ("A-2", "A-2-1"),
        ("A-2", "A-2-2"),
        ("A-2", "A-2-3"),
    ]
    expected = [AVAILABLE, HELD, SOLD, BLOCKED, SOLD, SOLD, AVAILABLE]
    assert [c.get("fill") for c in drawn] == [FILL[s] for s in expected]
    assert [c.get("data-state") for c in drawn] == [seat_svg.LOOKS[s].label for s in expected]
    # A row is a line: one y, x rising along the row; the next row below.
    first, second = drawn[:4], drawn[4:]
    assert len({c.get("cy") for c in first}) == len({c.get("cy") for c in second}) == 1
    xs = [float(c.get("cx", "0")) for c in first]
    assert xs == sorted(xs) and len(set(xs)) == 4
    assert float(second[0].get("cy", "0")) > float(first[0].get("cy", "0"))
    assert second[0].get("cx") == first[0].get("cx")  # rows start at one x


def test_accessible_seats_are_outlined_and_others_not() -> None:
    drawn = seats(parse(seat_svg.render(seat_map())))
    outlined = [c.get("data-seat") for c in drawn if c.get("stroke")]
    assert outlined == ["A-2-3"]
    accessible = drawn[-1]
    assert accessible.get("stroke") == seat_svg.ACCESSIBLE_STROKE
    assert accessible.get("fill") == FILL[AVAILABLE]  # the state still shows
    title = accessible.find("svg:title", NS)
    assert title is not None and title.text == "A row A-2 seat A-2-3: available, accessible"


def test_sections_are_titled_with_counts_and_a_standing_one_is_a_box() -> None:
    root = parse(seat_svg.render(seat_map(), {"A": "Stalls", "floor": "Floor"}))
    lines = texts(root)
    assert lines[0] == "Seat map of event ev-1, version 12"
    assert "Stalls (A): 2 available, 1 held, 3 sold of 6, 1 blocked" in lines
    assert "Floor (floor): standing" in lines
    assert "150 available, 10 held, 40 sold of 200" in lines
    boxes = root.findall(".//svg:rect[@class='standing']", NS)
    assert len(boxes) == 1
    sections = root.findall(".//svg:g[@class='section']", NS)
    assert [g.get("data-section") for g in sections] == ["A", "floor"]
    # Stacked top to bottom: the box below the last row of A.
    last_row_y = max(float(c.get("cy", "0")) for c in seats(root))
    assert float(boxes[0].get("y", "0")) > last_row_y
    assert seats(sections[1]) == []


def test_the_legend_names_every_state_and_the_outline() -> None:
    root = parse(seat_svg.render(seat_map()))
    legend = root.find(".//svg:g[@class='legend']", NS)
    assert legend is not None
    labels = [t.text for t in legend.iterfind("svg:text", NS)]
    assert labels == ["available", "held", "sold", "blocked", "accessible"]
    fills = [c.get("fill") for c in legend.iterfind("svg:circle", NS)]
    assert fills[:4] == [FILL[s] for s in (AVAILABLE, HELD, SOLD, BLOCKED)]
    # The legend's swatches are not seats.
    assert len(seats(root)) == 7


def test_the_picture_is_as_large_as_what_it_draws() -> None:
    wide = pb.SeatMap(event_id="ev-2")
    for n in range(1, 101):
        wide.seats.add(section_id="W", row_id="W-1", seat_id=f"W-{n}", state=AVAILABLE)
    wide.sections.add(section_id="W", capacity=100, available=100)
    root = parse(seat_svg.render(wide))
    width, height = float(root.get("width", "0")), float(root.get("height", "0"))
    assert root.get("viewBox") == f"0 0 {width:.0f} {height:.0f}"
    assert max(float(c.get("cx", "0")) for c in seats(root)) + seat_svg.RADIUS <= width
    assert all(float(c.get("cy", "0")) < height for c in root.iterfind(".//svg:circle", NS))


def test_ids_and_names_are_escaped() -> None:
    hostile = '<x a="1">&amp;\'</x>'
    m = pb.SeatMap(event_id="</svg><script>alert(1)</script>")
    m.seats.add(section_id=hostile, row_id=f"r{hostile}", seat_id=f"s{hostile}", state=SOLD)
    m.seats.add(section_id=hostile, row_id=f"r{hostile}", seat_id="bell\x07", state=HELD)
    m.sections.add(section_id=hostile, capacity=2, sold=1, held=1)
    m.sections.add(section_id="]]>&", capacity=5, available=5)
    document = seat_svg.render(m, {hostile: "<b>Stalls</b> & co", "]]>&": '"Pit"'})
    assert "<script>" not in document and "<x a=" not in document
    root = parse(document)  # well-formed, control character and all
    drawn = seats(root)
    assert [(c.get("data-section"), c.get("data-row"), c.get("data-seat")) for c in drawn] == [
        (hostile, f"r{hostile}", f"s{hostile}"),
        (hostile, f"r{hostile}", "bell\ufffd"),  # XML cannot carry \x07 at all
    ]
    assert [c.get("fill") for c in drawn] == [FILL[SOLD], FILL[HELD]]
    lines = texts(root)
    assert lines[0] == "Seat map of event </svg><script>alert(1)</script>, version 0"
    assert f"<b>Stalls</b> & co ({hostile}): 0 available, 1 held, 1 sold of 2" in lines
    assert '"Pit" (]]>&): standing' in lines
    assert root.findall(".//svg:script", NS) == []


def test_an_unknown_state_and_seats_of_an_unlisted_section_are_still_drawn() -> None:
    m = pb.SeatMap(event_id="ev-3")
    m.seats.add(section_id="N", row_id="N-1", seat_id="N-1-1", state=99)
    root = parse(seat_svg.render(m))
    (drawn,) = seats(root)
    assert (drawn.get("fill"), drawn.get("data-state")) == (seat_svg.UNKNOWN.fill, "unknown")
    assert "N" in texts(root)  # its title, without counts the map did not give


def test_an_empty_map_is_a_valid_picture_with_its_legend() -> None:
    root = parse(seat_svg.render(pb.SeatMap(event_id="ev-4"), title="Nothing yet"))
    assert texts(root)[0] == "Nothing yet" and seats(root) == []
    assert root.find(".//svg:g[@class='legend']", NS) is not None
