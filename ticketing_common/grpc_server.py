"""What every gRPC server of the suite has in common.

Health checking, reflection over the whole public API (every server
describes every service: see ``reflection``), the error interceptor, and
two-stage graceful shutdown on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from . import metrics, reflection, tracing
from .auth import AuthInterceptor, TokenVerifier
from .config import ServerSettings
from .status import ErrorInterceptor

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024

SERVER_OPTIONS = [
    # The aio server takes calls from gRPC core one at a time; under a spike
    # core holds the rest as pending and, past a soft limit (1,000 by default),
    # starts refusing them at random. A rush is exactly such a spike.
    ("grpc.server.max_pending_requests", 50_000),
    ("grpc.server.max_pending_requests_hard_limit", 100_000),
    ("grpc.max_concurrent_streams", 20_000),
    # Every real message is under 1 KiB but a seating plan: a larger one is
    # refused before it is parsed (RESOURCE_EXHAUSTED), instead of the
    # default 4 MiB (the reservation service takes plans: ``Server``).
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.so_reuseport", 0),
]


class Server:
    """A grpc.aio server with health, reflection and graceful shutdown."""

    def __init__(
        self,
        name: str,
        settings: ServerSettings,
        *,
        verifier: TokenVerifier | None,
        max_receive_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        """``verifier`` checks every caller of the API (health and reflection
        stay open); None only for a server that serves nothing but health.
        ``max_receive_bytes``: the largest request taken (the reservation
        service takes seating plans)."""
        self.name = name
        self._grace_s = settings.shutdown_grace_s
        self._drain_delay_s = settings.drain_delay_s
        # Metrics outermost, to see the status each call ends with; then the
        # error interceptor: it maps what the auth interceptor refuses.
        # Tracing outermost of all, when on: its span covers the whole call.
        interceptors: list[grpc.aio.ServerInterceptor[Any, Any]] = [
            *tracing.server_interceptors(),
            metrics.MetricsInterceptor(),
            ErrorInterceptor(),
        ]
        if verifier is not None:
            interceptors.append(AuthInterceptor(verifier))
        options = [
            (key, max_receive_bytes if key == "grpc.max_receive_message_length" else value)
            for key, value in SERVER_OPTIONS
        ]
        self.grpc = grpc.aio.server(interceptors=interceptors, options=options)
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]  # not in the stubs
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        if settings.reflection:
            reflection.enable(self.grpc)
        host, port = settings.host, settings.port
        credentials = settings.server_credentials()
        self.port = (
            self.grpc.add_insecure_port(f"{host}:{port}")
            if credentials is None
            else self.grpc.add_secure_port(f"{host}:{port}", credentials)
        )
        self._stopped = False
        self.address = f"{host}:{self.port}"
        self._metrics_address = (host, settings.metrics_port)
        self.metrics_port: int | None = None

    async def set_serving(self, serving: bool, services: tuple[str, ...] = ()) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", *services):
            await _maybe_await(self.health.set(service, status))

    async def start(self, services: tuple[str, ...]) -> None:
        self.metrics_port = metrics.serve(*self._metrics_address)
        await self.grpc.start()
        await self.set_serving(True, services)
        log.info("serving", server=self.name, address=self.address)

    async def stop(self, services: tuple[str, ...]) -> None:
        """Stage one: report NOT_SERVING, still taking calls for the drain
        delay (load balancers notice and stop sending), then refuse new
        calls; stage two: give in-flight calls the grace period, then cancel
        what is left. Calling it again does nothing."""
        if self._stopped:
            return
        self._stopped = True
        log.info("draining", server=self.name, delay_s=self._drain_delay_s, grace_s=self._grace_s)
        await self.set_serving(False, services)
        if self._drain_delay_s:
            await asyncio.sleep(self._drain_delay_s)
        await self.grpc.stop(self._grace_s)
        log.info("stopped", server=self.name)


async def wait_for_signal() -> None:
    """Returns on the first SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _maybe_await(value: object) -> None:
    if asyncio.iscoroutine(value):
        await value
