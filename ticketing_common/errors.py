"""The one error hierarchy, and what each error tells a client.

    TicketingError                  INTERNAL unless stated; retriable = False
    ├── InvalidArgument             INVALID_ARGUMENT, BadRequest with every violation
    ├── Unauthenticated             UNAUTHENTICATED: no valid bearer token
    ├── PermissionDenied            PERMISSION_DENIED: a role is missing
    ├── NotFound                    NOT_FOUND
    ├── FailedPrecondition          FAILED_PRECONDITION
    │   └── IdempotencyKeyReused    the key was used before with other parameters
    ├── Unimplemented               UNIMPLEMENTED (a feature switched off)
    ├── ResourceExhausted           RESOURCE_EXHAUSTED: a rate limit, RetryInfo
    ├── DeadlineExceeded            DEADLINE_EXCEEDED: the caller's deadline passed first
    ├── Cancelled                   CANCELLED: the caller went away first
    └── Unavailable                 UNAVAILABLE, retriable, RetryInfo when a delay is known
        ├── BrokerUnavailable       the broker did not acknowledge in time
        └── DependencyUnavailable   PostgreSQL or Redis did not answer
    StaleFencingToken               a lock holder lost its lock; never reaches a client,
                                    retriable (the batch is redelivered and re-decided)

Every error names a stable machine-readable ``reason`` (sent as
``google.rpc.ErrorInfo``; the README lists them) besides its human-readable
message. The server interceptor (``ticketing_common.status``) turns these into
``google.rpc.Status`` details; anything else is either a transient dependency
failure (``failures.is_transient``: UNAVAILABLE) or a bug (INTERNAL, logged).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import grpc

T = TypeVar("T")

# ErrorInfo.domain: the logical owner of the reasons below.
DOMAIN = "ticketing.v1"


class Reason(StrEnum):
    """Stable values of ``ErrorInfo.reason``: clients may branch on them."""

    INVALID_REQUEST = "INVALID_REQUEST"
    EVENT_NOT_FOUND = "EVENT_NOT_FOUND"
    RESERVATION_NOT_FOUND = "RESERVATION_NOT_FOUND"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    FEATURE_DISABLED = "FEATURE_DISABLED"
    BROKER_UNAVAILABLE = "BROKER_UNAVAILABLE"
    BROKER_BREAKER_OPEN = "BROKER_BREAKER_OPEN"
    DEPENDENCY_UNAVAILABLE = "DEPENDENCY_UNAVAILABLE"
    EVENT_BUSY = "EVENT_BUSY"
    NOTIFIER_CATCHING_UP = "NOTIFIER_CATCHING_UP"
    TOKEN_MISSING = "TOKEN_MISSING"  # noqa: S105 - a reason, not a secret
    TOKEN_INVALID = "TOKEN_INVALID"  # noqa: S105
    TOKEN_EXPIRED = "TOKEN_EXPIRED"  # noqa: S105
    ROLE_REQUIRED = "ROLE_REQUIRED"
    TIER_NOT_OFFERED = "TIER_NOT_OFFERED"
    RATE_LIMITED = "RATE_LIMITED"
    PAYMENT_ATTEMPTS_EXHAUSTED = "PAYMENT_ATTEMPTS_EXHAUSTED"
    CALLER_GONE = "CALLER_GONE"
    TOO_MANY_STREAMS = "TOO_MANY_STREAMS"
    RESERVATION_NOT_HELD = "RESERVATION_NOT_HELD"
    RESERVATION_NOT_CANCELLABLE = "RESERVATION_NOT_CANCELLABLE"
    PAYMENT_IN_PROGRESS = "PAYMENT_IN_PROGRESS"
    PAYMENT_NOT_FOUND = "PAYMENT_NOT_FOUND"
    AMOUNT_NOT_PAYABLE = "AMOUNT_NOT_PAYABLE"
    SALE_CLOSED = "SALE_CLOSED"
    SALE_NOT_STARTED = "SALE_NOT_STARTED"
    SALE_ENDED = "SALE_ENDED"
    EVENT_SEATED = "EVENT_SEATED"
    EVENT_NOT_SEATED = "EVENT_NOT_SEATED"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request (``google.rpc.BadRequest.FieldViolation``)."""

    field: str
    description: str

    def __str__(self) -> str:
        return f"{self.field}: {self.description}"


class TicketingError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    retriable: bool = False
    reason: Reason = Reason.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        reason: Reason | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        # ErrorInfo.metadata: the values a client needs to act on the reason.
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgument(TicketingError):
    """Every problem of a request at once, each named by its field."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = Reason.INVALID_REQUEST

    def __init__(self, field: str, problem: str) -> None:
        self.violations: tuple[FieldViolation, ...] = (FieldViolation(field, problem),)
        super().__init__(str(self.violations[0]))

    @classmethod
    def of(cls, violations: Sequence[FieldViolation]) -> InvalidArgument:
        if not violations:
            raise ValueError("an InvalidArgument needs at least one violation")
        error = cls(violations[0].field, violations[0].description)
        error.violations = tuple(violations)
        error.message = "; ".join(str(v) for v in violations)
        error.args = (error.message,)
        return error

    @property
    def field(self) -> str:
        return self.violations[0].field


class Violations:
    """Collects a request's field problems, then raises them together.

    ``check`` runs one field's parser and records its InvalidArgument instead
    of stopping, so a client fixing its request sees every problem at once.
    """

    def __init__(self) -> None:
        self._found: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self._found.append(FieldViolation(field, description))

    def check(self, parse: Callable[..., T], *args: Any) -> T | None:
        try:
            return parse(*args)
        except InvalidArgument as exc:
            self._found.extend(exc.violations)
            return None

    def raise_if_any(self) -> None:
        if self._found:
            raise InvalidArgument.of(self._found)


class Unauthenticated(TicketingError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = Reason.TOKEN_MISSING


class PermissionDenied(TicketingError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = Reason.ROLE_REQUIRED


class NotFound(TicketingError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(TicketingError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class IdempotencyKeyReused(FailedPrecondition):
    reason = Reason.IDEMPOTENCY_KEY_REUSED


class Unimplemented(TicketingError):
    code = grpc.StatusCode.UNIMPLEMENTED
    reason = Reason.FEATURE_DISABLED


class Unavailable(TicketingError):
    code = grpc.StatusCode.UNAVAILABLE
    retriable = True
    reason = Reason.DEPENDENCY_UNAVAILABLE

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        reason: Reason | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        # Sent to the client as google.rpc.RetryInfo.retry_delay.
        self.retry_after_s = retry_after_s


class ResourceExhausted(Unavailable):
    """A limit the caller hit: not a failure of ours, but a retry after the
    advised delay may pass (so it carries ``retry_after_s`` too)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    retriable = False
    reason = Reason.RATE_LIMITED


class DeadlineExceeded(TicketingError):
    """The caller's deadline passed (or left too little to answer in) before
    the work was done; nothing was done."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = Reason.CALLER_GONE


class Cancelled(TicketingError):
    """The caller cancelled the call before the work was done; nothing was done."""

    code = grpc.StatusCode.CANCELLED
    reason = Reason.CALLER_GONE


class BrokerUnavailable(Unavailable):
    reason = Reason.BROKER_UNAVAILABLE


class DependencyUnavailable(Unavailable):
    reason = Reason.DEPENDENCY_UNAVAILABLE


class StaleFencingToken(Exception):
    """PostgreSQL refused a write: another holder has taken the event's lock since."""

    retriable = True

    def __init__(self, event_id: str, token: int, stored: int) -> None:
        super().__init__(f"fencing token {token} for event {event_id} is older than {stored}")
        self.event_id = event_id
        self.token = token
        self.stored = stored
