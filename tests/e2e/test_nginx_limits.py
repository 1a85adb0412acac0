"""nginx's HTTP/2 bounds, seen on the wire: what a client is told and what a
rapid-reset flood (CVE-2023-44487: open a stream, cancel it, repeat) gets."""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ticketing_tools.stack import LocalStack, nginx

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, RST_STREAM, SETTINGS, GOAWAY = 0x1, 0x3, 0x4, 0x7
END_HEADERS, ACK = 0x4, 0x1
MAX_CONCURRENT_STREAMS = 0x3
CANCEL = 0x8


@dataclass(frozen=True)
class Frame:
    kind: int
    flags: int
    stream: int
    payload: bytes


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", kind, flags, stream) + payload


def read_frame(sock: socket.socket) -> Frame | None:
    """The next frame, or None when the connection is closed."""
    head = read_exactly(sock, 9)
    if head is None:
        return None
    length = int.from_bytes(head[:3], "big")
    kind, flags, stream = struct.unpack(">BBI", head[3:])
    payload = read_exactly(sock, length) if length else b""
    return None if payload is None else Frame(kind, flags, stream & 0x7FFF_FFFF, payload)


def read_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except (ConnectionResetError, TimeoutError):
            return None
        if not chunk:
            return None
        data += chunk
    return data


def connect(stack: LocalStack) -> tuple[socket.socket, dict[int, int]]:
    """An HTTP/2 connection (prior knowledge, as gRPC clients speak it) and
    the settings nginx announced on it."""
    host, port = stack.endpoint.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
    while (first := read_frame(sock)) is not None and first.kind != SETTINGS:
        pass
    assert first is not None, "nginx closed the connection before its SETTINGS"
    settings = dict(struct.iter_unpack(">HI", first.payload))
    sock.sendall(frame(SETTINGS, ACK, 0))
    return sock, settings


def request_headers(authority: str) -> bytes:
    """HPACK: POST (static 3), http (6), / (4), :authority as a literal."""
    value = authority.encode()
    return bytes([0x83, 0x86, 0x84, 0x01, len(value)]) + value


def test_nginx_announces_its_stream_bound(stack: LocalStack) -> None:
    sock, settings = connect(stack)
    sock.close()
    assert settings[MAX_CONCURRENT_STREAMS] == nginx.HTTP2_MAX_CONCURRENT_STREAMS


def test_a_rapid_reset_flood_is_cut_off(stack: LocalStack) -> None:
    """Each stream opened and cancelled at once counts as a request: nginx
    ends the connection (GOAWAY) by its request bound, however fast they come."""
    sock, _ = connect(stack)
    block = request_headers(stack.endpoint)
    attempts = 3 * nginx.KEEPALIVE_REQUESTS
    sent = 0
    try:
        for n in range(attempts):
            stream = 2 * n + 1
            burst = frame(HEADERS, END_HEADERS, stream, block)
            burst += frame(RST_STREAM, 0, stream, struct.pack(">I", CANCEL))
            try:
                sock.sendall(burst)
            except (BrokenPipeError, ConnectionResetError):
                break  # nginx hung up: the flood is over
            sent += 1
        goaway = None
        while (received := read_frame(sock)) is not None:
            if received.kind == GOAWAY:
                goaway = received
    finally:
        sock.close()
    assert goaway is not None, f"no GOAWAY after {sent} opened and reset streams"
    last_stream = int.from_bytes(goaway.payload[:4], "big") & 0x7FFF_FFFF
    assert last_stream <= 2 * nginx.KEEPALIVE_REQUESTS - 1


async def test_a_client_past_the_bounds_carries_on(stack: LocalStack) -> None:
    """More concurrent calls than streams allowed, and more calls than one
    connection may carry, over one channel: they wait for a stream, move to
    a new connection after nginx's GOAWAY, and every one succeeds."""
    calls = 2 * nginx.KEEPALIVE_REQUESTS + 500
    in_flight = asyncio.Semaphore(3 * nginx.HTTP2_MAX_CONCURRENT_STREAMS)
    async with grpc.aio.insecure_channel(stack.endpoint) as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def check() -> int:
            async with in_flight:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=30)
                return int(reply.status)

        statuses = await asyncio.gather(*(check() for _ in range(calls)))
    assert statuses == [health_pb2.HealthCheckResponse.SERVING] * calls
