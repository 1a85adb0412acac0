"""``ReserveRequest`` / ``ReserveSyncRequest`` validation: every problem
named by its field."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Protocol

from ticketing_common.codecs import MAX_TEXT  # one limit for the gateway and the queue
from ticketing_common.domain import parse_uuid
from ticketing_common.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class ValidReserve:
    event_id: str
    user_id: str
    quantity: int
    idempotency_key: str


def _text(field: str, value: str) -> str:
    if not value or not value.strip():
        raise InvalidArgument(field, "is required")
    if len(value) > MAX_TEXT:
        raise InvalidArgument(field, f"must be at most {MAX_TEXT} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise InvalidArgument(field, "must not contain control characters")
    return value


class ReserveFields(Protocol):
    @property
    def event_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def idempotency_key(self) -> str: ...


def validate_reserve(request: ReserveFields) -> ValidReserve:
    """Returns the checked request or raises InvalidArgument for the first bad
    field, in declaration order."""
    event_id = parse_uuid("event_id", request.event_id)
    user_id = _text("user_id", request.user_id)
    if request.quantity < 1:
        raise InvalidArgument("quantity", f"must be at least 1, got {request.quantity}")
    key = _text("idempotency_key", request.idempotency_key)
    return ValidReserve(event_id, user_id, request.quantity, key)
