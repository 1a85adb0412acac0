"""``CreateEventRequest`` / ``UpdateEventRequest`` validation: every problem
named by its field, every value in range before it is converted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from ticketing.v1 import reservation_pb2
from ticketing.v1 import reservation_service_pb2 as pb
from ticketing_common import fields
from ticketing_common.domain import Money, parse_uuid
from ticketing_common.errors import InvalidArgument, Violations

from .sale import KEEP, MAX_CAPACITY, Changes
from .seating_plan import Plan, validate_plan

MAX_NAME = 200
DEFAULT_QUEUE_TTL = timedelta(minutes=10)
MIN_QUEUE_TTL = timedelta(seconds=1)
MAX_QUEUE_TTL = timedelta(hours=24)
MIN_HOLD_TTL = timedelta(seconds=1)
MAX_HOLD_TTL = timedelta(hours=24)
MAX_PRICE_MINOR = 10**12
MAX_TIERS = 16
MAX_TIER = 64  # as long as a token's tier claim may be
UPDATABLE = frozenset(
    {"name", "capacity", "per_user_limit", "sale_start_time", "sale_end_time", "priority_tiers"}
)


@dataclass(frozen=True, slots=True)
class NewEvent:
    name: str
    capacity: int
    per_user_limit: int
    queue_ttl: timedelta
    price: Money | None
    hold_ttl: timedelta | None
    window: tuple[datetime | None, datetime | None]
    priority_tiers: tuple[str, ...]
    plan: Plan | None = None


def validate_create(request: pb.CreateEventRequest) -> NewEvent:
    """The event ``request`` asks for, or one InvalidArgument naming every bad field."""
    problems = Violations()
    name = problems.check(_name, "name", request.name)
    price = _price(request, problems)
    plan = None
    capacity = request.capacity
    if request.HasField("seating_plan"):
        plan = validate_plan(request.seating_plan, price, problems)
        if plan is not None and request.capacity not in (0, plan.places):
            problems.add(
                "capacity",
                f"must be 0 or the seating plan's places ({plan.places}), got {request.capacity}",
            )
        capacity = plan.places if plan is not None else MAX_CAPACITY
    elif not 1 <= request.capacity <= MAX_CAPACITY:
        problems.add("capacity", f"must be between 1 and {MAX_CAPACITY}, got {request.capacity}")
    if not 1 <= request.per_user_limit <= max(capacity, 1):
        problems.add(
            "per_user_limit", f"must be between 1 and capacity, got {request.per_user_limit}"
        )
    queue_ttl: timedelta | None = DEFAULT_QUEUE_TTL
    if request.HasField("queue_ttl"):
        queue_ttl = problems.check(
            fields.duration, "queue_ttl", request.queue_ttl, MIN_QUEUE_TTL, MAX_QUEUE_TTL
        )
    hold_ttl = None
    if request.HasField("hold_ttl"):
        hold_ttl = problems.check(
            fields.duration, "hold_ttl", request.hold_ttl, MIN_HOLD_TTL, MAX_HOLD_TTL
        )
        if hold_ttl is not None and price is None:
            problems.add("hold_ttl", "is for priced events: a free event has no holds")
    elif price is not None:
        problems.add("hold_ttl", "is required with a price (how long a seat waits for payment)")
    tiers = _tiers(request.priority_tiers, "priority_tiers", problems)
    start = problems.check(_moment, request, "sale_start_time", "")
    end = problems.check(_moment, request, "sale_end_time", "")
    if start is not None and end is not None and end <= start:
        problems.add("sale_end_time", "must be after sale_start_time")
    problems.raise_if_any()
    assert name is not None and queue_ttl is not None
    return NewEvent(
        name=name,
        capacity=capacity,
        per_user_limit=request.per_user_limit,
        queue_ttl=queue_ttl,
        price=price,
        hold_ttl=hold_ttl,
        window=(start, end),
        priority_tiers=tiers,
        plan=plan,
    )


def validate_update(request: pb.UpdateEventRequest) -> tuple[str, list[str], Changes]:
    """The event id, the fields the mask names and their new values; one
    InvalidArgument naming every bad field otherwise. (Capacity and limit are
    checked against the event's seats under its lock, by ``SaleControl``.)"""
    problems = Violations()
    event_id = problems.check(parse_uuid, "event.event_id", request.event.event_id)
    paths = problems.check(fields.mask, "update_mask", request.update_mask, UPDATABLE) or []
    given = request.event
    name = problems.check(_name, "event.name", given.name) if "name" in paths else None
    tiers = (
        _tiers(given.priority_tiers, "event.priority_tiers", problems)
        if "priority_tiers" in paths
        else None
    )
    start = end = None
    if "sale_start_time" in paths:
        start = problems.check(_moment, given, "sale_start_time", "event.")
    if "sale_end_time" in paths:
        end = problems.check(_moment, given, "sale_end_time", "event.")
    problems.raise_if_any()
    assert event_id is not None
    changes = Changes(
        name=name,
        capacity=given.capacity if "capacity" in paths else None,
        per_user_limit=given.per_user_limit if "per_user_limit" in paths else None,
        sale_start_at=start if "sale_start_time" in paths else KEEP,
        sale_end_at=end if "sale_end_time" in paths else KEEP,
        priority_tiers=tiers,
    )
    return event_id, paths, changes


def _name(field: str, value: str) -> str:
    name = value.strip()
    if not name:
        raise InvalidArgument(field, "is required")
    if len(name) > MAX_NAME:
        raise InvalidArgument(field, f"must be at most {MAX_NAME} characters")
    if not name.isprintable():
        raise InvalidArgument(field, "must not contain control characters")
    return name


def _tiers(given: Sequence[str], field: str, problems: Violations) -> tuple[str, ...]:
    """The priority tiers, checked: at most 16, each 1 to 64 printable characters."""
    tiers = tuple(dict.fromkeys(given))
    if len(tiers) > MAX_TIERS:
        problems.add(field, f"at most {MAX_TIERS} tiers, got {len(tiers)}")
        return ()
    for tier in tiers:
        if not 1 <= len(tier) <= MAX_TIER or not tier.isprintable():
            problems.add(
                field, f"a tier is 1 to {MAX_TIER} printable characters, got {fields.echo(tier)}"
            )
    return tiers


def _moment(
    message: reservation_pb2.Event | pb.CreateEventRequest,
    field: Literal["sale_start_time", "sale_end_time"],
    prefix: str,
) -> datetime | None:
    """A timestamp field of ``message``; None when unset."""
    if not message.HasField(field):
        return None
    return fields.moment(f"{prefix}{field}", getattr(message, field))


def _price(request: pb.CreateEventRequest, problems: Violations) -> Money | None:
    """The seat price, or None for a free event (no price, or amount 0)."""
    if not request.HasField("price") or request.price.amount_minor == 0:
        return None
    price = request.price
    if not 0 < price.amount_minor <= MAX_PRICE_MINOR:
        problems.add("price.amount_minor", f"must be between 1 and {MAX_PRICE_MINOR}")
    problems.check(fields.currency, "price.currency_code", price.currency_code)
    return Money(price.currency_code, price.amount_minor)
