"""Seating plans from JSON: pretix's seating plan, and our own format.

Pure: a document in, ``PlanSection``s out, or a ``PlanError`` naming the
path of what is wrong (``zones[2].rows[5].seats[3].seat_guid: ...``), so an
operator can find it in the file. ``load`` takes the text and picks the
format by its top-level key: pretix's plans have ``zones``, ours ``sections``.

Our ids are at most 64 characters of ``[A-Za-z0-9._:-]`` and unique across
the plan (sections, rows and seats each), non-empty; ``seat_ids`` of a row
are in order along it, and ``accessible`` and ``blocked`` name seats of
their own row.

pretix's plan (its ``seating-plan.schema.json``) maps as follows:

- A zone is a section. The schema makes the zone the grouping of a plan
  ("main area", "balcony") and the category only an attribute of each seat
  (a price level, mapped to shop products), so one row may mix categories.
  A section per zone and category would cut such rows in pieces, and seats
  next to each other would stop being together; the category is a matter
  of price, not of where seats are, and is not carried. The section id is
  the zone's ``zone_id``, else its ``name`` (the fallback the schema itself
  names), else ``zone-<index>``. A zone without rows (only areas: a stage,
  a bar, labels) draws and seats nobody: it makes no section.
- A row is a row, in the zone's order; its id is ``<section>:<row_number>``.
  The schema does not make row numbers unique (a row drawn in two pieces
  around an aisle may carry one number twice), so a repeated one gets
  ``.2``, ``.3``, ... in document order.
- A seat's id is its ``seat_guid``: the schema calls it globally unique
  and pretix keeps referring to seats by it (orders, blocks, its API), so
  a seat here and there stay one seat. Its order along the row is its
  position: by ``x``, then ``y`` (a row drawn upright), then as listed;
  ``seat_number`` is a label, and labels need not count along the row.
- Nothing in the schema marks a seat blocked or accessible: pretix blocks
  seats per event, outside the plan. No imported seat is either; the
  operator marks them afterwards.
- Areas, sizes, colours, labels and uuids only draw the plan: ignored.

Ids outside our alphabet or length are mapped deterministically: the
characters outside it become ``_``, the result is cut to 51 characters,
and ``.`` and 12 hex digits of the original's SHA-256 are appended, so two
different originals stay two ids (and an id that fits is kept as it is).
A collision left after mapping is still refused, naming both paths.

Unknown fields are ignored in pretix's plans (its schema has grown fields
across versions: ``zone_id``, ``uuid``, ``row_label``, ...) and refused in
ours, where a misspelt ``blocked`` would otherwise sell blocked seats.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence

from ticketing_common.seating import PlanRow, PlanSection

MAX_ID = 64
_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_NOT_ID = re.compile(r"[^A-Za-z0-9._:-]")
_HASH_DIGITS = 12


class PlanError(ValueError):
    """A plan that cannot be imported; ``path`` says where in the document."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def load(text: str | bytes) -> list[PlanSection]:
    """The plan in ``text``, in whichever of the two formats it is."""
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PlanError("plan", f"not JSON: {error}") from None
    if not isinstance(document, dict):
        raise PlanError("plan", f"expected an object, got {_kind(document)}")
    if "zones" in document and "sections" in document:
        raise PlanError("plan", "has both 'zones' (pretix) and 'sections' (ours): which is it?")
    if "zones" in document:
        return from_pretix(document)
    if "sections" in document:
        return from_json(document)
    raise PlanError("plan", "neither 'zones' (a pretix seating plan) nor 'sections' (ours)")


# -- pretix ------------------------------------------------------------------


def from_pretix(document: object) -> list[PlanSection]:
    """pretix's seating plan as sections; see the module's docstring."""
    plan = _object(document, "plan")
    _string(_field(plan, "name", "name"), "name")
    for i, category in enumerate(_array(_field(plan, "categories", "categories"), "categories")):
        path = f"categories[{i}]"
        _string(_field(_object(category, path), "name", f"{path}.name"), f"{path}.name")
    reader = _PretixReader()
    zones = _array(_field(plan, "zones", "zones"), "zones")
    sections = [
        section for z, zone in enumerate(zones) if (section := reader.zone(zone, z)) is not None
    ]
    if not sections:
        raise PlanError("zones", "no zone has a row of seats")
    return sections


class _PretixReader:
    """Reads one pretix plan's zones, keeping the ids given so far."""

    def __init__(self) -> None:
        self.section_ids: set[str] = set()
        self.row_ids: set[str] = set()
        # Our seat id and pretix's seat_guid -> where each was first.
        self.seats_at: dict[str, str] = {}
        self.guids_at: dict[str, str] = {}

    def zone(self, value: object, index: int) -> PlanSection | None:
        path = f"zones[{index}]"
        zone = _object(value, path)
        _position(_field(zone, "position", f"{path}.position"), f"{path}.position")
        rows = _array(_field(zone, "rows", f"{path}.rows"), f"{path}.rows")
        names = [_string(zone[key], f"{path}.{key}") for key in ("zone_id", "name") if key in zone]
        if not rows:
            return None
        label = next((name for name in names if name), f"zone-{index}")
        section_id = _unused(_mapped(label), self.section_ids)
        return PlanSection(
            section_id,
            tuple(self.row(row, f"{path}.rows[{r}]", section_id) for r, row in enumerate(rows)),
        )

    def row(self, value: object, path: str, section_id: str) -> PlanRow:
        row = _object(value, path)
        number = _string(_field(row, "row_number", f"{path}.row_number"), f"{path}.row_number")
        row_id = _unused(_mapped(f"{section_id}:{number}"), self.row_ids)
        seats = _array(_field(row, "seats", f"{path}.seats"), f"{path}.seats")
        if not seats:
            raise PlanError(f"{path}.seats", "a row needs at least one seat")
        placed = []
        for s, seat in enumerate(seats):
            x, y, seat_id = self.seat(seat, f"{path}.seats[{s}]")
            placed.append((x, y, s, seat_id))
        # Along x, then y; seats at one place in the order listed.
        return PlanRow(row_id, tuple(seat_id for *_, seat_id in sorted(placed)))

    def seat(self, value: object, path: str) -> tuple[float, float, str]:
        """The seat's position along its row (x, y) and its id."""
        seat = _object(value, path)
        gpath = f"{path}.seat_guid"
        guid = _string(_field(seat, "seat_guid", gpath), gpath)
        if not guid:
            raise PlanError(gpath, "empty seat_guid")
        if guid in self.guids_at:
            raise PlanError(gpath, f"duplicate seat_guid {guid!r} (first at {self.guids_at[guid]})")
        self.guids_at[guid] = gpath
        for key in ("seat_number", "category"):
            _string(_field(seat, key, f"{path}.{key}"), f"{path}.{key}")
        x, y = _position(_field(seat, "position", f"{path}.position"), f"{path}.position")
        seat_id = _mapped(guid)
        if seat_id in self.seats_at:
            raise PlanError(
                gpath, f"seat id {seat_id!r} of {guid!r} is taken (by {self.seats_at[seat_id]})"
            )
        self.seats_at[seat_id] = gpath
        return x, y, seat_id


def _position(value: object, path: str) -> tuple[float, float]:
    position = _object(value, path)
    return (
        _number(_field(position, "x", f"{path}.x"), f"{path}.x"),
        _number(_field(position, "y", f"{path}.y"), f"{path}.y"),
    )


def _mapped(raw: str) -> str:
    """``raw`` as one of our ids: itself if it is one, else as the module's
    docstring says."""
    if _ID.fullmatch(raw):
        return raw
    digest = hashlib.sha256(raw.encode()).hexdigest()[:_HASH_DIGITS]
    keep = MAX_ID - _HASH_DIGITS - 1
    return f"{_NOT_ID.sub('_', raw)[:keep]}.{digest}"


def _unused(candidate: str, taken: set[str]) -> str:
    """``candidate``, or with the first free ``.2``, ``.3``, ... appended
    (shortened to stay within 64 characters); then taken."""
    chosen, n = candidate, 1
    while chosen in taken:
        n += 1
        suffix = f".{n}"
        chosen = candidate[: MAX_ID - len(suffix)] + suffix
    taken.add(chosen)
    return chosen


# -- our format --------------------------------------------------------------

_PLAN_FIELDS = frozenset({"sections"})
_SECTION_FIELDS = frozenset({"section_id", "name", "rows"})
_ROW_FIELDS = frozenset({"row_id", "seat_ids", "accessible", "blocked"})


def from_json(document: object) -> list[PlanSection]:
    """Our own plan format (the module's docstring has its rules)."""
    plan = _object(document, "plan")
    _known(plan, _PLAN_FIELDS, "")
    section_docs = _array(_field(plan, "sections", "sections"), "sections")
    if not section_docs:
        raise PlanError("sections", "a plan needs at least one section")
    sections_at: dict[str, str] = {}
    rows_at: dict[str, str] = {}
    seats_at: dict[str, str] = {}
    sections = []
    for i, section_doc in enumerate(section_docs):
        path = f"sections[{i}]"
        section = _object(section_doc, path)
        _known(section, _SECTION_FIELDS, path)
        section_id = _id(section, "section_id", path, "section", sections_at)
        if "name" in section:
            _string(section["name"], f"{path}.name")
        row_docs = _array(_field(section, "rows", f"{path}.rows"), f"{path}.rows")
        if not row_docs:
            raise PlanError(f"{path}.rows", "a section needs at least one row")
        rows = tuple(
            _row(row_doc, f"{path}.rows[{r}]", rows_at, seats_at)
            for r, row_doc in enumerate(row_docs)
        )
        sections.append(PlanSection(section_id, rows))
    return sections


def _row(value: object, path: str, rows_at: dict[str, str], seats_at: dict[str, str]) -> PlanRow:
    row = _object(value, path)
    _known(row, _ROW_FIELDS, path)
    row_id = _id(row, "row_id", path, "row", rows_at)
    seat_docs = _array(_field(row, "seat_ids", f"{path}.seat_ids"), f"{path}.seat_ids")
    if not seat_docs:
        raise PlanError(f"{path}.seat_ids", "a row needs at least one seat")
    seat_ids = []
    for s, seat in enumerate(seat_docs):
        seat_ids.append(_checked_id(seat, f"{path}.seat_ids[{s}]", "seat", seats_at))
    marked = {}
    for key in ("accessible", "blocked"):
        listed: dict[str, str] = {}
        for j, seat in enumerate(_array(row.get(key, []), f"{path}.{key}")):
            where = f"{path}.{key}[{j}]"
            name = _string(seat, where)
            if name not in seat_ids:
                raise PlanError(where, f"{name!r} is not a seat of row {row_id!r}")
            if name in listed:
                raise PlanError(where, f"{name!r} listed twice (first at {listed[name]})")
            listed[name] = where
        marked[key] = frozenset(listed)
    return PlanRow(row_id, tuple(seat_ids), marked["accessible"], marked["blocked"])


def _id(
    container: Mapping[str, object], key: str, path: str, what: str, seen: dict[str, str]
) -> str:
    return _checked_id(_field(container, key, f"{path}.{key}"), f"{path}.{key}", what, seen)


def _checked_id(value: object, path: str, what: str, seen: dict[str, str]) -> str:
    """An id of ours, unique among ``seen`` (id -> where it first was)."""
    text = _string(value, path)
    if not text:
        raise PlanError(path, f"empty {what} id")
    if not _ID.fullmatch(text):
        raise PlanError(
            path, f"{what} id {text!r} is not at most {MAX_ID} characters of [A-Za-z0-9._:-]"
        )
    if text in seen:
        raise PlanError(path, f"duplicate {what} id {text!r} (first at {seen[text]})")
    seen[text] = path
    return text


def to_json(sections: Sequence[PlanSection]) -> dict[str, object]:
    """``sections`` in our format, which ``from_json`` reads back to equal
    sections (accessible and blocked seats listed in row order)."""

    def marked(row: PlanRow, seats: frozenset[str]) -> list[str]:
        return [seat for seat in row.seat_ids if seat in seats]

    return {
        "sections": [
            {
                "section_id": section.section_id,
                "rows": [
                    {
                        "row_id": row.row_id,
                        "seat_ids": list(row.seat_ids),
                        "accessible": marked(row, row.accessible),
                        "blocked": marked(row, row.blocked),
                    }
                    for row in section.rows
                ],
            }
            for section in sections
        ]
    }


# -- JSON shapes -------------------------------------------------------------

# bool before number: JSON's true is no number, though Python's True is an int.
_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "a boolean"),
    ((int, float), "a number"),
    (str, "a string"),
    (list, "an array"),
    (dict, "an object"),
)


def _kind(value: object) -> str:
    """The JSON name of ``value``'s type, as an operator reads the file."""
    if value is None:
        return "null"
    for python, json_name in _KINDS:
        if isinstance(value, python):
            return json_name
    return type(value).__name__


def _field(container: Mapping[str, object], key: str, path: str) -> object:
    if key not in container:
        raise PlanError(path, "missing")
    return container[key]


def _known(container: Mapping[str, object], fields: frozenset[str], path: str) -> None:
    for key in container:
        if key not in fields:
            raise PlanError(f"{path}.{key}" if path else key, "unknown field")


def _object(value: object, path: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise PlanError(path, f"expected an object, got {_kind(value)}")
    return value


def _array(value: object, path: str) -> list[object]:
    if not isinstance(value, list):
        raise PlanError(path, f"expected an array, got {_kind(value)}")
    return value


def _string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise PlanError(path, f"expected a string, got {_kind(value)}")
    return value


def _number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlanError(path, f"expected a number, got {_kind(value)}")
    if not math.isfinite(value):
        raise PlanError(path, f"expected a finite number, got {value}")
    return float(value)
