"""A client that behaves as a careful user would under faults: it retries
Reserve with the same idempotency key until it gets QUEUED (never giving up on
UNAVAILABLE), and re-opens its watch stream until it sees a terminal state."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field

import asyncpg
import grpc

from ticketing.v1 import gateway_service_pb2, notifier_service_pb2
from ticketing.v1 import reservation_pb2 as pb
from ticketing_common.domain import TERMINAL_PROTO_STATUSES
from ticketing_common.ledger import Ledger, reconcile
from ticketing_common.stack import LocalStack

from ..helpers import gateway_stub, notifier_stub, queue_drained

RETRIABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL,  # nginx answers a reset upstream this way
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}


@dataclass
class Outcome:
    reservation_id: str
    final: pb.Reservation
    reserve_attempts: int
    failed_attempt_codes: list[grpc.StatusCode] = field(default_factory=list)


async def reserve_until_queued(
    channel: grpc.aio.Channel, event_id: str, user: str, key: str, *, give_up_s: float = 120
) -> tuple[str, int, list[grpc.StatusCode]]:
    stub = gateway_stub(channel)
    codes: list[grpc.StatusCode] = []
    async with asyncio.timeout(give_up_s):
        while True:
            try:
                reply = await stub.Reserve(
                    gateway_service_pb2.ReserveRequest(
                        event_id=event_id, user_id=user, quantity=1, idempotency_key=key
                    ),
                    timeout=5,
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRIABLE:
                    raise
                codes.append(exc.code())
                await asyncio.sleep(0.2)
                continue
            assert reply.status == pb.RESERVATION_STATUS_QUEUED
            return reply.reservation_id, len(codes) + 1, codes


async def watch_until_terminal(
    channel: grpc.aio.Channel, reservation_id: str, *, give_up_s: float = 120
) -> pb.Reservation:
    stub = notifier_stub(channel)
    async with asyncio.timeout(give_up_s):
        while True:
            last: pb.Reservation | None = None
            try:
                async for message in stub.WatchReservation(
                    notifier_service_pb2.WatchReservationRequest(reservation_id=reservation_id),
                    timeout=60,
                ):
                    last = message.reservation
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRIABLE:
                    raise
            if last is not None and last.status in TERMINAL_PROTO_STATUSES:
                return last
            await asyncio.sleep(0.2)


async def user(channel: grpc.aio.Channel, event_id: str, name: str) -> Outcome:
    key = uuid.uuid4().hex
    rid, attempts, codes = await reserve_until_queued(channel, event_id, name, key)
    return Outcome(rid, await watch_until_terminal(channel, rid), attempts, codes)


async def rush(stack: LocalStack, event_id: str, users: int, *, channels: int = 4) -> list[Outcome]:
    opened = [grpc.aio.insecure_channel(stack.endpoint) for _ in range(channels)]
    try:
        return await asyncio.gather(
            *(user(opened[n % channels], event_id, f"user-{n}") for n in range(users))
        )
    finally:
        for ch in opened:
            await ch.close(None)


def finals_of(outcomes: list[Outcome]) -> dict[str, pb.Reservation]:
    finals = {o.reservation_id: o.final for o in outcomes}
    assert len(finals) == len(outcomes)  # one reservation per user
    return finals


async def assert_exact_outcome(
    stack: LocalStack,
    pool: asyncpg.Pool,
    event_id: str,
    finals: dict[str, pb.Reservation],
    seats: int,
) -> None:
    """Exactly the seats sold, every user one terminal outcome, one row per
    reservation, the ledger balanced and the seat invariant true."""
    users = len(finals)
    counts = Counter((f.status, f.reject_reason) for f in finals.values())
    assert counts == {
        (pb.RESERVATION_STATUS_CONFIRMED, pb.REJECT_REASON_UNSPECIFIED): seats,
        (pb.RESERVATION_STATUS_REJECTED, pb.REJECT_REASON_SOLD_OUT): users - seats,
    }
    await queue_drained(stack, timeout_s=60)
    row = await pool.fetchrow(
        "SELECT capacity, available, confirmed, held FROM events WHERE event_id = $1",
        uuid.UUID(event_id),
    )
    assert row is not None
    assert tuple(row) == (seats, 0, seats, 0)
    stored = await pool.fetchval(
        "SELECT count(*) FROM reservations WHERE event_id = $1", uuid.UUID(event_id)
    )
    assert stored == users
    ledger = await assert_balanced(stack, pool, event_id)
    assert ledger.unique_reservations == users


async def assert_balanced(stack: LocalStack, pool: asyncpg.Pool, event_id: str) -> Ledger:
    """Once the queue is drained: the ledger balances and the seats add up."""
    await queue_drained(stack, timeout_s=60)
    ledger = await reconcile(stack.kafka, pool, event_id=event_id)
    assert ledger.balanced, ledger.missing
    assert ledger.seats_ok
    return ledger
