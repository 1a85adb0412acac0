"""A ``CreateEventRequest``'s seating plan, checked: every problem named by
the field of the section, row or seat it is in (the first
``MAX_PROBLEMS``, so a hostile plan of 100,000 bad seats costs one short
answer), and the plan as the seat map's sections."""

from __future__ import annotations

from dataclasses import dataclass

from ticketing.v1 import reservation_pb2
from ticketing_common import fields
from ticketing_common.domain import Money
from ticketing_common.errors import Violations
from ticketing_common.seating import PlanRow, PlanSection, valid_id

# A plan's limits: places in all (seats not blocked and standing places),
# sections, rows per section, seats per row.
MAX_PLACES = 100_000
MAX_SECTIONS = 1_000
MAX_ROWS = 1_000
MAX_ROW_SEATS = 1_000
MAX_SECTION_NAME = 200
MAX_PROBLEMS = 20
MAX_PRICE_MINOR = 10**12
# GetSeatMap answers the whole map in one message, and gRPC clients take 4
# MiB by default: a plan's ids, with room for each seat's fields and
# framing, must fit well within it.
MAX_MAP_BYTES = 3 * 1024 * 1024
SEAT_OVERHEAD_BYTES = 12
# The largest CreateEventRequest the reservation service (and the load
# balancer, for that method alone) takes: a plan within MAX_MAP_BYTES,
# which encodes smaller than its map, and the event's other fields.
MAX_PLAN_MESSAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Plan:
    sections: tuple[PlanSection, ...]

    @property
    def places(self) -> int:
        return sum(s.sellable for s in self.sections)


class _Problems:
    """The first problems found, then a count of the rest."""

    def __init__(self, into: Violations) -> None:
        self._into = into
        self.count = 0

    def add(self, field: str, description: str) -> None:
        self.count += 1
        if self.count <= MAX_PROBLEMS:
            self._into.add(field, description)

    @property
    def full(self) -> bool:
        return self.count >= MAX_PROBLEMS


def _id(problems: _Problems, field: str, value: str) -> bool:
    if valid_id(value):
        return True
    problems.add(field, f"must be 1 to 64 of A-Z a-z 0-9 . _ : -, got {fields.echo(value)}")
    return False


def validate_plan(
    given: reservation_pb2.SeatingPlan, price: Money | None, into: Violations
) -> Plan | None:
    """The plan, or None with its problems added to ``into``. ``price`` is
    the event's: a section's price is in its currency, and only a priced
    event (one with holds) has priced sections."""
    problems = _Problems(into)
    base = "seating_plan.sections"
    if not 1 <= len(given.sections) <= MAX_SECTIONS:
        problems.add(base, f"must be 1 to {MAX_SECTIONS} sections, got {len(given.sections)}")
        return None
    sections: list[PlanSection] = []
    section_ids: set[str] = set()
    seat_where: dict[str, str] = {}
    places = 0
    for s_index, section in enumerate(given.sections):
        if problems.full:
            break
        at = f"{base}[{s_index}]"
        if _id(problems, f"{at}.section_id", section.section_id):
            if section.section_id in section_ids:
                problems.add(f"{at}.section_id", f"{section.section_id!r} is in the plan twice")
            section_ids.add(section.section_id)
        if len(section.name) > MAX_SECTION_NAME or not section.name.isprintable():
            problems.add(f"{at}.name", f"must be at most {MAX_SECTION_NAME} printable characters")
        section_price = _section_price(section, price, f"{at}.price", problems)
        rows = _rows(section, at, seat_where, problems)
        if rows is None:
            continue
        plan_section = PlanSection(
            section.section_id,
            rows,
            name=section.name,
            price_minor=section_price,
            capacity=section.capacity if not rows else 0,
        )
        if not rows and not 1 <= section.capacity <= MAX_PLACES:
            problems.add(
                f"{at}.capacity",
                f"a standing section (no rows) has 1 to {MAX_PLACES} places, "
                f"got {section.capacity}",
            )
        elif rows and section.capacity not in (0, plan_section.sellable):
            problems.add(
                f"{at}.capacity",
                f"must be 0 or the section's seats not blocked ({plan_section.sellable}), "
                f"got {section.capacity}",
            )
        places += plan_section.sellable
        sections.append(plan_section)
    if not problems.count and not 1 <= places <= MAX_PLACES:
        problems.add(base, f"must hold 1 to {MAX_PLACES} places to sell, got {places}")
    size = sum(
        len(s.section_id) + len(r.row_id) + len(seat) + SEAT_OVERHEAD_BYTES
        for s in sections
        for r in s.rows
        for seat in r.seat_ids
    )
    if not problems.count and size > MAX_MAP_BYTES:
        problems.add(
            base,
            f"its seat map would be {size} bytes, more than {MAX_MAP_BYTES} (one GetSeatMap "
            "answer): use shorter ids or fewer seats",
        )
    return None if problems.count else Plan(tuple(sections))


def _section_price(
    section: reservation_pb2.Section, price: Money | None, at: str, problems: _Problems
) -> int | None:
    if not section.HasField("price"):
        return None
    given = section.price
    if price is None:
        problems.add(at, "a free event's sections have no price (set the event's price)")
    elif given.currency_code != price.currency:
        problems.add(
            f"{at}.currency_code",
            f"must be the event's currency {price.currency}, "
            f"got {fields.echo(given.currency_code)}",
        )
    elif not 0 < given.amount_minor <= MAX_PRICE_MINOR:
        problems.add(f"{at}.amount_minor", f"must be between 1 and {MAX_PRICE_MINOR}")
    return given.amount_minor


def _rows(
    section: reservation_pb2.Section,
    at: str,
    seat_where: dict[str, str],
    problems: _Problems,
) -> tuple[PlanRow, ...] | None:
    """The section's rows, checked; None if any is bad."""
    if len(section.rows) > MAX_ROWS:
        problems.add(f"{at}.rows", f"at most {MAX_ROWS} rows, got {len(section.rows)}")
        return None
    before = problems.count
    rows: list[PlanRow] = []
    row_ids: set[str] = set()
    for r_index, row in enumerate(section.rows):
        if problems.full:
            return None
        row_at = f"{at}.rows[{r_index}]"
        if _id(problems, f"{row_at}.row_id", row.row_id):
            if row.row_id in row_ids:
                problems.add(f"{row_at}.row_id", f"{row.row_id!r} is in the section twice")
            row_ids.add(row.row_id)
        if not _row_seats(row, row_at, seat_where, problems):
            continue
        rows.append(
            PlanRow(
                row.row_id,
                tuple(row.seat_ids),
                accessible=frozenset(row.accessible_seat_ids),
                blocked=frozenset(row.blocked_seat_ids),
            )
        )
    return None if problems.count > before else tuple(rows)


def _row_seats(
    row: reservation_pb2.Row, row_at: str, seat_where: dict[str, str], problems: _Problems
) -> bool:
    """Checks one row's seats and their marks; False if it has no seats to check."""
    if not 1 <= len(row.seat_ids) <= MAX_ROW_SEATS:
        problems.add(
            f"{row_at}.seat_ids", f"must be 1 to {MAX_ROW_SEATS} seats, got {len(row.seat_ids)}"
        )
        return False
    for i, seat in enumerate(row.seat_ids):
        if problems.full:
            return True
        field = f"{row_at}.seat_ids[{i}]"
        if not _id(problems, field, seat):
            continue
        if seat in seat_where:
            problems.add(field, f"seat {seat!r} is in the plan twice (also {seat_where[seat]})")
        else:
            seat_where[seat] = field
    mine = set(row.seat_ids)
    for name in ("accessible_seat_ids", "blocked_seat_ids"):
        marked = getattr(row, name)
        for i, seat in enumerate(marked):
            if seat not in mine:
                problems.add(
                    f"{row_at}.{name}[{i}]", f"{fields.echo(seat)} is not a seat of this row"
                )
        if len(set(marked)) != len(marked):
            problems.add(f"{row_at}.{name}", "names a seat twice")
    return True
