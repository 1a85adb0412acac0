"""Server reflection over the whole public API, on every server.

Behind the load balancer the services form one endpoint, and nginx sends the
reflection service to one backend of its choosing, so each server describes
every public service, not only its own: ``grpcurl list`` and ``describe``,
and ghz resolving a method by reflection, see the same API whichever backend
answers.

The descriptors come from a pool of their own holding the public files and
their imports (the ``google.rpc`` error details, the ``google.protobuf``
well-known types), whatever else the process has loaded: the Kafka records
(``ticketing.queue.v1``) are not part of the API and are not described.

Two gaps of grpcio-reflection are filled here:

- it serves only ``grpc.reflection.v1alpha``; ``grpc.reflection.v1`` (what
  newer clients ask first) has the same messages field for field, so the
  same servicer answers it, and the pool describes it;
- its ``FileContainingSymbol`` asks the pool, which finds services and
  messages but not methods, while ghz looks a call up by the method's full
  name (``ticketing.v1.GatewayService.Reserve``): a method is found in the
  file of its service.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import _async as reflection_aio  # public as reflection.aio
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from ticketing.v1 import (
    gateway_service_pb2,
    notifier_service_pb2,
    payment_service_pb2,
    reservation_pb2,
    reservation_service_pb2,
)

V1ALPHA_SERVICE = str(reflection.SERVICE_NAME)
V1_SERVICE = "grpc.reflection.v1.ServerReflection"
_V1_FILE = "grpc/reflection/v1/reflection.proto"

# The public API: every file of ticketing.v1, and the error details its
# errors carry (google.rpc.Status in grpc-status-details-bin).
API_FILES: tuple[FileDescriptor, ...] = (
    gateway_service_pb2.DESCRIPTOR,
    notifier_service_pb2.DESCRIPTOR,
    payment_service_pb2.DESCRIPTOR,
    reservation_pb2.DESCRIPTOR,
    reservation_service_pb2.DESCRIPTOR,
    error_details_pb2.DESCRIPTOR,
    status_pb2.DESCRIPTOR,
)

API_SERVICES: tuple[str, ...] = tuple(
    service.full_name for file in API_FILES for service in file.services_by_name.values()
)

# What reflection lists: the API, health checking and reflection itself.
LISTED_SERVICES: tuple[str, ...] = (
    *API_SERVICES,
    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
    V1_SERVICE,
    V1ALPHA_SERVICE,
)


def _v1_reflection_file() -> descriptor_pb2.FileDescriptorProto:
    """grpc/reflection/v1/reflection.proto: v1alpha's file under v1's package
    (gRPC published v1 as that copy, the wire format unchanged)."""
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = proto.package, "grpc.reflection.v1"
    proto.name, proto.package = _V1_FILE, new
    proto.ClearField("options")
    for message in proto.message_type:
        for field in message.field:
            if field.type_name.startswith(f".{old}."):
                field.type_name = f".{new}." + field.type_name.removeprefix(f".{old}.")
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(f".{old}.", f".{new}.", 1)
            method.output_type = method.output_type.replace(f".{old}.", f".{new}.", 1)
    return proto


def _with_imports(files: Iterable[FileDescriptor]) -> Iterator[FileDescriptor]:
    """``files`` and everything they import, each once, imports first."""
    seen: set[str] = set()

    def visit(file: FileDescriptor) -> Iterator[FileDescriptor]:
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            yield from visit(dependency)
        yield file

    for file in files:
        yield from visit(file)


def public_pool() -> descriptor_pool.DescriptorPool:
    """A descriptor pool of the public API, health and reflection (both versions)."""
    pool = descriptor_pool.DescriptorPool()
    for file in _with_imports((*API_FILES, health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR)):
        pool.AddSerializedFile(file.serialized_pb)
    pool.AddSerializedFile(_v1_reflection_file().SerializeToString())
    return pool


# The stubs know neither reflection.aio nor the base's members.
class PublicApiReflection(reflection_aio.ReflectionServicer):  # type: ignore[misc]
    """grpcio-reflection's servicer over the public pool, finding methods too."""

    def __init__(self) -> None:
        super().__init__(LISTED_SERVICES, pool=public_pool())
        self._public = self._pool

    def _file_containing_symbol(
        self, request: reflection_pb2.ServerReflectionRequest, fully_qualified_name: str
    ) -> reflection_pb2.ServerReflectionResponse:
        service_name, _, method = fully_qualified_name.rpartition(".")
        try:
            service = self._public.FindServiceByName(service_name)
        except KeyError:
            service = None
        if service is not None and method in service.methods_by_name:
            # A method is declared in its service's file.
            fully_qualified_name = service_name
        return super()._file_containing_symbol(request, fully_qualified_name)


def enable(server: grpc.aio.Server) -> None:
    """Serves reflection v1 and v1alpha on ``server``, both by one servicer."""
    servicer = PublicApiReflection()
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {"ServerReflectionInfo": v1}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(V1_SERVICE, handlers),))
