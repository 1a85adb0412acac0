"""What a reservation comes to, as typed values instead of protobuf enums.

    Accepted                    Reserve took the request: watch it
    QueueUpdate                 still waiting: the place in line and the estimated wait
    Outcome                     a decided state of the reservation
    ├── Held                    seats held until ``deadline``, for ``amount``: pay separately
    ├── Confirmed               seats sold
    ├── Rejected                refused, with a ``reason``
    │   ├── SoldOut
    │   ├── LimitExceeded
    │   ├── SaleClosed
    │   ├── ExpiredInQueue
    │   ├── SeatTaken           a chosen seat is someone else's (a seated event)
    │   └── NoSeatsTogether     seats are left, but no block of the quantity together
    ├── Expired                 a hold ran out before payment
    └── Cancelled               cancelled by the owner or an administrator

``Rejected`` itself stands for the reasons a client cannot act on
(``INVALID``, ``INTERNAL``, and any reason newer than this package).

Of a seated event, ``Held`` and ``Confirmed`` say which seats (``seats``,
each a ``Seat``); of general admission they have none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import TypeAlias, TypedDict

from ticketing.v1 import gateway_service_pb2 as gw
from ticketing.v1 import notifier_service_pb2 as ns
from ticketing.v1 import reservation_pb2 as pb


class RejectReason(Enum):
    """Why a reservation was refused (``ticketing.v1.RejectReason``)."""

    UNSPECIFIED = pb.REJECT_REASON_UNSPECIFIED
    SOLD_OUT = pb.REJECT_REASON_SOLD_OUT
    LIMIT_EXCEEDED = pb.REJECT_REASON_LIMIT_EXCEEDED
    SALE_CLOSED = pb.REJECT_REASON_SALE_CLOSED
    EXPIRED_IN_QUEUE = pb.REJECT_REASON_EXPIRED_IN_QUEUE
    INVALID = pb.REJECT_REASON_INVALID
    INTERNAL = pb.REJECT_REASON_INTERNAL
    SEAT_TAKEN = pb.REJECT_REASON_SEAT_TAKEN
    NO_SEATS_TOGETHER = pb.REJECT_REASON_NO_SEATS_TOGETHER


class PaymentStatus(Enum):
    """Where the reservation's latest payment attempt stands
    (``ticketing.v1.PaymentStatus``); ``NONE`` before any."""

    NONE = pb.PAYMENT_STATUS_UNSPECIFIED
    PENDING = pb.PAYMENT_STATUS_PENDING
    AUTHORIZED = pb.PAYMENT_STATUS_AUTHORIZED
    CAPTURING = pb.PAYMENT_STATUS_CAPTURING
    CAPTURED = pb.PAYMENT_STATUS_CAPTURED
    DECLINED = pb.PAYMENT_STATUS_DECLINED
    VOIDING = pb.PAYMENT_STATUS_VOIDING
    VOIDED = pb.PAYMENT_STATUS_VOIDED
    REFUNDING = pb.PAYMENT_STATUS_REFUNDING
    REFUNDED = pb.PAYMENT_STATUS_REFUNDED


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in a currency's minor units (cents for EUR)."""

    currency_code: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Seat:
    """One seat of a seated event given to a reservation; a place of a
    standing section has only its ``section_id``."""

    section_id: str
    row_id: str = ""
    seat_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    """Reserve's answer for a request it queued: the outcome comes on the watch."""

    reservation_id: str
    event_id: str
    quantity: int
    # Send it again to retry the same request (it is the same reservation).
    idempotency_key: str
    # The gateway's figure for the place in line, an upper bound; None when
    # it could not number the request.
    position: int | None


@dataclass(frozen=True, slots=True)
class QueueUpdate:
    """A queued reservation's place in line: how many go before it, and the
    estimated wait (None while there is no basis for one, e.g. a paused
    sale). ``position`` is None when the service cannot place it."""

    position: int | None
    estimated_wait: timedelta | None
    reservation_id: str = ""
    # The reservation's version; 0 for the figure in Reserve's answer.
    version: int = 0
    # The message it was read from (None for Reserve's figure), for fields
    # this type does not name.
    reservation: pb.Reservation | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """A decided state of one reservation."""

    reservation_id: str
    event_id: str
    quantity: int
    # Rises with every state change; 0 for the gateway's sold-out answer,
    # which stored nothing.
    version: int
    # Nothing about the reservation will change by itself any more.
    settled: bool
    # What the seats cost; None for a free event.
    amount: Money | None = None
    payment_status: PaymentStatus = PaymentStatus.NONE
    # The message it was read from, for fields this type does not name.
    reservation: pb.Reservation | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Held(Outcome):
    """Seats held for payment until ``deadline`` (UTC). Pay with
    ``PaymentService.Pay``; after the deadline the hold is ``Expired``."""

    deadline: datetime
    # Of a seated event, the seats held, in the order the service gave them.
    seats: tuple[Seat, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Confirmed(Outcome):
    """The seats are sold to the caller (paid, for a priced event)."""

    # Of a seated event, the seats sold, in the order the service gave them.
    seats: tuple[Seat, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected(Outcome):
    """The request was refused; nothing was taken."""

    reason: RejectReason = RejectReason.UNSPECIFIED


@dataclass(frozen=True, slots=True, kw_only=True)
class SoldOut(Rejected):
    """Not enough seats left for the quantity."""

    reason: RejectReason = RejectReason.SOLD_OUT


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitExceeded(Rejected):
    """The quantity would take the caller above the event's per-user limit."""

    reason: RejectReason = RejectReason.LIMIT_EXCEEDED


@dataclass(frozen=True, slots=True, kw_only=True)
class SaleClosed(Rejected):
    """The sale was closed, or the request came outside its window."""

    reason: RejectReason = RejectReason.SALE_CLOSED


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpiredInQueue(Rejected):
    """The request waited longer than the event's queue TTL."""

    reason: RejectReason = RejectReason.EXPIRED_IN_QUEUE


@dataclass(frozen=True, slots=True, kw_only=True)
class SeatTaken(Rejected):
    """A chosen seat was held or sold to someone else: choose others."""

    reason: RejectReason = RejectReason.SEAT_TAKEN


@dataclass(frozen=True, slots=True, kw_only=True)
class NoSeatsTogether(Rejected):
    """Seats are left, but no block of the quantity together can be had
    (fewer seats, or another section, may still be)."""

    reason: RejectReason = RejectReason.NO_SEATS_TOGETHER


@dataclass(frozen=True, slots=True, kw_only=True)
class Expired(Outcome):
    """A hold ran out before payment; its seats went back."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancelled(Outcome):
    """Cancelled by the owner or an administrator; any payment refunded."""


# What a watch yields.
Update: TypeAlias = QueueUpdate | Outcome

_REJECTIONS: dict[RejectReason, type[Rejected]] = {
    RejectReason.SOLD_OUT: SoldOut,
    RejectReason.LIMIT_EXCEEDED: LimitExceeded,
    RejectReason.SALE_CLOSED: SaleClosed,
    RejectReason.EXPIRED_IN_QUEUE: ExpiredInQueue,
    RejectReason.SEAT_TAKEN: SeatTaken,
    RejectReason.NO_SEATS_TOGETHER: NoSeatsTogether,
}


class _Fields(TypedDict):
    """The fields every outcome has."""

    reservation_id: str
    event_id: str
    quantity: int
    version: int
    settled: bool
    amount: Money | None
    payment_status: PaymentStatus
    reservation: pb.Reservation | None


def reject_reason(value: int) -> RejectReason:
    try:
        return RejectReason(value)
    except ValueError:  # a reason newer than this package
        return RejectReason.UNSPECIFIED


def payment_status(value: int) -> PaymentStatus:
    try:
        return PaymentStatus(value)
    except ValueError:
        return PaymentStatus.NONE


def rejection(reason: RejectReason, fields: _Fields) -> Rejected:
    """The ``Rejected`` subclass for ``reason`` (``Rejected`` itself for the rest)."""
    kind = _REJECTIONS.get(reason)
    return Rejected(reason=reason, **fields) if kind is None else kind(**fields)


def outcome_of(reservation: pb.Reservation) -> Outcome | None:
    """The typed state of ``reservation``; None while it is queued (or the
    status is one this package does not know)."""
    fields = _Fields(
        reservation_id=reservation.reservation_id,
        event_id=reservation.event_id,
        quantity=reservation.quantity,
        version=reservation.version,
        settled=reservation.settled,
        amount=(
            Money(reservation.amount.currency_code, reservation.amount.amount_minor)
            if reservation.HasField("amount")
            else None
        ),
        payment_status=payment_status(reservation.payment_status),
        reservation=reservation,
    )
    seats = tuple(Seat(s.section_id, s.row_id, s.seat_id) for s in reservation.seats)
    match reservation.status:
        case pb.RESERVATION_STATUS_HELD:
            deadline = reservation.hold_expire_time.ToDatetime(tzinfo=UTC)
            return Held(deadline=deadline, seats=seats, **fields)
        case pb.RESERVATION_STATUS_CONFIRMED:
            return Confirmed(seats=seats, **fields)
        case pb.RESERVATION_STATUS_REJECTED:
            return rejection(reject_reason(reservation.reject_reason), fields)
        case pb.RESERVATION_STATUS_EXPIRED:
            return Expired(**fields)
        case pb.RESERVATION_STATUS_CANCELLED:
            return Cancelled(**fields)
        case _:
            return None


def queue_update_of(position: pb.QueuePosition | None, reservation: pb.Reservation) -> QueueUpdate:
    rid, version = reservation.reservation_id, reservation.version
    if position is None:
        return QueueUpdate(None, None, rid, version, reservation)
    wait = position.estimated_wait.ToTimedelta() if position.HasField("estimated_wait") else None
    return QueueUpdate(position.position, wait, rid, version, reservation)


def update_of(message: ns.WatchReservationResponse) -> Update | None:
    """What one WatchReservation message says: the place in line while the
    reservation is queued, else its decided state."""
    reservation = message.reservation
    if reservation.status == pb.RESERVATION_STATUS_QUEUED:
        position = message.queue_position if message.HasField("queue_position") else None
        return queue_update_of(position, reservation)
    return outcome_of(reservation)


def requested(request: gw.ReserveRequest) -> int:
    """The seats a request asks for: chosen seats may come with quantity 0."""
    return request.quantity or len(request.seat_ids)


def answer_of(request: gw.ReserveRequest, response: gw.ReserveResponse) -> Accepted | Rejected:
    """Reserve's answer: queued, or refused at once (the gateway's sold-out
    fast path: nothing was queued, there is nothing to watch)."""
    if response.status == pb.RESERVATION_STATUS_REJECTED:
        fields = _Fields(
            reservation_id=response.reservation_id,
            event_id=request.event_id,
            quantity=requested(request),
            version=0,
            settled=True,
            amount=None,
            payment_status=PaymentStatus.NONE,
            reservation=None,
        )
        return rejection(reject_reason(response.reject_reason), fields)
    return Accepted(
        reservation_id=response.reservation_id,
        event_id=request.event_id,
        quantity=requested(request),
        idempotency_key=request.idempotency_key,
        position=(
            response.queue_position.position if response.HasField("queue_position") else None
        ),
    )
