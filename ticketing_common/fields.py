"""Checks of request fields every servicer shares.

Each parser takes the field's name and its value as sent and returns the
value the service works with, or raises ``InvalidArgument`` naming the field:
no input reaches a conversion that could fail inside the service (a
Timestamp past year 9999, a Duration of 2^63 seconds, a NUL that PostgreSQL
cannot store) and come back as INTERNAL.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache

import pycountry
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from .errors import InvalidArgument

# What google.protobuf.Timestamp and Duration may hold, as their docs define it.
MIN_TIMESTAMP_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
MAX_TIMESTAMP_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_DURATION_SECONDS = 315_576_000_000  # about 10,000 years
MAX_NANOS = 999_999_999

# Codes ISO 4217 lists that are no money a seat is priced in: precious
# metals, bond-market and other units of account, the testing code and "no
# currency" (their minor unit is "N.A." in the standard).
NOT_MONEY = frozenset(
    {"XAD", "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA"}
    | {"XXX"}
)

# How much of a bad value a description repeats.
ECHO = 40


def echo(value: str) -> str:
    """A bad value, cut short and quoted, for a description."""
    return repr(value[:ECHO] + ("..." if len(value) > ECHO else ""))


def has_control(value: str) -> bool:
    # isprintable() is false for every control, format, surrogate, private
    # and unassigned character (and a few separators): the exact check runs
    # only then.
    return not value.isprintable() and any(unicodedata.category(ch).startswith("C") for ch in value)


def text(field: str, value: str, max_chars: int, *, required: bool = True) -> str:
    """Text of at most ``max_chars`` characters, none of them a control,
    format or unassigned one (NUL included); blank is missing."""
    if not value or not value.strip():
        if required:
            raise InvalidArgument(field, "is required")
        return ""
    if len(value) > max_chars:
        raise InvalidArgument(field, f"must be at most {max_chars} characters, got {len(value)}")
    if has_control(value):
        raise InvalidArgument(field, "must not contain control characters")
    return value


def moment(field: str, value: Timestamp) -> datetime:
    """A Timestamp within the range its type defines, as an aware datetime."""
    if not MIN_TIMESTAMP_SECONDS <= value.seconds <= MAX_TIMESTAMP_SECONDS:
        raise InvalidArgument(
            field, "is out of range: seconds must be from year 1 to year 9999 (RFC 3339)"
        )
    if not 0 <= value.nanos <= MAX_NANOS:
        raise InvalidArgument(field, f"is out of range: nanos must be 0 to {MAX_NANOS}")
    return value.ToDatetime(tzinfo=UTC)


def duration(field: str, value: Duration, low: timedelta, high: timedelta) -> timedelta:
    """A well-formed Duration between ``low`` and ``high``."""
    seconds, nanos = value.seconds, value.nanos
    if (
        abs(seconds) > MAX_DURATION_SECONDS
        or abs(nanos) > MAX_NANOS
        or (seconds > 0 > nanos)
        or (seconds < 0 < nanos)
    ):
        raise InvalidArgument(
            field,
            "is not a valid Duration (seconds within ±315,576,000,000, nanos within "
            "±999,999,999 and of the same sign)",
        )
    found = value.ToTimedelta()
    if not low <= found <= high:
        raise InvalidArgument(field, f"must be between {_span(low)} and {_span(high)}")
    return found


def _span(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


@cache
def currencies() -> frozenset[str]:
    """The ISO 4217 codes of the currencies in use (pycountry's copy of the
    standard), less those that are not money."""
    return frozenset(c.alpha_3 for c in pycountry.currencies) - NOT_MONEY


def currency(field: str, code: str) -> str:
    """An ISO 4217 currency code in use, e.g. EUR (upper case, as the standard writes it)."""
    if code not in currencies():
        raise InvalidArgument(
            field, f"must be an ISO 4217 currency code in use, such as EUR, got {echo(code)}"
        )
    return code


def mask(field: str, value: FieldMask, allowed: Collection[str]) -> list[str]:
    """The paths of an update mask, each one of ``allowed``, at least one,
    none twice."""
    paths = list(value.paths)
    if not paths:
        raise InvalidArgument(field, f"must name the fields to change: {_listed(allowed)}")
    unknown = [p for p in dict.fromkeys(paths) if p not in allowed]
    if unknown:
        raise InvalidArgument(
            field,
            f"cannot change {', '.join(echo(p) for p in unknown[:5])}"
            f"{' and more' if len(unknown) > 5 else ''}; updatable: {_listed(allowed)}",
        )
    return list(dict.fromkeys(paths))


def _listed(names: Collection[str]) -> str:
    return ", ".join(sorted(names))


def distinct(field: str, values: Sequence[str], *, most: int) -> tuple[str, ...]:
    """Repeated values, duplicates dropped, at most ``most`` of them."""
    found = tuple(dict.fromkeys(values))
    if len(found) > most:
        raise InvalidArgument(field, f"at most {most} values, got {len(found)}")
    return found
