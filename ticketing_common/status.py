"""Errors to gRPC status, in one interceptor every server installs.

A status carries ``google.rpc.Status`` details in the ``grpc-status-details-bin``
trailer (grpcio-status), the way Google APIs do:

* ``ErrorInfo`` on every error: a stable ``reason`` (``errors.Reason``), the
  domain, and the values a client needs (e.g. the event id);
* ``BadRequest`` on INVALID_ARGUMENT, listing every field violation;
* ``RetryInfo`` on UNAVAILABLE whenever a retry is advised, with the delay.

Expected errors (``TicketingError``) keep their message. A transient dependency
failure that reached the boundary unconverted (a PostgreSQL or Redis outage,
classified by ``failures.is_transient``) becomes UNAVAILABLE. Anything else is
a bug: logged with its traceback, INTERNAL to the client with nothing but
the ``INTERNAL`` reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import grpc
import structlog
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from .errors import (
    DOMAIN,
    DependencyUnavailable,
    FieldViolation,
    InvalidArgument,
    TicketingError,
    Unavailable,
)
from .failures import is_transient
from .interceptors import Deserializer, Rewrapped, ServerInterceptor, rewrap

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=Message)

# The trailer grpcio-status puts the google.rpc.Status in.
DETAILS_KEY = "grpc-status-details-bin"

# Advised to clients when a dependency failed and nothing better is known.
DEPENDENCY_RETRY_AFTER_S = 1.0


# A status travels in the call's trailers, and proxies bound their size: a
# trailers-only answer must fit nginx's grpc_buffer_size (one 4 KiB page by
# default), or the client gets the proxy's 502 instead of our error. So what
# we send is cut to fit: descriptions and metadata values to a few hundred
# bytes, and as many violations as fit in STATUS_BUDGET bytes (the message
# percent-encoded plus the details base64-encoded, as they go on the wire).
STATUS_BUDGET = 2_800
MAX_MESSAGE_BYTES = 400
MAX_FIELD_BYTES = 100
MAX_DESCRIPTION_BYTES = 200
MAX_METADATA_BYTES = 128


def _cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` bytes of UTF-8, cut at a character."""
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode("utf-8", "ignore") + "..."


def _violations(error: TicketingError) -> list[FieldViolation]:
    if not isinstance(error, InvalidArgument):
        return []
    return [
        FieldViolation(_cut(v.field, MAX_FIELD_BYTES), _cut(v.description, MAX_DESCRIPTION_BYTES))
        for v in error.violations
    ]


def details(
    error: TicketingError, violations: Sequence[FieldViolation] | None = None
) -> list[Message]:
    """The ``google.rpc`` detail messages ``error`` carries (with
    ``violations`` in its BadRequest, when given: the ones that fit)."""
    metadata = {
        _cut(k, MAX_METADATA_BYTES): _cut(v, MAX_METADATA_BYTES) for k, v in error.metadata.items()
    }
    found: list[Message] = [
        error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=metadata)
    ]
    if isinstance(error, InvalidArgument):
        found.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in (_violations(error) if violations is None else violations)
                ]
            )
        )
    if isinstance(error, Unavailable) and error.retry_after_s is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(max(1, round(error.retry_after_s * 1000)))
        found.append(error_details_pb2.RetryInfo(retry_delay=delay))
    return found


def _rich(error: TicketingError, violations: Sequence[FieldViolation]) -> status_pb2.Status:
    packed = []
    for detail in details(error, violations):
        wrapper = any_pb2.Any()
        wrapper.Pack(detail)
        packed.append(wrapper)
    if isinstance(error, InvalidArgument):
        left_out = len(error.violations) - len(violations)
        rest = f"; and {left_out} more" if left_out else ""
        message = _cut("; ".join(str(v) for v in violations), MAX_MESSAGE_BYTES - len(rest)) + rest
    else:
        message = _cut(error.message, MAX_MESSAGE_BYTES)
    return status_pb2.Status(code=error.code.value[0], message=message, details=packed)


def _wire_size(status: status_pb2.Status) -> int:
    """Bytes of grpc-message (percent-encoded) and grpc-status-details-bin (base64)."""
    message = status.message.encode()
    escaped = sum(1 if 0x20 <= b <= 0x7E and b != 0x25 else 3 for b in message)
    return escaped + (int(status.ByteSize()) * 4 + 2) // 3


def to_status(error: TicketingError) -> grpc.Status:
    """The status for ``error``, cut to fit the proxies' trailer bounds: as
    many of its field violations as fit (at least one), the rest counted."""
    violations = _violations(error)
    rich = _rich(error, violations)
    while len(violations) > 1 and _wire_size(rich) > STATUS_BUDGET:
        violations = violations[: len(violations) // 2]
        rich = _rich(error, violations)
    return rpc_status.to_status(rich)


# What a client learns of a bug: nothing but that it happened.
INTERNAL = to_status(TicketingError("internal error"))


def classify(exc: Exception) -> TicketingError | None:
    """The client-facing error for ``exc``; None for a bug."""
    if isinstance(exc, TicketingError):
        return exc
    if is_transient(exc):
        return DependencyUnavailable(
            "a dependency of the service is unavailable; retry",
            retry_after_s=DEPENDENCY_RETRY_AFTER_S,
        )
    return None


class ErrorInterceptor(ServerInterceptor):
    """Maps every handler's errors to a status with details, in one place."""

    def __init__(self) -> None:
        self._rewrapped = Rewrapped()

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        return self._rewrapped.get(
            method,
            handler,
            lambda: rewrap(
                handler,
                lambda behavior: _wrap_unary(behavior, method),
                lambda behavior: _wrap_stream(behavior, method),
                _lenient,
            ),
        )


class _Malformed:
    """Stands for a request body that is not the method's message."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _lenient(parse: Deserializer | None) -> Deserializer | None:
    """A deserializer that hands a bad body on instead of failing: grpc would
    answer INTERNAL, a client's garbage is INVALID_ARGUMENT."""
    if parse is None:
        return None

    def lenient(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the body's
            return _Malformed(f"{type(exc).__name__}: {exc}")

    return lenient


def _refuse_malformed(request: Any) -> None:
    if isinstance(request, _Malformed):
        raise InvalidArgument("request", f"is not a valid message ({request.problem})")


async def _abort(context: grpc.aio.ServicerContext[Any, Any], exc: Exception, method: str) -> None:
    error = classify(exc)
    if error is None:
        log.exception("unhandled_error", method=method)
        status = INTERNAL
    else:
        if not isinstance(exc, TicketingError):
            log.warning("dependency_unavailable", method=method, error=repr(exc))
        status = to_status(error)
    await context.abort(status.code, status.details, status.trailing_metadata)


def _wrap_unary(
    behavior: Callable[..., Awaitable[Any]], method: str
) -> Callable[..., Awaitable[Any]]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            _refuse_malformed(request)
            return await behavior(request, context)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:  # noqa: BLE001 - task boundary: _abort maps it and logs bugs
            await _abort(context, exc, method)

    return wrapped


def _wrap_stream(
    behavior: Callable[..., AsyncIterator[Any]], method: str
) -> Callable[..., AsyncIterator[Any]]:
    async def wrapped(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        try:
            _refuse_malformed(request)
            async for item in behavior(request, context):
                yield item
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:  # noqa: BLE001 - task boundary: _abort maps it and logs bugs
            await _abort(context, exc, method)

    return wrapped


# The client's side: what a failed call's details say.


def rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """The ``google.rpc.Status`` a failed call carried, if any."""
    metadata = cast(Sequence[tuple[str, str | bytes]], error.trailing_metadata() or ())
    for key, value in metadata:
        if key == DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None


def detail(error: grpc.aio.AioRpcError, kind: type[M]) -> M | None:
    """The first detail of type ``kind`` (ErrorInfo, BadRequest, RetryInfo...)."""
    status = rich_status(error)
    for packed in status.details if status is not None else ():
        if packed.Is(kind.DESCRIPTOR):
            found = kind()
            packed.Unpack(found)
            return found
    return None


def retry_delay_s(error: grpc.aio.AioRpcError) -> float | None:
    """The delay the server advised before a retry (RetryInfo), if any."""
    info = detail(error, error_details_pb2.RetryInfo)
    return None if info is None else info.retry_delay.ToTimedelta().total_seconds()


def reason(error: grpc.aio.AioRpcError) -> str | None:
    info = detail(error, error_details_pb2.ErrorInfo)
    return None if info is None else info.reason
