"""The error interceptor, seen by a client of a real grpc.aio server on 127.0.0.1:
the status code, the message, and the google.rpc details a client reads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2

from ticketing_common.errors import (
    DOMAIN,
    BrokerUnavailable,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Reason,
)
from ticketing_common.status import (
    STATUS_BUDGET,
    ErrorInterceptor,
    detail,
    reason,
    retry_delay_s,
    rich_status,
)

Raiser = Callable[[], Exception]


def _identity(data: bytes) -> bytes:
    return data


async def _serve(raise_: Raiser) -> tuple[grpc.aio.Server, str]:
    async def unary(request: bytes, context: Any) -> bytes:
        raise raise_()

    async def stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
        yield b"first"
        raise raise_()

    server = grpc.aio.server(interceptors=[ErrorInterceptor()])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.Errors",
                {
                    "Unary": grpc.unary_unary_rpc_method_handler(
                        unary, request_deserializer=_identity, response_serializer=_identity
                    ),
                    "Stream": grpc.unary_stream_rpc_method_handler(
                        stream, request_deserializer=_identity, response_serializer=_identity
                    ),
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def _call(raise_: Raiser, *, streaming: bool = False) -> grpc.aio.AioRpcError:
    server, address = await _serve(raise_)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                if streaming:
                    call = channel.unary_stream("/test.Errors/Stream", _identity, _identity)(b"")
                    assert [m async for m in call] == [b"first"]
                else:
                    await channel.unary_unary("/test.Errors/Unary", _identity, _identity)(
                        b"", timeout=5
                    )
            return raised.value
    finally:
        await server.stop(None)


async def test_bad_request_lists_every_violation() -> None:
    error = await _call(
        lambda: InvalidArgument.of(
            [
                FieldViolation("event_id", "must be a UUID, got 'x'"),
                FieldViolation("quantity", "must be at least 1, got 0"),
                FieldViolation("idempotency_key", "is required"),
            ]
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "event_id: must be a UUID, got 'x'; quantity: must be at least 1, got 0; "
        "idempotency_key: is required"
    )
    bad = detail(error, error_details_pb2.BadRequest)
    assert bad is not None
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("event_id", "must be a UUID, got 'x'"),
        ("quantity", "must be at least 1, got 0"),
        ("idempotency_key", "is required"),
    ]
    info = detail(error, error_details_pb2.ErrorInfo)
    assert info is not None
    assert (info.reason, info.domain) == ("INVALID_REQUEST", DOMAIN)


def _trailer_bytes(error: grpc.aio.AioRpcError) -> int:
    """What the status takes in the trailers: grpc-message percent-encoded,
    grpc-status-details-bin base64-encoded."""
    message = (error.details() or "").encode()
    escaped = sum(1 if 0x20 <= b <= 0x7E and b != 0x25 else 3 for b in message)
    status = rich_status(error)
    assert status is not None
    return escaped + (int(status.ByteSize()) * 4 + 2) // 3


async def test_a_status_with_many_long_violations_fits_a_proxys_trailer_bound() -> None:
    """nginx answers 502 for an upstream header past its buffer (one 4 KiB
    page): forty violations echoing long unicode values must still arrive as
    INVALID_ARGUMENT, with the first of them and a count of the rest."""
    many = [
        FieldViolation(f"priority_tiers[{n}]", f"a tier is 1 to 64 characters, got {'🎫' * 300!r}")
        for n in range(40)
    ]
    error = await _call(lambda: InvalidArgument.of(many))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _trailer_bytes(error) <= STATUS_BUDGET
    bad = detail(error, error_details_pb2.BadRequest)
    assert bad is not None
    kept = [v.field for v in bad.field_violations]
    assert kept and kept == [f"priority_tiers[{n}]" for n in range(len(kept))]
    assert (error.details() or "").startswith("priority_tiers[0]: a tier is 1 to 64")
    assert (error.details() or "").endswith(f"; and {40 - len(kept)} more")
    assert reason(error) == "INVALID_REQUEST"


async def test_one_huge_violation_is_cut_short_not_dropped() -> None:
    error = await _call(lambda: InvalidArgument("name", "x" * 100_000))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _trailer_bytes(error) <= STATUS_BUDGET
    bad = detail(error, error_details_pb2.BadRequest)
    assert bad is not None and [v.field for v in bad.field_violations] == ["name"]
    assert bad.field_violations[0].description.endswith("...")


async def test_not_found_names_its_reason_and_the_missing_id() -> None:
    error = await _call(
        lambda: NotFound(
            "event e1 not found", reason=Reason.EVENT_NOT_FOUND, metadata={"event_id": "e1"}
        )
    )
    assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND, "event e1 not found")
    info = detail(error, error_details_pb2.ErrorInfo)
    assert info is not None
    assert (info.reason, dict(info.metadata)) == ("EVENT_NOT_FOUND", {"event_id": "e1"})
    assert retry_delay_s(error) is None


async def test_an_advised_retry_travels_as_retry_info() -> None:
    error = await _call(
        lambda: BrokerUnavailable(
            "the queue is unavailable", retry_after_s=2.0, reason=Reason.BROKER_BREAKER_OPEN
        )
    )
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert retry_delay_s(error) == 2.0
    assert reason(error) == "BROKER_BREAKER_OPEN"


@pytest.mark.parametrize(
    "failure",
    [
        asyncpg.AdminShutdownError,  # 57P01: PostgreSQL is shutting down
        asyncpg.ReadOnlySQLTransactionError,  # 25006
        ConnectionRefusedError,
    ],
)
async def test_a_dependency_outage_is_unavailable_with_a_retry_delay(
    failure: type[Exception],
) -> None:
    error = await _call(failure)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert reason(error) == "DEPENDENCY_UNAVAILABLE"
    assert retry_delay_s(error) == 1.0


async def test_a_bug_is_internal_and_tells_nothing_of_itself() -> None:
    error = await _call(lambda: KeyError("secret-table-name"))
    assert (error.code(), error.details()) == (grpc.StatusCode.INTERNAL, "internal error")
    assert reason(error) == "INTERNAL"


async def test_a_stream_that_fails_after_a_message_carries_the_details_too() -> None:
    error = await _call(asyncpg.ConnectionDoesNotExistError, streaming=True)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert reason(error) == "DEPENDENCY_UNAVAILABLE"


async def test_a_body_that_is_not_the_message_is_invalid_argument_not_internal() -> None:
    reached: list[object] = []

    async def unary(request: object, context: Any) -> bytes:
        reached.append(request)
        return b""

    def strict(data: bytes) -> bytes:
        if not data.startswith(b"ok"):
            raise ValueError("not our format")
        return data

    server = grpc.aio.server(interceptors=[ErrorInterceptor()])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.Parse",
                {
                    "Unary": grpc.unary_unary_rpc_method_handler(
                        unary, request_deserializer=strict, response_serializer=_identity
                    )
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/test.Parse/Unary", _identity, _identity)
            assert await call(b"ok, fine", timeout=5) == b""
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(b"garbage", timeout=5)
    finally:
        await server.stop(None)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == (
        "request: is not a valid message (ValueError: not our format)"
    )
    bad = detail(refused.value, error_details_pb2.BadRequest)
    assert bad is not None
    assert [v.field for v in bad.field_violations] == ["request"]
    assert reached == [b"ok, fine"]  # the handler never saw the garbage
