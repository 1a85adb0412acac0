"""``ReserveRequest`` / ``ReserveSyncRequest`` validation: every problem
named by its field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ticketing_common import fields
from ticketing_common.codecs import MAX_TEXT  # one limit for the gateway and the queue
from ticketing_common.domain import parse_uuid
from ticketing_common.errors import InvalidArgument, Violations


@dataclass(frozen=True, slots=True)
class ValidReserve:
    event_id: str
    user_id: str
    quantity: int
    idempotency_key: str


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
    raises one InvalidArgument naming every bad field, in declaration order."""
    problems = Violations()
    event_id = problems.check(parse_uuid, "event_id", request.event_id)
    quantity = problems.check(_quantity, "quantity", request.quantity)
    key = problems.check(_text, "idempotency_key", request.idempotency_key)
    problems.raise_if_any()
    assert event_id is not None  # raise_if_any raised otherwise
    assert quantity is not None and key is not None
    return ValidReserve(event_id, user_id, quantity, key)
