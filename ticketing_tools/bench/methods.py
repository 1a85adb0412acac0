"""Finding the called method's descriptors: reflection, a protoset, or ours.

Like ghz, the method is looked up by server reflection on the target
(``grpc.reflection.v1alpha``) unless ``--protoset`` names a compiled
descriptor set. When the target does not answer reflection, the suite's own
generated descriptors (``ticketing.v1``) are used, so our services can be
benchmarked through a proxy that hides reflection.

The result is a ``MethodSpec``: the call name plus a serialized
``FileDescriptorSet`` holding the method's file and everything it imports.
It is plain bytes, so worker processes receive it pickled and rebuild the
message classes in their own descriptor pool (``MethodSpec.load``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import grpc
import structlog
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError, Message
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ticketing.v1 import gateway_service_pb2, notifier_service_pb2, reservation_service_pb2

from .templates import MethodNames

log = structlog.get_logger("ticketing_tools.bench")

Source = Literal["reflection", "protoset", "builtin"]
_BUILTIN_MODULES = (gateway_service_pb2, notifier_service_pb2, reservation_service_pb2)
# The end-of-stream marker of grpc.aio reads (missing from grpc-stubs).
EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]


class MethodError(Exception):
    """The method cannot be found or is of a kind the bench cannot call."""


@dataclass(frozen=True)
class CallName:
    service: str  # fully qualified, e.g. ticketing.v1.GatewayService
    method: str  # e.g. Reserve

    @classmethod
    def parse(cls, call: str) -> CallName:
        """``package.Service.Method`` or ``package.Service/Method`` (ghz
        accepts both); a leading slash is tolerated."""
        text = call.strip().lstrip("/")
        if "/" in text:
            service, _, method = text.rpartition("/")
        else:
            service, _, method = text.rpartition(".")
        if not service or not method or "/" in service or "." not in service.strip("."):
            raise ValueError(
                f"--call {call!r}: expected package.Service.Method or package.Service/Method"
            )
        return cls(service=service, method=method)

    @property
    def path(self) -> str:
        """The HTTP/2 path of the call: ``/package.Service/Method``."""
        return f"/{self.service}/{self.method}"

    @property
    def full_name(self) -> str:
        return f"{self.service}.{self.method}"


@dataclass(frozen=True)
class ResolvedMethod:
    """A method ready to call in this process."""

    name: CallName
    descriptor: MethodDescriptor
    input_class: type[Message]
    server_streaming: bool

    @property
    def names(self) -> MethodNames:
        return MethodNames(
            fully_qualified_name=self.descriptor.full_name,
            method_name=self.descriptor.name,
            service_name=self.descriptor.containing_service.name,
            input_name=self.descriptor.input_type.name,
            output_name=self.descriptor.output_type.name,
            client_streaming=False,
            server_streaming=self.server_streaming,
        )


@dataclass(frozen=True)
class MethodSpec:
    """A method's name and descriptors, picklable for worker processes."""

    name: CallName
    file_set: bytes  # a serialized FileDescriptorSet, dependencies included
    source: Source

    def load(self) -> ResolvedMethod:
        """Builds a private descriptor pool and the request class."""
        files = descriptor_pb2.FileDescriptorSet.FromString(self.file_set).file
        pool = descriptor_pool.DescriptorPool()
        for proto in _dependency_order(files):
            pool.Add(proto)
        try:
            service = pool.FindServiceByName(self.name.service)
        except KeyError:
            raise MethodError(f"service {self.name.service} not found ({self.source})") from None
        method = service.methods_by_name.get(self.name.method)
        if method is None:
            known = ", ".join(sorted(service.methods_by_name))
            raise MethodError(
                f"method {self.name.method} not found in {self.name.service} (has: {known})"
            )
        if method.client_streaming:
            raise MethodError(
                f"{self.name.full_name} is client-streaming; only unary and "
                "server-streaming calls are supported"
            )
        return ResolvedMethod(
            name=self.name,
            descriptor=method,
            input_class=message_factory.GetMessageClass(method.input_type),
            server_streaming=method.server_streaming,
        )


def _dependency_order(
    files: Iterable[descriptor_pb2.FileDescriptorProto],
) -> list[descriptor_pb2.FileDescriptorProto]:
    by_name = {proto.name: proto for proto in files}
    ordered: list[descriptor_pb2.FileDescriptorProto] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        proto = by_name.get(name)
        if proto is None:
            raise MethodError(f"descriptor for {name} is missing")
        for dependency in proto.dependency:
            visit(dependency)
        ordered.append(proto)

    for name in by_name:
        visit(name)
    return ordered


def _file_set(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> bytes:
    file_set = descriptor_pb2.FileDescriptorSet()
    file_set.file.extend(files)
    return file_set.SerializeToString()


async def _reflect(channel: grpc.aio.Channel, service: str, timeout_s: float) -> bytes:
    """The FileDescriptorSet of ``service`` and its imports, by reflection."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(timeout=timeout_s)
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    async def ask(request: reflection_pb2.ServerReflectionRequest) -> None:
        await call.write(request)
        reply = await call.read()
        if reply is EOF:
            raise MethodError("reflection stream ended early")
        assert isinstance(reply, reflection_pb2.ServerReflectionResponse)
        if reply.HasField("error_response"):
            raise MethodError(
                f"reflection: {reply.error_response.error_message} "
                f"(code {reply.error_response.error_code}) for {request}"
            )
        for blob in reply.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(blob)
            files.setdefault(proto.name, proto)

    try:
        await ask(reflection_pb2.ServerReflectionRequest(file_containing_symbol=service))
        missing = _missing_dependencies(files)
        while missing:
            for name in missing:
                if not _copy_from_default_pool(name, files):
                    await ask(reflection_pb2.ServerReflectionRequest(file_by_filename=name))
            missing = _missing_dependencies(files)
        await call.done_writing()
    finally:
        call.cancel()
    return _file_set(files.values())


def _missing_dependencies(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> list[str]:
    return sorted(
        {dependency for proto in files.values() for dependency in proto.dependency} - set(files)
    )


def _copy_from_default_pool(
    name: str, files: dict[str, descriptor_pb2.FileDescriptorProto]
) -> bool:
    """Well-known types (google/protobuf/*.proto) are compiled into every
    protobuf runtime; take them locally instead of asking the server."""
    if not name.startswith("google/protobuf/"):
        return False
    try:
        descriptor = descriptor_pool.Default().FindFileByName(name)
    except KeyError:
        return False
    proto = descriptor_pb2.FileDescriptorProto()
    descriptor.CopyToProto(proto)
    files[name] = proto
    return True


def builtin_file_set(service: str) -> bytes | None:
    """The suite's own descriptors for ``service``, or None if it is not ours."""
    roots = [
        module.DESCRIPTOR
        for module in _BUILTIN_MODULES
        if any(found.full_name == service for found in module.DESCRIPTOR.services_by_name.values())
    ]
    if not roots:
        return None
    root = roots[0]
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    pending = [root]
    while pending:
        current = pending.pop()
        if current.name in files:
            continue
        proto = descriptor_pb2.FileDescriptorProto()
        current.CopyToProto(proto)
        files[current.name] = proto
        pending.extend(current.dependencies)
    return _file_set(files.values())


def protoset_spec(name: CallName, path: str) -> MethodSpec:
    """A spec from a compiled descriptor set (``protoc --descriptor_set_out``)."""
    try:
        with open(path, "rb") as handle:
            blob = handle.read()
        descriptor_pb2.FileDescriptorSet.FromString(blob)
    except (OSError, DecodeError) as exc:
        raise MethodError(f"--protoset {path}: {exc}") from exc
    return MethodSpec(name=name, file_set=blob, source="protoset")


async def resolve(channel: grpc.aio.Channel, name: CallName, timeout_s: float) -> MethodSpec:
    """Reflection first; the built-in descriptors when reflection fails."""
    try:
        async with asyncio.timeout(timeout_s):
            file_set = await _reflect(channel, name.service, timeout_s)
        spec = MethodSpec(name=name, file_set=file_set, source="reflection")
        spec.load()  # fail here, with reflection's view, if the method is not there
        return spec
    except (grpc.aio.AioRpcError, MethodError, TimeoutError) as exc:
        builtin = builtin_file_set(name.service)
        if builtin is None:
            raise MethodError(
                f"cannot resolve {name.full_name}: reflection failed ({_describe(exc)}) "
                "and it is not a ticketing.v1 service"
            ) from exc
        log.warning(
            "reflection_unavailable_using_builtin_descriptors",
            call=name.full_name,
            error=_describe(exc),
        )
        return MethodSpec(name=name, file_set=builtin, source="builtin")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc)
