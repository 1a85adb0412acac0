"""CreateEvent and UpdateEvent validation, without a network: every bad
field is named, and no value reaches a conversion that would raise."""

from __future__ import annotations

from datetime import timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from reservation_service.sale import KEEP
from reservation_service.validation import validate_create, validate_update
from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_common.errors import InvalidArgument

EVENT_ID = "12345678-1234-5678-1234-567812345678"


def priced(**fields: object) -> rs.CreateEventRequest:
    request = rs.CreateEventRequest(
        name="Concert",
        capacity=10,
        per_user_limit=2,
        price=pb.Money(currency_code="EUR", amount_minor=2_500),
        hold_ttl=Duration(seconds=60),
    )
    for name, value in fields.items():
        if isinstance(value, Duration | Timestamp | pb.Money):
            getattr(request, name).CopyFrom(value)
        elif isinstance(value, list):
            getattr(request, name).extend(value)
        else:
            setattr(request, name, value)
    return request


def violations(request: rs.CreateEventRequest | rs.UpdateEventRequest) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as refused:
        if isinstance(request, rs.CreateEventRequest):
            validate_create(request)
        else:
            validate_update(request)
    return {v.field: v.description for v in refused.value.violations}


def test_a_valid_priced_event() -> None:
    new = validate_create(priced())
    assert (new.price and new.price.currency, new.hold_ttl) == ("EUR", timedelta(minutes=1))


@pytest.mark.parametrize(
    ("fields", "field", "problem"),
    [
        # Before: OverflowError inside ToTimedelta, INTERNAL to the client.
        ({"queue_ttl": Duration(seconds=2**63 - 1)}, "queue_ttl", "is not a valid Duration"),
        ({"hold_ttl": Duration(seconds=5, nanos=-5)}, "hold_ttl", "is not a valid Duration"),
        ({"hold_ttl": Duration(seconds=0)}, "hold_ttl", "must be between 1s and 24h"),
        ({"queue_ttl": Duration(seconds=90_000)}, "queue_ttl", "must be between 1s and 24h"),
        (
            {"sale_start_time": Timestamp(seconds=2**62)},
            "sale_start_time",
            "is out of range: seconds must be from year 1 to year 9999 (RFC 3339)",
        ),
        (
            {"sale_end_time": Timestamp(seconds=1, nanos=-1)},
            "sale_end_time",
            "is out of range: nanos must be 0 to 999999999",
        ),
        # Before: any three capitals passed.
        (
            {"price": pb.Money(currency_code="ZZZ", amount_minor=100)},
            "price.currency_code",
            "must be an ISO 4217 currency code in use, such as EUR, got 'ZZZ'",
        ),
        (
            {"price": pb.Money(currency_code="XXX", amount_minor=100)},
            "price.currency_code",
            "must be an ISO 4217 currency code in use, such as EUR, got 'XXX'",
        ),
        ({"name": "a\x00b"}, "name", "must not contain control characters"),
        ({"name": "x" * 201}, "name", "must be at most 200 characters"),
    ],
)
def test_each_bad_field_is_named(fields: dict[str, object], field: str, problem: str) -> None:
    assert violations(priced(**fields))[field].startswith(problem)


def test_every_bad_field_is_named_at_once() -> None:
    request = priced(
        name="",
        queue_ttl=Duration(seconds=-(2**63)),
        sale_start_time=Timestamp(seconds=-(2**63)),
        sale_end_time=Timestamp(nanos=2**31 - 1),
        price=pb.Money(currency_code="eur", amount_minor=-1),
    )
    assert set(violations(request)) == {
        "name",
        "queue_ttl",
        "sale_start_time",
        "sale_end_time",
        "price.amount_minor",
        "price.currency_code",
    }


def test_too_many_tiers_is_one_violation() -> None:
    found = violations(priced(priority_tiers=[f"t{n}" for n in range(40)]))
    assert found == {"priority_tiers": "at most 16 tiers, got 40"}


def update(paths: list[str], **fields: object) -> rs.UpdateEventRequest:
    event = pb.Event(event_id=EVENT_ID)
    for name, value in fields.items():
        if isinstance(value, Timestamp):
            getattr(event, name).CopyFrom(value)
        else:
            setattr(event, name, value)
    return rs.UpdateEventRequest(event=event, update_mask=FieldMask(paths=paths))


def test_an_update_changes_what_its_mask_names() -> None:
    event_id, paths, changes = validate_update(update(["capacity", "name"], capacity=5, name="B"))
    assert (event_id, paths) == (EVENT_ID, ["capacity", "name"])
    assert (changes.capacity, changes.name, changes.per_user_limit) == (5, "B", None)
    assert changes.sale_start_at is KEEP


@pytest.mark.parametrize(
    ("paths", "fields", "field", "problem"),
    [
        ([], {}, "update_mask", "must name the fields to change"),
        (["available"], {}, "update_mask", "cannot change 'available'"),
        (["price"], {}, "update_mask", "cannot change 'price'"),
        (["event.name"], {}, "update_mask", "cannot change 'event.name'"),
        (["name"], {"name": " "}, "event.name", "is required"),
        (
            ["sale_end_time"],
            {"sale_end_time": Timestamp(seconds=2**63 - 1)},
            "event.sale_end_time",
            "is out of range",
        ),
    ],
)
def test_a_bad_update_is_named(
    paths: list[str], fields: dict[str, object], field: str, problem: str
) -> None:
    assert violations(update(paths, **fields))[field].startswith(problem)
