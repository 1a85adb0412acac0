"""A seat map (``ticketing.v1.SeatMap``) drawn as an SVG document.

Sections stacked top to bottom in plan order, each under a title with its
counts; a seated section's rows as lines of circles, one per seat in the
row's order, filled by the seat's state, accessible seats outlined; a
standing section as one labelled box with its counts; then a legend. Each
circle says its section, row, seat and state in a ``<title>`` (a tooltip in
a browser) and in ``data-`` attributes, so a picture can be checked by
reading it.

Pure: a function of the map and the section names, with nothing but the
standard library. The document is built with ``xml.etree``, which escapes
every id and name; characters XML cannot carry at all (control characters)
are replaced, so any map gives a well-formed document.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass

from ticketing.v1 import reservation_pb2 as pb

SVG_NS = "http://www.w3.org/2000/svg"


@dataclass(frozen=True, slots=True)
class Look:
    fill: str
    label: str


LOOKS: dict[int, Look] = {
    pb.SEAT_STATE_AVAILABLE: Look("#43a047", "available"),
    pb.SEAT_STATE_HELD: Look("#fbc02d", "held"),
    pb.SEAT_STATE_SOLD: Look("#e53935", "sold"),
    pb.SEAT_STATE_BLOCKED: Look("#9e9e9e", "blocked"),
}
# A state this build does not know (a newer server's).
UNKNOWN = Look("#ffffff", "unknown")
# The outline of a seat kept for those who need it.
ACCESSIBLE_STROKE = "#1e88e5"
STANDING_FILL = "#eceff1"

# Layout, in SVG user units (pixels).
MARGIN = 16
PITCH = 16  # from one seat's centre to the next, and one row to the next
RADIUS = 6
FONT = 12
CHAR = 7.2  # an average character at FONT, for widths of labels
TITLE_HEIGHT = 20
SECTION_GAP = 14
STANDING_HEIGHT = 44
STANDING_MIN_WIDTH = 320

# What XML 1.0 cannot carry, even escaped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def _look(state: int) -> Look:
    return LOOKS.get(state, UNKNOWN)


def _width_of(text: str) -> float:
    return len(text) * CHAR


def counts(section: pb.SectionStatus, blocked: int = 0) -> str:
    extra = f", {blocked} blocked" if blocked else ""
    return (
        f"{section.available} available, {section.held} held, {section.sold} sold "
        f"of {section.capacity}{extra}"
    )


def _rows(seat_map: pb.SeatMap) -> dict[str, dict[str, list[pb.SeatStatus]]]:
    """Seats by section, then row, in the map's (the plan's) order."""
    rows: dict[str, dict[str, list[pb.SeatStatus]]] = {}
    for seat in seat_map.seats:
        rows.setdefault(seat.section_id, {}).setdefault(seat.row_id, []).append(seat)
    return rows


def _sections(
    seat_map: pb.SeatMap, rows: Mapping[str, object]
) -> list[tuple[str, pb.SectionStatus | None]]:
    """Every section in plan order, then any seats' section the map does not
    list (drawn without counts rather than dropped)."""
    listed = [(s.section_id, s) for s in seat_map.sections]
    known = {section_id for section_id, _ in listed}
    extra: list[tuple[str, pb.SectionStatus | None]] = [
        (section_id, None) for section_id in rows if section_id not in known
    ]
    return [*listed, *extra]


def _title(section_id: str, names: Mapping[str, str]) -> str:
    """``Balcony (B)``; the id alone without a name of its own."""
    name = names.get(section_id, "")
    return f"{name} ({section_id})" if name and name != section_id else section_id


def _add_text(parent: ET.Element, x: float, y: float, text: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(
        parent, "text", {"x": f"{x:g}", "y": f"{y:g}", "font-size": str(FONT), **attrs}
    )
    element.text = _text(text)
    return element


def _seat(parent: ET.Element, x: float, y: float, seat: pb.SeatStatus) -> None:
    look = _look(seat.state)
    attrs = {
        "class": "seat " + look.label + (" accessible" if seat.accessible else ""),
        "cx": f"{x:g}",
        "cy": f"{y:g}",
        "r": str(RADIUS),
        "fill": look.fill,
        "data-section": _text(seat.section_id),
        "data-row": _text(seat.row_id),
        "data-seat": _text(seat.seat_id),
        "data-state": look.label,
    }
    if seat.accessible:
        attrs |= {"stroke": ACCESSIBLE_STROKE, "stroke-width": "2.5"}
    circle = ET.SubElement(parent, "circle", attrs)
    accessible = ", accessible" if seat.accessible else ""
    tooltip = f"{seat.section_id} row {seat.row_id} seat {seat.seat_id}: {look.label}{accessible}"
    ET.SubElement(circle, "title").text = _text(tooltip)


def _legend(parent: ET.Element, y: float) -> float:
    """The legend's swatches in a line from the left margin; its width."""
    group = ET.SubElement(parent, "g", {"class": "legend"})
    x = float(MARGIN)
    entries: list[tuple[str, str | None, str]] = [
        (look.fill, None, look.label) for look in LOOKS.values()
    ]
    entries.append((LOOKS[pb.SEAT_STATE_AVAILABLE].fill, ACCESSIBLE_STROKE, "accessible"))
    for fill, stroke, label in entries:
        attrs = {
            "class": "legend",
            "cx": f"{x + RADIUS:g}",
            "cy": f"{y:g}",
            "r": str(RADIUS),
            "fill": fill,
        }
        if stroke:
            attrs |= {"stroke": stroke, "stroke-width": "2.5"}
        ET.SubElement(group, "circle", attrs)
        _add_text(group, x + 2 * RADIUS + 5, y + FONT / 3, label)
        x += 2 * RADIUS + 5 + _width_of(label) + 18
    return x - MARGIN


def _standing(
    group: ET.Element, y: float, caption: str, status: pb.SectionStatus | None
) -> tuple[float, float]:
    """A standing section's box at ``y``: its name, then its counts; the
    box's height and the width it needs."""
    line = counts(status) if status is not None else ""
    box_width = max(STANDING_MIN_WIDTH, _width_of(caption) + 24, _width_of(line) + 24)
    ET.SubElement(
        group,
        "rect",
        {
            "class": "standing",
            "x": str(MARGIN),
            "y": f"{y:g}",
            "width": f"{box_width:g}",
            "height": str(STANDING_HEIGHT),
            "rx": "6",
            "fill": STANDING_FILL,
            "stroke": "#607d8b",
        },
    )
    _add_text(group, MARGIN + 12, y + 18, caption, **{"font-weight": "bold"})
    if line:
        _add_text(group, MARGIN + 12, y + 35, line)
    return STANDING_HEIGHT, box_width + 2 * MARGIN


def _seated(
    group: ET.Element,
    y: float,
    caption: str,
    section_rows: Mapping[str, list[pb.SeatStatus]],
    seats_x: float,
) -> tuple[float, float]:
    """A seated section at ``y``: its title, then a line per row (its id,
    then its seats along it); the height and the width it needs."""
    _add_text(group, MARGIN, y + FONT, caption, **{"font-weight": "bold"})
    width = _width_of(caption) + 2 * MARGIN
    centre = y + TITLE_HEIGHT + RADIUS
    for row_id, seats in section_rows.items():
        row = ET.SubElement(group, "g", {"class": "row", "data-row": _text(row_id)})
        _add_text(row, MARGIN, centre + FONT / 3, row_id, **{"font-family": "monospace"})
        for n, seat in enumerate(seats):
            _seat(row, seats_x + n * PITCH, centre, seat)
        width = max(width, seats_x + (len(seats) - 1) * PITCH + RADIUS + MARGIN)
        centre += PITCH
    return TITLE_HEIGHT + len(section_rows) * PITCH, width


def render(
    seat_map: pb.SeatMap, names: Mapping[str, str] | None = None, *, title: str | None = None
) -> str:
    """The SVG document (a string, with its XML declaration) of ``seat_map``.

    ``names`` gives a section's name for its title (``Section.name`` of the
    plan; the map carries ids only). ``title`` heads the picture; by default
    the event's id and the map's version.
    """
    names = names or {}
    rows = _rows(seat_map)
    if title is None:
        title = f"Seat map of event {seat_map.event_id}, version {seat_map.version}"
    svg = ET.Element("svg", {"xmlns": SVG_NS, "font-family": "sans-serif"})
    ET.SubElement(svg, "title").text = _text(title)
    ET.SubElement(svg, "rect", {"width": "100%", "height": "100%", "fill": "#ffffff"})
    _add_text(svg, MARGIN, MARGIN + FONT, title, **{"font-size": str(FONT + 2)})
    body = ET.SubElement(svg, "g", {"class": "sections"})
    # Seats of every section start at one x, past the longest row id.
    label_width = max(
        (_width_of(row_id) for section in rows.values() for row_id in section), default=0.0
    )
    seats_x = MARGIN + label_width + 10 + RADIUS
    width = _width_of(title) + 2 * MARGIN
    y = float(MARGIN + FONT + SECTION_GAP)
    for section_id, status in _sections(seat_map, rows):
        group = ET.SubElement(body, "g", {"class": "section", "data-section": _text(section_id)})
        section_rows = rows.get(section_id)
        caption = _title(section_id, names)
        if section_rows:
            blocked = sum(
                seat.state == pb.SEAT_STATE_BLOCKED
                for seats in section_rows.values()
                for seat in seats
            )
            if status is not None:
                caption += ": " + counts(status, blocked)
            height, needed = _seated(group, y, caption, section_rows, seats_x)
        else:
            height, needed = _standing(group, y, caption + ": standing", status)
        width = max(width, needed)
        y += height + SECTION_GAP
    width = max(width, _legend(svg, y + RADIUS) + 2 * MARGIN)
    height = y + 2 * RADIUS + MARGIN
    svg.set("width", f"{width:.0f}")
    svg.set("height", f"{height:.0f}")
    svg.set("viewBox", f"0 0 {width:.0f} {height:.0f}")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(svg, encoding="unicode") + "\n"
