"""The shared field checks: every bad value is an InvalidArgument naming its
field, never another exception (which would reach a client as INTERNAL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pycountry
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from ticketing_common import fields
from ticketing_common.domain import parse_uuid
from ticketing_common.errors import InvalidArgument

INT64 = st.integers(-(2**63), 2**63 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
HOUR = timedelta(hours=1)


def refused(call: object, *args: object) -> InvalidArgument:
    assert callable(call)
    with pytest.raises(InvalidArgument) as caught:
        call(*args)
    return caught.value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "is required"),
        ("   ", "is required"),
        ("k" * 129, "must be at most 128 characters, got 129"),
        ("key\x00", "must not contain control characters"),
        ("a\nb", "must not contain control characters"),
        ("\u200bkey", "must not contain control characters"),  # a format character
        ("\u202eevil", "must not contain control characters"),
    ],
)
def test_text_names_its_field_and_problem(value: str, problem: str) -> None:
    error = refused(fields.text, "idempotency_key", value, 128)
    assert (error.field, error.violations[0].description) == ("idempotency_key", problem)


def test_text_takes_any_printable_unicode_up_to_its_bound() -> None:
    assert fields.text("name", "Café 東京 🎫", 128) == "Café 東京 🎫"
    assert fields.text("k", "k" * 128, 128) == "k" * 128


@given(st.text())
def test_text_either_passes_or_names_its_field(value: str) -> None:
    try:
        assert fields.text("f", value, 16) == value
    except InvalidArgument as error:
        assert error.field == "f"


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (2**63 - 1, 0),
        (-(2**63), 0),
        (fields.MAX_TIMESTAMP_SECONDS + 1, 0),
        (fields.MIN_TIMESTAMP_SECONDS - 1, 0),
        (0, -1),
        (0, 1_000_000_000),
        (0, 2**31 - 1),
    ],
)
def test_a_timestamp_out_of_its_range_is_named(seconds: int, nanos: int) -> None:
    error = refused(fields.moment, "sale_start_time", Timestamp(seconds=seconds, nanos=nanos))
    assert error.field == "sale_start_time"
    assert "out of range" in error.violations[0].description


def test_a_timestamp_at_the_ends_of_its_range_converts() -> None:
    low = fields.moment("t", Timestamp(seconds=fields.MIN_TIMESTAMP_SECONDS))
    high = fields.moment("t", Timestamp(seconds=fields.MAX_TIMESTAMP_SECONDS, nanos=999_999_999))
    assert low == datetime(1, 1, 1, tzinfo=UTC)
    assert high.year == 9999


@given(INT64, INT32)
def test_any_timestamp_converts_or_is_named(seconds: int, nanos: int) -> None:
    try:
        assert fields.moment("t", Timestamp(seconds=seconds, nanos=nanos)).tzinfo is UTC
    except InvalidArgument as error:
        assert error.field == "t"


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (2**63 - 1, 0),  # ToTimedelta would raise OverflowError
        (fields.MAX_DURATION_SECONDS + 1, 0),
        (5, -1),  # signs differ
        (-5, 1),
        (0, 1_000_000_000),
        (5, -(2**31)),
    ],
)
def test_a_malformed_duration_is_named(seconds: int, nanos: int) -> None:
    error = refused(
        fields.duration, "queue_ttl", Duration(seconds=seconds, nanos=nanos), timedelta(0), HOUR
    )
    assert error.field == "queue_ttl"
    assert "not a valid Duration" in error.violations[0].description


def test_a_duration_outside_its_bounds_says_them() -> None:
    error = refused(
        fields.duration, "hold_ttl", Duration(seconds=0), timedelta(seconds=1), timedelta(hours=24)
    )
    assert error.violations[0].description == "must be between 1s and 24h"
    assert fields.duration("d", Duration(seconds=60), timedelta(seconds=1), HOUR) == timedelta(
        minutes=1
    )


@given(INT64, INT32)
def test_any_duration_converts_or_is_named(seconds: int, nanos: int) -> None:
    try:
        found = fields.duration(
            "d", Duration(seconds=seconds, nanos=nanos), timedelta(seconds=-HOUR.seconds), HOUR
        )
        assert abs(found) <= HOUR
    except InvalidArgument as error:
        assert error.field == "d"


def test_every_iso_4217_currency_in_use_is_a_price_currency_and_nothing_else() -> None:
    standard = {c.alpha_3 for c in pycountry.currencies}
    assert {"EUR", "USD", "JPY", "CHF", "XOF", "XCD"} <= fields.currencies()
    assert fields.currencies() == standard - fields.NOT_MONEY
    assert fields.NOT_MONEY.issubset(standard)  # each of them a code of the standard


@pytest.mark.parametrize(
    "code", ["", "eur", "Eur", "EU", "EURO", "ZZZ", "XXX", "XTS", "XAU", "DEM", "E\u0301U", "€"]
)
def test_a_code_that_is_not_a_currency_in_use_is_refused(code: str) -> None:
    error = refused(fields.currency, "price.currency_code", code)
    assert error.field == "price.currency_code"
    assert "ISO 4217" in error.violations[0].description


@pytest.mark.parametrize(
    ("paths", "problem"),
    [
        ([], "must name the fields to change: capacity, name"),
        (["available"], "cannot change 'available'; updatable: capacity, name"),
        (["event.name"], "cannot change 'event.name'; updatable: capacity, name"),
        (["name", "x" * 100], f"cannot change {'x' * 40 + '...'!r}; updatable: capacity, name"),
    ],
)
def test_an_update_mask_names_real_fields_only(paths: list[str], problem: str) -> None:
    error = refused(fields.mask, "update_mask", FieldMask(paths=paths), {"name", "capacity"})
    assert (error.field, error.violations[0].description) == ("update_mask", problem)


def test_an_update_mask_names_each_field_once() -> None:
    mask = FieldMask(paths=["name", "capacity", "name"])
    assert fields.mask("update_mask", mask, {"name", "capacity"}) == ["name", "capacity"]


@pytest.mark.parametrize(
    "value",
    [
        "{12345678-1234-5678-1234-567812345678}",
        "urn:uuid:12345678-1234-5678-1234-567812345678",
        "12345678123456781234567812345678",
        "1234567-81234-5678-1234-567812345678",  # the hyphens elsewhere
        "12345678-1234-5678-1234-56781234567\u0661",  # an Arabic-Indic one
        "12345678-1234-5678-1234-567812345678\x00",
        "x" * 10_000,
    ],
)
def test_an_id_is_a_uuid_in_its_canonical_form(value: str) -> None:
    error = refused(parse_uuid, "event_id", value)
    assert error.field == "event_id"
    assert len(str(error)) < 120  # the value is echoed cut short


def test_an_id_in_capitals_is_the_same_id() -> None:
    found = parse_uuid("event_id", "12345678-ABCD-5678-1234-567812345678")
    assert found == "12345678-abcd-5678-1234-567812345678"
