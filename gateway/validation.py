"""``ReserveRequest`` / ``ReserveSyncRequest`` validation: every problem
named by its field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ticketing_common import fields
from ticketing_common.codecs import MAX_TEXT  # one limit for the gateway and the queue
from ticketing_common.domain import parse_uuid
from ticketing_common.errors import InvalidArgument, Violations
from ticketing_common.seating import MAX_CHOSEN, valid_id


@dataclass(frozen=True, slots=True)
class ValidReserve:
    event_id: str
    user_id: str
    quantity: int
    idempotency_key: str
    # A seated event: where (see ReserveRequest).
    section_id: str = ""
    seat_ids: tuple[str, ...] = ()
    accessible: bool = False

    @property
    def seated(self) -> bool:
        return bool(self.section_id or self.seat_ids or self.accessible)


def _text(field: str, value: str) -> str:
    return fields.text(field, value, MAX_TEXT)


class ReserveFields(Protocol):
    @property
    def event_id(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def idempotency_key(self) -> str: ...


def _quantity(field: str, value: int) -> int:
    if value < 1:
        raise InvalidArgument(field, f"must be at least 1, got {value}")
    return value


def validate_reserve(request: ReserveFields, user_id: str) -> ValidReserve:
    """Returns the checked request of ``user_id`` (the verified caller), or
    raises one InvalidArgument naming every bad field, in declaration order.
    (Whether the event is seated, and has those seats, is ``check_seats``.)"""
    problems = Violations()
    event_id = problems.check(parse_uuid, "event_id", request.event_id)
    chosen = tuple(getattr(request, "seat_ids", ()))
    given = request.quantity
    if chosen and given in (0, len(chosen)):
        given = len(chosen)
    elif chosen:
        problems.add(
            "quantity", f"must be 0 or the number of seat_ids ({len(chosen)}), got {given}"
        )
    quantity = problems.check(_quantity, "quantity", given)
    key = problems.check(_text, "idempotency_key", request.idempotency_key)
    section_id = getattr(request, "section_id", "")
    if section_id and not valid_id(section_id):
        problems.add(
            "section_id", f"must be 1 to 64 of A-Z a-z 0-9 . _ : -, got {fields.echo(section_id)}"
        )
    if section_id and chosen:
        problems.add("section_id", "give a section (best available) or seat_ids, not both")
    if len(chosen) > MAX_CHOSEN:
        problems.add("seat_ids", f"at most {MAX_CHOSEN} seats, got {len(chosen)}")
    else:
        seen: set[str] = set()
        for i, seat in enumerate(chosen):
            if not valid_id(seat):
                problems.add(f"seat_ids[{i}]", f"is not a seat id, got {fields.echo(seat)}")
            elif seat in seen:
                problems.add(f"seat_ids[{i}]", f"{seat!r} is asked for twice")
            seen.add(seat)
    problems.raise_if_any()
    assert event_id is not None  # raise_if_any raised otherwise
    assert quantity is not None and key is not None
    return ValidReserve(
        event_id,
        user_id,
        quantity,
        key,
        section_id=section_id,
        seat_ids=chosen,
        accessible=bool(getattr(request, "accessible", False)),
    )


def check_seats(valid: ValidReserve, plan: PlanIds | None) -> None:
    """Refuses what a seated request names that the event's plan (None: a
    general-admission event) does not have."""
    problems = Violations()
    if plan is None:
        for name in ("section_id", "seat_ids", "accessible"):
            if getattr(valid, name):
                problems.add(name, f"event {valid.event_id} has no seating plan")
    else:
        if valid.section_id and valid.section_id not in plan.sections:
            problems.add(
                "section_id", f"event {valid.event_id} has no section {valid.section_id!r}"
            )
        for i, seat in enumerate(valid.seat_ids):
            if seat not in plan.seats:
                problems.add(f"seat_ids[{i}]", f"event {valid.event_id} has no seat {seat!r}")
    problems.raise_if_any()


@dataclass(frozen=True, slots=True)
class PlanIds:
    """A seated event's section ids and the ids of its seats (of seated
    sections: standing places are not chosen by id)."""

    sections: frozenset[str]
    seats: frozenset[str]
