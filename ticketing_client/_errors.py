"""Refusals that are not outcomes, as one exception tree.

    ApiError                        any failed call; ``code``, ``reason``, ``metadata``
    ├── InvalidArgument             INVALID_ARGUMENT: ``field_violations`` name each bad field
    ├── Unauthenticated             UNAUTHENTICATED: TOKEN_MISSING, TOKEN_INVALID, TOKEN_EXPIRED
    ├── PermissionDenied            PERMISSION_DENIED: ROLE_REQUIRED
    ├── NotFound                    NOT_FOUND: EVENT_NOT_FOUND, RESERVATION_NOT_FOUND, ...
    ├── FailedPrecondition          FAILED_PRECONDITION
    │   ├── SaleNotOpen             SALE_NOT_STARTED, SALE_ENDED, SALE_CLOSED (nothing queued)
    │   └── IdempotencyKeyReused    the key stands for another request (quantity, seats)
    ├── ResourceExhausted           RESOURCE_EXHAUSTED: retriable when the server advised a delay
    ├── Unavailable                 UNAVAILABLE: retriable
    └── DeadlineExceeded            DEADLINE_EXCEEDED: retriable (only idempotent calls are retried)

Every error says whether a retry may help (``retriable``) and how long the
server asked to wait first (``retry_after``, from ``google.rpc.RetryInfo``),
so a retry decision reads attributes instead of parsing messages. The
``reason`` is ``google.rpc.ErrorInfo.reason``: programs branch on it and the
class, never on the message (see the README's "Errors").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request (``google.rpc.BadRequest.FieldViolation``)."""

    field: str
    description: str


class ApiError(Exception):
    """A call the service refused or could not answer."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        retry_after: timedelta | None = None,
        field_violations: tuple[FieldViolation, ...] = (),
    ) -> None:
        super().__init__(f"{code.name}: {message}" if message else code.name)
        self.code = code
        self.message = message
        self.reason = reason
        self.metadata: Mapping[str, str] = dict(metadata or {})
        self.retry_after = retry_after
        self.field_violations = field_violations
        # How many calls were made before giving up (set by the retrying caller).
        self.attempts = 1

    @property
    def retriable(self) -> bool:
        """Whether the same call may succeed later."""
        return False


class InvalidArgument(ApiError):
    """The request had bad fields; ``field_violations`` names every one."""


class Unauthenticated(ApiError):
    """No usable bearer token (missing, invalid or expired)."""


class PermissionDenied(ApiError):
    """The caller lacks a role the call needs."""


class NotFound(ApiError):
    """An unknown id, or one that belongs to someone else."""


class FailedPrecondition(ApiError):
    """The request is valid but the system's state refuses it."""


class SaleNotOpen(FailedPrecondition):
    """Reserve outside the event's sale: not started, ended, or closed.
    Nothing was queued; the same key may try again once the sale takes it."""


class IdempotencyKeyReused(FailedPrecondition):
    """The key already stands for a request with another quantity (or, of
    a seated event, other seats or another section)."""

    @property
    def reservation_id(self) -> str | None:
        """The reservation the key stands for."""
        return self.metadata.get("reservation_id")

    @property
    def first_quantity(self) -> int | None:
        """The quantity of the request the key stands for."""
        value = self.metadata.get("quantity")
        return int(value) if value is not None and value.isdigit() else None


class ResourceExhausted(ApiError):
    """A limit was reached (rate limit, open streams, message size)."""

    @property
    def retriable(self) -> bool:
        # A rate limit says when to come back; an oversized message never fits.
        return self.retry_after is not None


class Unavailable(ApiError):
    """The service, or one of its dependencies, did not answer in time."""

    @property
    def retriable(self) -> bool:
        return True


class DeadlineExceeded(ApiError):
    """The call ran out of time; it may or may not have taken effect."""

    @property
    def retriable(self) -> bool:
        return True


_BY_CODE: dict[grpc.StatusCode, type[ApiError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}

_BY_REASON: dict[str, type[ApiError]] = {
    "SALE_NOT_STARTED": SaleNotOpen,
    "SALE_ENDED": SaleNotOpen,
    "SALE_CLOSED": SaleNotOpen,
    "IDEMPOTENCY_KEY_REUSED": IdempotencyKeyReused,
}


def _rich_status(error: grpc.aio.AioRpcError) -> Any:
    """The ``google.rpc.Status`` in the call's trailers, if any and consistent."""
    try:
        # A failed call's error answers code(), details() and
        # trailing_metadata() as a finished grpc.Call does.
        return rpc_status.from_call(cast(grpc.Call, error))
    except ValueError:  # a proxy changed the code or message: the details do not apply
        return None


def error_from_rpc(error: grpc.aio.AioRpcError) -> ApiError:
    """The typed error for a failed call, with its ``google.rpc`` details read."""
    code = error.code()
    reason: str | None = None
    metadata: dict[str, str] = {}
    retry_after: timedelta | None = None
    violations: list[FieldViolation] = []
    status = _rich_status(error)
    for packed in status.details if status is not None else ():
        if packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            packed.Unpack(info)
            reason = str(info.reason)
            metadata.update({str(k): str(v) for k, v in info.metadata.items()})
        elif packed.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            packed.Unpack(retry)
            retry_after = retry.retry_delay.ToTimedelta()
        elif packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            packed.Unpack(bad)
            violations.extend(
                FieldViolation(str(v.field), str(v.description)) for v in bad.field_violations
            )
    kind = _BY_REASON.get(reason or "") if code == grpc.StatusCode.FAILED_PRECONDITION else None
    kind = kind or _BY_CODE.get(code, ApiError)
    return kind(
        code,
        error.details() or "",
        reason=reason,
        metadata=metadata,
        retry_after=retry_after,
        field_violations=tuple(violations),
    )
