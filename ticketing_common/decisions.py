"""The decision logic: pure functions, no I/O, tested without a network.

A batch of requests for one event is decided in queue order against the
event's seats as PostgreSQL holds them inside the batch's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .domain import RejectReason, Status


@dataclass(frozen=True, slots=True)
class Request:
    """One record of the requests topic, decoded."""

    reservation_id: str
    event_id: str
    user_id: str
    quantity: int
    idempotency_key: str
    accepted_at: datetime
    # Where the record sits in the requests topic; unknown (-1) until it is there.
    partition: int = -1
    offset: int = -1


@dataclass(frozen=True, slots=True)
class Seats:
    """What the decisions of one event depend on."""

    available: int
    per_user_limit: int
    queue_ttl: timedelta


@dataclass(frozen=True, slots=True)
class Decision:
    request: Request
    status: Status
    reject_reason: RejectReason | None = None


@dataclass(slots=True)
class BatchOutcome:
    decisions: list[Decision] = field(default_factory=list)
    # Requests whose id was already decided earlier in the same batch.
    duplicates: list[Request] = field(default_factory=list)
    seats_confirmed: int = 0


def decide(
    seats: Seats, user_seats: Mapping[str, int], requests: Sequence[Request], now: datetime
) -> BatchOutcome:
    """Decides ``requests`` in order, at ``now``.

    ``user_seats`` is what each user already holds or bought for this event
    (before the batch). A request that waited longer than the event's queue
    TTL is REJECTED with EXPIRED_IN_QUEUE and touches no seats. Otherwise it
    is CONFIRMED while seats last and the user stays within the per-user
    limit, else REJECTED with LIMIT_EXCEEDED (checked first: it would be
    refused even with seats left) or SOLD_OUT. Requests must not include ids
    already decided in earlier batches.
    """
    outcome = BatchOutcome()
    available = seats.available
    taken: dict[str, int] = dict(user_seats)
    seen: set[str] = set()
    for request in requests:
        if request.reservation_id in seen:
            outcome.duplicates.append(request)
            continue
        seen.add(request.reservation_id)
        already = taken.get(request.user_id, 0)
        if now - request.accepted_at > seats.queue_ttl:
            outcome.decisions.append(
                Decision(request, Status.REJECTED, RejectReason.EXPIRED_IN_QUEUE)
            )
        elif already + request.quantity > seats.per_user_limit:
            outcome.decisions.append(
                Decision(request, Status.REJECTED, RejectReason.LIMIT_EXCEEDED)
            )
        elif request.quantity > available:
            outcome.decisions.append(Decision(request, Status.REJECTED, RejectReason.SOLD_OUT))
        else:
            available -= request.quantity
            taken[request.user_id] = already + request.quantity
            outcome.seats_confirmed += request.quantity
            outcome.decisions.append(Decision(request, Status.CONFIRMED))
    return outcome


def reject_all(requests: Sequence[Request], reason: RejectReason) -> BatchOutcome:
    """Rejects every request once (e.g. the event does not exist)."""
    outcome = BatchOutcome()
    seen: set[str] = set()
    for request in requests:
        if request.reservation_id in seen:
            outcome.duplicates.append(request)
        else:
            seen.add(request.reservation_id)
            outcome.decisions.append(Decision(request, Status.REJECTED, reason))
    return outcome
