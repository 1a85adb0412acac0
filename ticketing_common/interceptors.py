"""What the suite's server interceptors share: a handler rebuilt around its
behaviour, for the two kinds of method the API has."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:  # generic in the stubs only
    ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    ServerInterceptor = grpc.aio.ServerInterceptor

Unary = Callable[..., Awaitable[Any]]
Stream = Callable[..., AsyncIterator[Any]]


Deserializer = Callable[[bytes], Any]
if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
else:
    Handler = grpc.RpcMethodHandler


class Rewrapped:
    """Handlers rebuilt once per method, then reused: an interceptor runs for
    every call, but what it wraps (the next handler of the chain, the same
    object for every call of a method) and how it wraps it do not change."""

    def __init__(self) -> None:
        self._built: dict[str, tuple[Handler, Handler]] = {}

    def get(self, method: str, handler: Handler, build: Callable[[], Handler]) -> Handler:
        built = self._built.get(method)
        if built is not None and built[0] is handler:
            return built[1]
        wrapped = build()
        self._built[method] = (handler, wrapped)
        return wrapped


def rewrap(
    handler: grpc.RpcMethodHandler[Any, Any],
    unary: Callable[[Unary], Unary],
    stream: Callable[[Stream], Stream],
    deserializer: Callable[[Deserializer | None], Deserializer | None] = lambda d: d,
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with its unary or server-streaming behaviour wrapped (and
    its request deserializer, if asked); other kinds (the API has none) are
    returned as they are."""
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            unary(handler.unary_unary),
            request_deserializer=deserializer(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            # In grpc.aio a streaming handler is an async generator.
            stream(handler.unary_stream),  # type: ignore[arg-type]
            request_deserializer=deserializer(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
    return handler
