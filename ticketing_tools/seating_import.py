"""Seating plans from JSON: pretix's seating plan, and our own format.

Pure: a document in, a ``Plan`` of ``PlanSection``s out, or a ``PlanError``
naming the path of what is wrong (``zones[2].rows[5].seats[3].seat_guid:
...``), so an operator can find it in the file. ``load`` takes the text and
picks the format by its top-level key: pretix's plans have ``zones``, ours
``sections``.

Our format is the proto JSON mapping of ``ticketing.v1.SeatingPlan``
(``docs/seating-plan.schema.json`` describes it), so one file serves this
importer and grpcurl alike (``{"name": ..., "per_user_limit": ...,
"seating_plan": <the file>}``). As the mapping does, a field may be given
by its JSON name (``sectionId``) or its proto name (``section_id``), and
an integer as a number or a string of digits; ``to_json`` writes JSON
names. Unlike the mapping, it refuses a field given under both names and
a ``null`` value, rather than leaving what they mean to the parser.

A section is seated, with rows, or standing (general admission) without,
with ``capacity`` places; a seated section's ``capacity`` is 0 (left out)
or its seats not blocked. Section ids are unique in the plan, row ids in
their section, seat ids in the plan; an id is 1 to 64 characters of
``[A-Za-z0-9._:-]``. ``seatIds`` of a row are in order along it, and
``accessibleSeatIds`` and ``blockedSeatIds`` name seats of their own row.
A section's ``price`` is in the event's currency, so one plan has one.
The limits are the reservation service's (``reservation_service.seating_plan``),
the seat map's size in one GetSeatMap answer among them: a plan that
passes here passes there, but for its currency being the event's and
prices being only for priced events, which only the event says.

pretix's plan (its ``seating-plan.schema.json``) maps as follows:

- A zone is a section, named by the zone's ``name``. The schema makes the
  zone the grouping of a plan ("main area", "balcony") and the category
  only an attribute of each seat (a price level, mapped to shop products),
  so one row may mix categories. A section per zone and category would cut
  such rows in pieces, and seats next to each other would stop being
  together; the category is a matter of price, not of where seats are, and
  is not carried. The section id is the zone's ``zone_id``, else its
  ``name`` (the fallback the schema itself names), else ``zone-<index>``.
  A zone without rows (only areas: a stage, a bar, labels) draws and seats
  nobody: it makes no section.
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
ours, where a misspelt ``blockedSeatIds`` would otherwise sell blocked seats.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from google.protobuf import json_format

from reservation_service.seating_plan import (
    MAX_MAP_BYTES,
    MAX_PLACES,
    MAX_PRICE_MINOR,
    MAX_ROW_SEATS,
    MAX_ROWS,
    MAX_SECTION_NAME,
    MAX_SECTIONS,
    SEAT_OVERHEAD_BYTES,
)
from ticketing.v1 import reservation_pb2
from ticketing_common.seating import PlanRow, PlanSection, valid_id

MAX_ID = 64
_NOT_ID = re.compile(r"[^A-Za-z0-9._:-]")
_HASH_DIGITS = 12


class PlanError(ValueError):
    """A plan that cannot be imported; ``path`` says where in the document."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Plan:
    """An imported plan: its sections, best first, and the currency of the
    sections' own prices (None when none has one)."""

    sections: tuple[PlanSection, ...]
    currency: str | None = None

    def __post_init__(self) -> None:
        priced = any(section.price_minor is not None for section in self.sections)
        if priced != (self.currency is not None):
            raise ValueError("a plan has a currency when, and only when, a section has a price")

    @property
    def places(self) -> int:
        """What the plan sells: seats not blocked, and standing places."""
        return sum(section.sellable for section in self.sections)


def load(text: str | bytes) -> Plan:
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


def from_pretix(document: object) -> Plan:
    """pretix's seating plan as ours; see the module's docstring."""
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
    if len(sections) > MAX_SECTIONS:
        raise PlanError("zones", f"at most {MAX_SECTIONS} zones with rows, got {len(sections)}")
    _check_totals(sections, "zones")
    return Plan(tuple(sections))


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
        if len(rows) > MAX_ROWS:
            raise PlanError(f"{path}.rows", f"at most {MAX_ROWS} rows in a zone, got {len(rows)}")
        name = _section_name(zone["name"], f"{path}.name") if "name" in zone else ""
        label = next((given for given in names if given), f"zone-{index}")
        section_id = _unused(_mapped(label), self.section_ids)
        return PlanSection(
            section_id,
            tuple(self.row(row, f"{path}.rows[{r}]", section_id) for r, row in enumerate(rows)),
            name=name,
        )

    def row(self, value: object, path: str, section_id: str) -> PlanRow:
        row = _object(value, path)
        number = _string(_field(row, "row_number", f"{path}.row_number"), f"{path}.row_number")
        row_id = _unused(_mapped(f"{section_id}:{number}"), self.row_ids)
        seats = _array(_field(row, "seats", f"{path}.seats"), f"{path}.seats")
        if not seats:
            raise PlanError(f"{path}.seats", "a row needs at least one seat")
        if len(seats) > MAX_ROW_SEATS:
            raise PlanError(
                f"{path}.seats", f"at most {MAX_ROW_SEATS} seats in a row, got {len(seats)}"
            )
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
    if valid_id(raw):
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


# -- our format: the proto JSON mapping of ticketing.v1.SeatingPlan ---------

# Each message's fields, proto name -> JSON name (a test holds them to the
# generated descriptor, so a field added to the contract is not skipped).
PLAN_FIELDS = {"sections": "sections"}
SECTION_FIELDS = {
    "section_id": "sectionId",
    "name": "name",
    "price": "price",
    "capacity": "capacity",
    "rows": "rows",
}
ROW_FIELDS = {
    "row_id": "rowId",
    "seat_ids": "seatIds",
    "accessible_seat_ids": "accessibleSeatIds",
    "blocked_seat_ids": "blockedSeatIds",
}
MONEY_FIELDS = {"currency_code": "currencyCode", "amount_minor": "amountMinor"}

_CURRENCY = re.compile(r"[A-Z]{3}")
# The mapping's integers: JSON numbers, or strings of digits (how it writes int64).
_INTEGER = re.compile(r"[-+]?[0-9]+")


def from_json(document: object) -> Plan:
    """Our own plan format (the module's docstring has its rules)."""
    plan = _Message(document, "", PLAN_FIELDS)
    where = plan.at("sections")
    section_docs = _array(plan.required("sections"), where)
    if not section_docs:
        raise PlanError(where, "a plan needs at least one section")
    if len(section_docs) > MAX_SECTIONS:
        raise PlanError(where, f"at most {MAX_SECTIONS} sections, got {len(section_docs)}")
    reader = _OurReader()
    sections = tuple(reader.section(doc, f"{where}[{i}]") for i, doc in enumerate(section_docs))
    _check_totals(sections, where)
    return Plan(sections, reader.currency)


def from_proto(message: reservation_pb2.SeatingPlan) -> Plan:
    """A ``SeatingPlan`` message, checked as a document of our format is
    (paths in its proto field names)."""
    return from_json(json_format.MessageToDict(message, preserving_proto_field_name=True))


class _OurReader:
    """Reads one plan of ours, keeping the ids and the currency given so far."""

    def __init__(self) -> None:
        self.sections_at: dict[str, str] = {}
        self.seats_at: dict[str, str] = {}
        self.currency: str | None = None
        self._currency_at = ""

    def section(self, value: object, path: str) -> PlanSection:
        section = _Message(value, path, SECTION_FIELDS)
        section_id = _checked_id(
            section.required("section_id"), section.at("section_id"), "section", self.sections_at
        )
        name = _section_name(section.get("name", ""), section.at("name"))
        price = (
            self.price(section.get("price"), section.at("price")) if "price" in section else None
        )
        rows_at = section.at("rows")
        row_docs = _array(section.get("rows", []), rows_at)
        if len(row_docs) > MAX_ROWS:
            raise PlanError(rows_at, f"at most {MAX_ROWS} rows in a section, got {len(row_docs)}")
        row_ids: dict[str, str] = {}
        rows = tuple(self.row(doc, f"{rows_at}[{r}]", row_ids) for r, doc in enumerate(row_docs))
        capacity_at = section.at("capacity")
        if not rows and "capacity" not in section:
            raise PlanError(
                capacity_at, "missing: a section without rows is standing, of capacity places"
            )
        capacity = _integer(section.get("capacity", 0), capacity_at)
        if not rows:
            if not 1 <= capacity <= MAX_PLACES:
                raise PlanError(
                    capacity_at,
                    f"a standing section (no rows) has 1 to {MAX_PLACES} places, got {capacity}",
                )
            return PlanSection(section_id, (), name=name, price_minor=price, capacity=capacity)
        # Kept as given (0 or the seats' count), so the message sent is the
        # file's as the mapping reads it.
        seated = PlanSection(section_id, rows, name=name, price_minor=price, capacity=capacity)
        if capacity not in (0, seated.sellable):
            raise PlanError(
                capacity_at,
                f"a seated section's capacity is 0 or its seats not blocked ({seated.sellable}), "
                f"got {capacity}",
            )
        return seated

    def price(self, value: object, path: str) -> int:
        money = _Message(value, path, MONEY_FIELDS)
        at = money.at("currency_code")
        currency = _string(money.required("currency_code"), at)
        if not _CURRENCY.fullmatch(currency):
            raise PlanError(at, f"expected an ISO 4217 code such as 'EUR', got {currency!r}")
        if self.currency is None:
            self.currency, self._currency_at = currency, at
        elif currency != self.currency:
            raise PlanError(
                at,
                f"{currency!r} is not the plan's currency {self.currency!r} (of "
                f"{self._currency_at}): a plan is priced in its event's currency",
            )
        at = money.at("amount_minor")
        amount = _integer(money.required("amount_minor"), at)
        if not 1 <= amount <= MAX_PRICE_MINOR:
            raise PlanError(at, f"must be 1 to {MAX_PRICE_MINOR}, got {amount}")
        return amount

    def row(self, value: object, path: str, row_ids: dict[str, str]) -> PlanRow:
        """One row; ``row_ids`` are its section's (a row id is unique in its section)."""
        row = _Message(value, path, ROW_FIELDS)
        row_id = _checked_id(row.required("row_id"), row.at("row_id"), "row", row_ids)
        seats_at = row.at("seat_ids")
        seat_docs = _array(row.required("seat_ids"), seats_at)
        if not seat_docs:
            raise PlanError(seats_at, "a row needs at least one seat")
        if len(seat_docs) > MAX_ROW_SEATS:
            raise PlanError(
                seats_at, f"at most {MAX_ROW_SEATS} seats in a row, got {len(seat_docs)}"
            )
        seat_ids = [
            _checked_id(seat, f"{seats_at}[{s}]", "seat", self.seats_at)
            for s, seat in enumerate(seat_docs)
        ]
        marked = {}
        for key in ("accessible_seat_ids", "blocked_seat_ids"):
            at = row.at(key)
            listed: dict[str, str] = {}
            for j, seat in enumerate(_array(row.get(key, []), at)):
                where = f"{at}[{j}]"
                name = _string(seat, where)
                if name not in seat_ids:
                    raise PlanError(where, f"{name!r} is not a seat of row {row_id!r}")
                if name in listed:
                    raise PlanError(where, f"{name!r} listed twice (first at {listed[name]})")
                listed[name] = where
            marked[key] = frozenset(listed)
        return PlanRow(
            row_id, tuple(seat_ids), marked["accessible_seat_ids"], marked["blocked_seat_ids"]
        )


class _Message:
    """One object of the document read as a message of the proto JSON
    mapping: each field by its JSON name or its proto name (not both, which
    would leave which one counts to the reader), any other key refused."""

    def __init__(self, value: object, path: str, fields: Mapping[str, str]) -> None:
        self._path = path
        self._fields = fields
        names = {json_name: proto for proto, json_name in fields.items()}
        names.update({proto: proto for proto in fields})
        # Proto name -> the key the document gives it under, and its value.
        self._given: dict[str, tuple[str, object]] = {}
        for key, item in _object(value, path or "plan").items():
            proto = names.get(key)
            if proto is None:
                raise PlanError(self._at(key), "unknown field")
            if proto in self._given:
                first = self._given[proto][0]
                raise PlanError(self._at(key), f"the same field as {first!r}: give it once")
            self._given[proto] = (key, item)

    def _at(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def __contains__(self, proto: str) -> bool:
        return proto in self._given

    def at(self, proto: str) -> str:
        """The field's path, by the name the document gives it (else its JSON name)."""
        return self._at(self._given[proto][0] if proto in self._given else self._fields[proto])

    def get(self, proto: str, default: object = None) -> object:
        return self._given[proto][1] if proto in self._given else default

    def required(self, proto: str) -> object:
        if proto not in self._given:
            raise PlanError(self.at(proto), "missing")
        return self._given[proto][1]


def _checked_id(value: object, path: str, what: str, seen: dict[str, str]) -> str:
    """An id of ours, unique among ``seen`` (id -> where it first was)."""
    text = _string(value, path)
    if not text:
        raise PlanError(path, f"empty {what} id")
    if not valid_id(text):
        raise PlanError(
            path, f"{what} id {text!r} is not at most {MAX_ID} characters of [A-Za-z0-9._:-]"
        )
    if text in seen:
        raise PlanError(path, f"duplicate {what} id {text!r} (first at {seen[text]})")
    seen[text] = path
    return text


def _section_name(value: object, path: str) -> str:
    name = _string(value, path)
    if len(name) > MAX_SECTION_NAME or not name.isprintable():
        raise PlanError(
            path, f"a section's name is at most {MAX_SECTION_NAME} printable characters"
        )
    return name


def _check_totals(sections: Sequence[PlanSection], path: str) -> None:
    """The plan's places, and its seat map's size (the service answers
    GetSeatMap in one message, counted as it counts it)."""
    places = sum(section.sellable for section in sections)
    if not 1 <= places <= MAX_PLACES:
        raise PlanError(path, f"a plan has 1 to {MAX_PLACES} places to sell, got {places}")
    size = sum(
        len(section.section_id) + len(row.row_id) + len(seat) + SEAT_OVERHEAD_BYTES
        for section in sections
        for row in section.rows
        for seat in row.seat_ids
    )
    if size > MAX_MAP_BYTES:
        raise PlanError(
            path,
            f"its seat map would be {size} bytes, more than {MAX_MAP_BYTES} (one GetSeatMap "
            "answer): use shorter ids or fewer seats",
        )


def to_proto(plan: Plan) -> reservation_pb2.SeatingPlan:
    """``plan`` as the ``seating_plan`` of a ``CreateEventRequest``
    (accessible and blocked seats listed in row order)."""
    message = reservation_pb2.SeatingPlan()
    for section in plan.sections:
        added = message.sections.add(
            section_id=section.section_id, name=section.name, capacity=section.capacity
        )
        if section.price_minor is not None:
            added.price.currency_code = plan.currency or ""
            added.price.amount_minor = section.price_minor
        for row in section.rows:
            added.rows.add(
                row_id=row.row_id,
                seat_ids=row.seat_ids,
                accessible_seat_ids=[seat for seat in row.seat_ids if seat in row.accessible],
                blocked_seat_ids=[seat for seat in row.seat_ids if seat in row.blocked],
            )
    return message


def to_json(plan: Plan) -> dict[str, object]:
    """``plan`` in our format, as the proto JSON mapping writes it (JSON
    names, fields at their defaults left out), which ``from_json`` reads
    back to an equal plan; amounts are written as numbers, which the
    mapping reads as well as the strings it writes for an int64."""
    return json_format.MessageToDict(to_proto(plan), unquote_int64_if_possible=True)


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


def _integer(value: object, path: str) -> int:
    """An integer as the proto JSON mapping reads one: a number without a
    fraction, or a string of digits."""
    if isinstance(value, str):
        if not _INTEGER.fullmatch(value):
            raise PlanError(path, f"expected an integer, got {value!r}")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlanError(path, f"expected an integer, got {_kind(value)}")
    if isinstance(value, float) and not value.is_integer():
        raise PlanError(path, f"expected an integer, got {value}")
    return int(value)


def _number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlanError(path, f"expected a number, got {_kind(value)}")
    if not math.isfinite(value):
        raise PlanError(path, f"expected a finite number, got {value}")
    return float(value)
