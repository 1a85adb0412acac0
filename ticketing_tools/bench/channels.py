"""gRPC channels to the target: one channel per ``--connections``.

gRPC's C core shares subchannels (TCP connections) between channels with the
same target and arguments, which would quietly turn ten "connections" into
one. Each channel here gets a local subchannel pool and a distinct argument,
so each is its own TCP connection, as each of ghz's ``grpc.ClientConn`` is.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc

from .durations import NANOS_PER_SECOND, format_duration
from .options import Options


class ConnectError(Exception):
    """The target could not be reached within ``--connect-timeout``."""


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConnectError(f"cannot read {path}: {exc}") from exc


def credentials(options: Options) -> grpc.ChannelCredentials | None:
    """None for ``--insecure``; TLS with the system roots or ``--cacert`` else."""
    if options.insecure:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(options.cacert) if options.cacert else None,
        private_key=_read(options.key) if options.key else None,
        certificate_chain=_read(options.cert) if options.cert else None,
    )


def channel_arguments(options: Options, connection: int) -> list[tuple[str, Any]]:
    arguments: list[tuple[str, Any]] = [
        ("grpc.use_local_subchannel_pool", 1),
        ("ticketing.bench.connection", connection),
        # ghz lifts the message size limits (math.MaxInt32).
        ("grpc.max_receive_message_length", -1),
        ("grpc.max_send_message_length", -1),
    ]
    if options.keepalive_ns:
        keepalive_ms = options.keepalive_ns // 1_000_000
        arguments += [("grpc.keepalive_time_ms", keepalive_ms)]
        arguments += [("grpc.keepalive_timeout_ms", keepalive_ms)]
    if options.authority:
        arguments.append(("grpc.default_authority", options.authority))
    if options.cname:
        arguments.append(("grpc.ssl_target_name_override", options.cname))
    return arguments


def open_channel(options: Options, connection: int = 0) -> grpc.aio.Channel:
    arguments = channel_arguments(options, connection)
    secure = credentials(options)
    if secure is None:
        return grpc.aio.insecure_channel(options.host, options=arguments)
    return grpc.aio.secure_channel(options.host, secure, options=arguments)


async def connect(options: Options, connections: list[int]) -> list[grpc.aio.Channel]:
    """Opens one channel per connection id and waits until all are ready, so
    the first calls do not pay for the TCP and HTTP/2 handshakes."""
    channels = [open_channel(options, connection) for connection in connections]
    timeout_s = options.connect_timeout_ns / NANOS_PER_SECOND
    try:
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*(channel.channel_ready() for channel in channels))
    except TimeoutError:
        await close(channels)
        raise ConnectError(
            f"cannot connect to {options.host} within {format_duration(options.connect_timeout_ns)}"
            " (--connect-timeout)"
        ) from None
    return channels


async def close(channels: list[grpc.aio.Channel]) -> None:
    await asyncio.gather(*(channel.close(grace=None) for channel in channels))
