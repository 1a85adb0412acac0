"""A typed asyncio client for the ticketing API.

    async with TicketingClient("127.0.0.1:50051", token=token) as client:
        outcome = await client.reserve_and_wait(event_id, 2)
        match outcome:
            case Confirmed():
                ...
            case Held(deadline=deadline, amount=amount):
                ...  # pay before the deadline
            case SoldOut():
                ...

Of a seated event, ask with ``section_id=``, ``seat_ids=`` or
``accessible=True`` too; ``Held`` and ``Confirmed`` then carry ``seats``.

Reserve is retried with the same idempotency key (the same request, never
seats taken twice), the watch reconnects and tells each state once, and
refusals that are not outcomes raise an ``ApiError`` subclass. Many
customers can share one channel: ``TicketingClient.over(channel, token=...)``.
"""

from ._channel import SERVICE_CONFIG, TokenSource
from ._client import TicketingClient
from ._errors import (
    ApiError,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    IdempotencyKeyReused,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SaleNotOpen,
    Unauthenticated,
    Unavailable,
)
from ._outcomes import (
    Accepted,
    Cancelled,
    Confirmed,
    Expired,
    ExpiredInQueue,
    Held,
    LimitExceeded,
    Money,
    NoSeatsTogether,
    Outcome,
    PaymentStatus,
    QueueUpdate,
    Rejected,
    RejectReason,
    SaleClosed,
    Seat,
    SeatTaken,
    SoldOut,
    Update,
)
from ._retry import PROXY_RESETS, Attempt, AttemptHook, Backoff, RetryPolicy
from ._watch import Unsettled, VersionFilter, WatchPolicy

__all__ = [
    "PROXY_RESETS",
    "SERVICE_CONFIG",
    "Accepted",
    "ApiError",
    "Attempt",
    "AttemptHook",
    "Backoff",
    "Cancelled",
    "Confirmed",
    "DeadlineExceeded",
    "Expired",
    "ExpiredInQueue",
    "FailedPrecondition",
    "FieldViolation",
    "Held",
    "IdempotencyKeyReused",
    "InvalidArgument",
    "LimitExceeded",
    "Money",
    "NoSeatsTogether",
    "NotFound",
    "Outcome",
    "PaymentStatus",
    "PermissionDenied",
    "QueueUpdate",
    "RejectReason",
    "Rejected",
    "ResourceExhausted",
    "RetryPolicy",
    "SaleClosed",
    "SaleNotOpen",
    "Seat",
    "SeatTaken",
    "SoldOut",
    "TicketingClient",
    "TokenSource",
    "Unauthenticated",
    "Unavailable",
    "Unsettled",
    "Update",
    "VersionFilter",
    "WatchPolicy",
]
