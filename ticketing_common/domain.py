"""Domain types shared by the services, and their protobuf mapping.

Statuses and reasons are stored in PostgreSQL by their short names
(``CONFIRMED``, ``SOLD_OUT``) and travel as the prefixed protobuf enums.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import asyncpg
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from ticketing.v1 import reservation_pb2 as pb

from .errors import InvalidArgument
from .seating import SeatRef


class Status(StrEnum):
    QUEUED = "QUEUED"
    HELD = "HELD"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self not in (Status.QUEUED, Status.HELD)

    def to_proto(self) -> pb.ReservationStatus.ValueType:
        return pb.ReservationStatus.Value(f"RESERVATION_STATUS_{self.value}")

    @classmethod
    def from_proto(cls, value: pb.ReservationStatus.ValueType) -> Status:
        return cls(pb.ReservationStatus.Name(value).removeprefix("RESERVATION_STATUS_"))


class SaleState(StrEnum):
    OPEN = "OPEN"
    PAUSED = "PAUSED"
    CLOSED = "CLOSED"

    def to_proto(self) -> pb.SaleState.ValueType:
        return pb.SaleState.Value(f"SALE_STATE_{self.value}")


class RejectReason(StrEnum):
    SOLD_OUT = "SOLD_OUT"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    SALE_CLOSED = "SALE_CLOSED"
    EXPIRED_IN_QUEUE = "EXPIRED_IN_QUEUE"
    INVALID = "INVALID"
    INTERNAL = "INTERNAL"
    SEAT_TAKEN = "SEAT_TAKEN"
    NO_SEATS_TOGETHER = "NO_SEATS_TOGETHER"

    def to_proto(self) -> pb.RejectReason.ValueType:
        return pb.RejectReason.Value(f"REJECT_REASON_{self.value}")


class PaymentStatus(StrEnum):
    """Where a payment attempt stands; the saga's steps, in order, are
    PENDING -> AUTHORIZED -> CAPTURING -> CAPTURED, with DECLINED, VOIDING ->
    VOIDED and REFUNDING -> REFUNDED as the other ways out."""

    PENDING = "PENDING"
    AUTHORIZED = "AUTHORIZED"
    CAPTURING = "CAPTURING"
    CAPTURED = "CAPTURED"
    DECLINED = "DECLINED"
    VOIDING = "VOIDING"
    VOIDED = "VOIDED"
    REFUNDING = "REFUNDING"
    REFUNDED = "REFUNDED"

    @property
    def open(self) -> bool:
        """A step of the saga is still to come."""
        return self in OPEN_PAYMENTS

    def to_proto(self) -> pb.PaymentStatus.ValueType:
        return pb.PaymentStatus.Value(f"PAYMENT_STATUS_{self.value}")


OPEN_PAYMENTS = frozenset(
    {
        PaymentStatus.PENDING,
        PaymentStatus.AUTHORIZED,
        PaymentStatus.CAPTURING,
        PaymentStatus.VOIDING,
        PaymentStatus.REFUNDING,
    }
)


FINAL_PROTO_STATUSES = frozenset(s.to_proto() for s in Status if s.terminal)
OPEN_PROTO_PAYMENTS = frozenset(p.to_proto() for p in OPEN_PAYMENTS)


def is_settled(message: pb.Reservation) -> bool:
    """``Reservation.settled`` worked out from the status and the payment,
    for records written before the field existed (a rollout, a replay)."""
    return (
        message.status in FINAL_PROTO_STATUSES and message.payment_status not in OPEN_PROTO_PAYMENTS
    )


@dataclass(frozen=True, slots=True)
class Money:
    currency: str
    amount_minor: int

    def to_proto(self) -> pb.Money:
        return pb.Money(currency_code=self.currency, amount_minor=self.amount_minor)


def reservation_id_for(secret: bytes, user_id: str, idempotency_key: str, event_id: str) -> str:
    """Stable id for a (user, idempotency key) on one event: a retried call
    gets the same id, and a duplicate queue record is recognised downstream by
    its primary key. The event is part of it so a key a client reuses for
    another event names another request, not a clash of two.

    An HMAC with a server-side secret: nobody without the secret can compute
    another user's id from a guessed key, or squat it. The id is the first
    128 bits of HMAC-SHA256, with the UUID variant and version 8 (custom)
    bits set."""
    message = f"{user_id}\x00{idempotency_key}\x00{event_id}".encode()
    digest = bytearray(hmac.new(secret, message, hashlib.sha256).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x80  # version 8
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    return str(uuid.UUID(bytes=bytes(digest)))


def timestamp(moment: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(moment.astimezone(UTC))
    return ts


def from_timestamp(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


# Versions of a reservation's first two states.
QUEUED_VERSION = 1
DECIDED_VERSION = 2


@dataclass(frozen=True, slots=True)
class Reservation:
    reservation_id: str
    event_id: str
    user_id: str
    quantity: int
    status: Status
    reject_reason: RejectReason | None
    accepted_at: datetime
    decided_at: datetime | None
    # Raised by every state change: QUEUED is 1, the decision 2, and so on.
    version: int = QUEUED_VERSION
    # When the reservation last changed state; None means at acceptance.
    updated_at: datetime | None = None
    hold_expires_at: datetime | None = None
    # What the seats cost (0 and "" for a free event).
    amount_minor: int = 0
    currency: str = ""
    payment_id: str | None = None
    payment_status: PaymentStatus | None = None
    # Decided in the event's priority lane.
    priority: bool = False
    # A seated event's seats given to it.
    seats: tuple[SeatRef, ...] = ()

    @property
    def settled(self) -> bool:
        """Nothing will change by itself any more: a final status and no
        payment step to come."""
        return self.status.terminal and not (
            self.payment_status is not None and self.payment_status.open
        )

    @classmethod
    def queued(
        cls, reservation_id: str, event_id: str, user_id: str, quantity: int, accepted_at: datetime
    ) -> Reservation:
        """A request the broker holds and nobody has decided yet."""
        return cls(
            reservation_id, event_id, user_id, quantity, Status.QUEUED, None, accepted_at, None
        )

    def to_proto(self) -> pb.Reservation:
        message = pb.Reservation(
            reservation_id=self.reservation_id,
            event_id=self.event_id,
            user_id=self.user_id,
            quantity=self.quantity,
            status=self.status.to_proto(),
            accept_time=timestamp(self.accepted_at),
            update_time=timestamp(self.updated_at or self.decided_at or self.accepted_at),
            version=self.version,
            settled=self.settled,
            priority=self.priority,
        )
        if self.reject_reason is not None:
            message.reject_reason = self.reject_reason.to_proto()
        if self.decided_at is not None:
            message.decide_time.CopyFrom(timestamp(self.decided_at))
        if self.hold_expires_at is not None and self.status is Status.HELD:
            message.hold_expire_time.CopyFrom(timestamp(self.hold_expires_at))
        if self.amount_minor:
            message.amount.CopyFrom(Money(self.currency, self.amount_minor).to_proto())
        if self.payment_id is not None:
            message.payment_id = self.payment_id
        if self.payment_status is not None:
            message.payment_status = self.payment_status.to_proto()
        for seat in self.seats:
            standing = not seat.row_id  # a place of a standing section has no id of its own
            message.seats.add(
                section_id=seat.section_id,
                row_id=seat.row_id,
                seat_id="" if standing else seat.seat_id,
            )
        return message

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Reservation:
        return cls(
            reservation_id=str(row["reservation_id"]),
            event_id=str(row["event_id"]),
            user_id=row["user_id"],
            quantity=row["quantity"],
            status=Status(row["status"]),
            reject_reason=RejectReason(row["reject_reason"]) if row["reject_reason"] else None,
            accepted_at=row["accepted_at"],
            # A waiting request's row is not a decision yet.
            decided_at=None if row["status"] == Status.QUEUED else row["decided_at"],
            version=row["version"],
            updated_at=row["updated_at"],
            hold_expires_at=row["hold_expires_at"],
            amount_minor=row["amount_minor"],
            currency=row["currency"],
            payment_id=str(row["payment_id"]) if row["payment_id"] else None,
            payment_status=PaymentStatus(row["payment_status"]) if row["payment_status"] else None,
            priority=row["lane"] == 1,
            seats=tuple(SeatRef(*seat) for seat in json.loads(row["seats"]))
            if row["seats"]
            else (),
        )


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    name: str
    capacity: int
    available: int
    held: int
    confirmed: int
    per_user_limit: int
    created_at: datetime
    queue_ttl: timedelta
    price_minor: int = 0
    currency: str = ""
    # None: no holds, winners are CONFIRMED at once.
    hold_ttl: timedelta | None = None
    waitlisted: int = 0
    sale_state: SaleState = SaleState.OPEN
    sale_start_at: datetime | None = None
    sale_end_at: datetime | None = None
    priority_tiers: tuple[str, ...] = ()
    seated: bool = False

    def to_proto(self) -> pb.Event:
        queue_ttl = Duration()
        queue_ttl.FromTimedelta(self.queue_ttl)
        message = pb.Event(
            event_id=self.event_id,
            name=self.name,
            capacity=self.capacity,
            available=self.available,
            held=self.held,
            confirmed=self.confirmed,
            per_user_limit=self.per_user_limit,
            create_time=timestamp(self.created_at),
            queue_ttl=queue_ttl,
            waitlisted=self.waitlisted,
            sale_state=self.sale_state.to_proto(),
            priority_tiers=self.priority_tiers,
            seated=self.seated,
        )
        if self.sale_start_at is not None:
            message.sale_start_time.CopyFrom(timestamp(self.sale_start_at))
        if self.sale_end_at is not None:
            message.sale_end_time.CopyFrom(timestamp(self.sale_end_at))
        if self.price_minor:
            message.price.CopyFrom(Money(self.currency, self.price_minor).to_proto())
        if self.hold_ttl is not None:
            message.hold_ttl.FromTimedelta(self.hold_ttl)
        return message

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Event:
        return cls(
            event_id=str(row["event_id"]),
            name=row["name"],
            capacity=row["capacity"],
            available=row["available"],
            held=row["held"],
            confirmed=row["confirmed"],
            per_user_limit=row["per_user_limit"],
            created_at=row["created_at"],
            queue_ttl=timedelta(milliseconds=row["queue_ttl_ms"]),
            price_minor=row["price_minor"],
            currency=row["currency"],
            hold_ttl=(
                timedelta(milliseconds=row["hold_ttl_ms"])
                if row["hold_ttl_ms"] is not None
                else None
            ),
            waitlisted=row["waitlisted"],
            sale_state=SaleState(row["sale_state"]),
            sale_start_at=row["sale_start_at"],
            sale_end_at=row["sale_end_at"],
            priority_tiers=tuple(row["priority_tiers"]),
            seated=row["seated"],
        )


UUID_TEXT = 36


def parse_uuid(field: str, value: str) -> str:
    """Canonical form of a UUID field, or InvalidArgument naming the field."""
    if not value:
        raise InvalidArgument(field, "is required")
    # uuid.UUID also takes braces, a urn: prefix and any digit Unicode knows
    # (int() does): an id is its 36 ASCII characters, in either case.
    if len(value) == UUID_TEXT and value.isascii():
        try:
            canonical = str(uuid.UUID(value))
        except ValueError:
            canonical = ""
        if canonical == value.lower():
            return canonical
    raise InvalidArgument(field, f"must be a UUID, got {value[:64]!r}")
