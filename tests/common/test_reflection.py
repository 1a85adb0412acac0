"""Reflection on every server describes the whole public API, by v1 and v1alpha:
a real grpc.aio server on a real port, asked as grpcurl and ghz ask."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2 as rpb

from ticketing_common import reflection

from ..helpers import PUBLIC_SERVICES

PATHS = {
    "v1": "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "v1alpha": "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
}


@pytest.fixture(scope="module")
async def reflecting() -> AsyncIterator[grpc.aio.Channel]:
    """A server with nothing but reflection: it still describes every service."""
    server = grpc.aio.server()
    reflection.enable(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(None)


async def ask(
    channel: grpc.aio.Channel, version: str, *requests: rpb.ServerReflectionRequest
) -> list[rpb.ServerReflectionResponse]:
    call = channel.stream_stream(
        PATHS[version],
        request_serializer=rpb.ServerReflectionRequest.SerializeToString,
        response_deserializer=rpb.ServerReflectionResponse.FromString,
    )
    return [reply async for reply in call(iter(requests), timeout=10)]


def files_of(reply: rpb.ServerReflectionResponse) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    assert reply.WhichOneof("message_response") == "file_descriptor_response", reply
    protos = (
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in reply.file_descriptor_response.file_descriptor_proto
    )
    return {proto.name: proto for proto in protos}


@pytest.mark.parametrize("version", PATHS)
async def test_lists_every_public_service(reflecting: grpc.aio.Channel, version: str) -> None:
    (reply,) = await ask(reflecting, version, rpb.ServerReflectionRequest(list_services=""))
    listed = {service.name for service in reply.list_services_response.service}
    assert listed == PUBLIC_SERVICES


@pytest.mark.parametrize("version", PATHS)
@pytest.mark.parametrize(
    ("symbol", "file"),
    [
        # ghz asks for the method by its full name.
        ("ticketing.v1.GatewayService.Reserve", "ticketing/v1/gateway_service.proto"),
        ("ticketing.v1.PaymentService.Pay", "ticketing/v1/payment_service.proto"),
        ("ticketing.v1.NotifierService.WatchReservation", "ticketing/v1/notifier_service.proto"),
        ("ticketing.v1.ReservationService", "ticketing/v1/reservation_service.proto"),
        ("ticketing.v1.Reservation", "ticketing/v1/reservation.proto"),
        ("google.rpc.ErrorInfo", "google/rpc/error_details.proto"),
        ("google.rpc.Status", "google/rpc/status.proto"),
        ("grpc.reflection.v1.ServerReflection", "grpc/reflection/v1/reflection.proto"),
    ],
)
async def test_finds_the_file_of_every_symbol_with_its_imports(
    reflecting: grpc.aio.Channel, version: str, symbol: str, file: str
) -> None:
    (reply,) = await ask(
        reflecting, version, rpb.ServerReflectionRequest(file_containing_symbol=symbol)
    )
    files = files_of(reply)
    assert file in files
    for proto in files.values():  # transitively complete: a client needs nothing else
        assert set(proto.dependency) <= set(files), proto.name


async def test_a_method_name_resolves_to_a_file_that_declares_it(
    reflecting: grpc.aio.Channel,
) -> None:
    (reply,) = await ask(
        reflecting,
        "v1",
        rpb.ServerReflectionRequest(file_containing_symbol="ticketing.v1.PaymentService.Pay"),
    )
    payment = files_of(reply)["ticketing/v1/payment_service.proto"]
    (service,) = payment.service
    assert "Pay" in {method.name for method in service.method}
    assert {"google/protobuf/timestamp.proto", "ticketing/v1/reservation.proto"} <= set(
        files_of(reply)
    )


async def test_unknown_and_internal_symbols_are_not_found(reflecting: grpc.aio.Channel) -> None:
    """The Kafka records are no part of the API; nor is a method that does not exist."""
    replies = await ask(
        reflecting,
        "v1alpha",
        rpb.ServerReflectionRequest(file_containing_symbol="ticketing.v1.GatewayService.Nope"),
        rpb.ServerReflectionRequest(file_by_filename="ticketing/queue/v1/queue.proto"),
        rpb.ServerReflectionRequest(file_containing_symbol="no.such.Thing"),
    )
    assert [reply.error_response.error_code for reply in replies] == [
        grpc.StatusCode.NOT_FOUND.value[0]
    ] * 3


def test_every_public_proto_file_is_described(pytestconfig: pytest.Config) -> None:
    """A proto file added to ticketing/v1 is described without being listed by hand."""
    on_disk = {
        str(path.relative_to(pytestconfig.rootpath / "protos"))
        for path in (pytestconfig.rootpath / "protos" / "ticketing" / "v1").glob("*.proto")
    }
    described = {file.name for file in reflection.API_FILES}
    assert on_disk <= described
    pool = reflection.public_pool()
    for name in on_disk:
        assert pool.FindFileByName(name).name == name
    assert "ticketing/queue/v1/queue.proto" not in described
