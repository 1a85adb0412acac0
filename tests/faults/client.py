"""A client that behaves as a careful user would under faults: it retries
Reserve with the same idempotency key until it gets QUEUED (never giving up on
UNAVAILABLE), and re-opens its watch stream until it sees a terminal state."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
import grpc

from ticketing.v1 import gateway_service_pb2, notifier_service_pb2
from ticketing.v1 import reservation_pb2 as pb
from ticketing_common.codecs import decode_request
from ticketing_common.domain import Status
from ticketing_common.status import retry_delay_s
from ticketing_tools.ledger import Ledger, read_topic, reconcile
from ticketing_tools.stack import LocalStack

from ..helpers import as_user, authorized, gateway_stub, notifier_stub, queue_drained

RETRIABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL,  # nginx answers a reset upstream this way
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}


@dataclass(frozen=True)
class Answer:
    """One Reserve call as the client saw it."""

    started: float  # event-loop time of the call
    at: float  # event-loop time of the answer
    code: grpc.StatusCode
    elapsed_s: float
    retry_after_ms: int | None = None


@dataclass
class Outcome:
    reservation_id: str
    final: pb.Reservation
    reserve_attempts: int
    failed_attempt_codes: list[grpc.StatusCode] = field(default_factory=list)


class RushLog:
    """What a rush's users have been answered so far, so that a test can time
    a fault against the rush and check every answer against the fault."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        # Reservation ids in the order their first QUEUED answer arrived.
        self.queued: list[str] = []
        self._queued_set: set[str] = set()
        self._changed = asyncio.Event()

    def record(self, answer: Answer, reservation_id: str | None = None) -> None:
        self.answers.append(answer)
        if reservation_id is not None and reservation_id not in self._queued_set:
            self._queued_set.add(reservation_id)
            self.queued.append(reservation_id)
        self._changed.set()

    async def wait_queued(self, count: int, timeout_s: float = 60) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.queued) < count:
                self._changed.clear()
                await self._changed.wait()


def _retry_after_ms(exc: grpc.aio.AioRpcError) -> int | None:
    delay = retry_delay_s(exc)
    return None if delay is None else round(delay * 1000)


async def reserve_until_queued(
    channel: grpc.aio.Channel,
    event_id: str,
    user: str,
    key: str,
    *,
    give_up_s: float = 120,
    log: RushLog | None = None,
) -> tuple[str, int, list[grpc.StatusCode]]:
    """Reserve, retried with the same key until QUEUED; a retry waits what
    the server's RetryInfo advises (jittered), else 0.2 s."""
    stub = gateway_stub(channel)
    codes: list[grpc.StatusCode] = []
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(give_up_s):
        while True:
            started = loop.time()
            try:
                reply = await stub.Reserve(
                    gateway_service_pb2.ReserveRequest(
                        event_id=event_id, quantity=1, idempotency_key=key
                    ),
                    timeout=5,
                    metadata=as_user(user),
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRIABLE:
                    raise
                codes.append(exc.code())
                advised = _retry_after_ms(exc)
                if log is not None:
                    now = loop.time()
                    log.record(Answer(started, now, exc.code(), now - started, advised))
                backoff = advised / 1000 if advised else 0.2
                await asyncio.sleep(backoff * (0.5 + random.random()))
                continue
            assert reply.status == pb.RESERVATION_STATUS_QUEUED
            if log is not None:
                now = loop.time()
                log.record(
                    Answer(started, now, grpc.StatusCode.OK, now - started), reply.reservation_id
                )
            return reply.reservation_id, len(codes) + 1, codes


async def watch_until_terminal(
    channel: grpc.aio.Channel,
    reservation_id: str,
    *,
    give_up_s: float = 120,
    on_message: Callable[[pb.Reservation], None] | None = None,
) -> pb.Reservation:
    """Watches, re-opening the stream after a failure, until the outcome."""
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
                    if on_message is not None:
                        on_message(last)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRIABLE:
                    raise
            if last is not None and last.settled:
                return last
            await asyncio.sleep(0.2)


async def user(
    channel: grpc.aio.Channel,
    event_id: str,
    name: str,
    *,
    retries: bool = False,
    log: RushLog | None = None,
    arrive_after_s: float = 0.0,
) -> Outcome:
    """One buyer: Reserve until QUEUED, then watch to the outcome. A user
    who ``retries`` sends the same Reserve once more after the answer (as a
    client does that lost it) and must get the same reservation id."""
    await asyncio.sleep(arrive_after_s)
    key = uuid.uuid4().hex
    rid, attempts, codes = await reserve_until_queued(channel, event_id, name, key, log=log)
    if retries:
        again, more, more_codes = await reserve_until_queued(channel, event_id, name, key, log=log)
        assert again == rid
        attempts, codes = attempts + more, codes + more_codes
    return Outcome(rid, await watch_until_terminal(channel, rid), attempts, codes)


async def rush(
    stack: LocalStack,
    event_id: str,
    users: int,
    *,
    channels: int = 4,
    retry_every: int = 0,
    log: RushLog | None = None,
    prefix: str = "user-",
    spread_s: float = 0.0,
) -> list[Outcome]:
    """``users`` buyers, all at once or arriving evenly over ``spread_s`` (so
    that the rush lasts at least that long); every ``retry_every``-th one
    retries its Reserve with the same key (0: nobody does)."""
    opened = [authorized(stack.endpoint) for _ in range(channels)]
    try:
        return await asyncio.gather(
            *(
                user(
                    opened[n % channels],
                    event_id,
                    f"{prefix}{n}",
                    retries=bool(retry_every) and n % retry_every == 0,
                    log=log,
                    arrive_after_s=spread_s * n / users,
                )
                for n in range(users)
            )
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
    stored = {
        str(r["reservation_id"]): Status(r["status"]).to_proto()
        for r in await pool.fetch(
            "SELECT reservation_id, status FROM reservations WHERE event_id = $1",
            uuid.UUID(event_id),
        )
    }
    # One row per user, and each user was told on the stream what was stored.
    assert stored == {rid: final.status for rid, final in finals.items()}
    ledger = await assert_balanced(stack, pool, event_id)
    assert ledger.unique_reservations == users


async def assert_balanced(stack: LocalStack, pool: asyncpg.Pool, event_id: str) -> Ledger:
    """Once the queue is drained: the ledger balances and the seats add up."""
    await queue_drained(stack, timeout_s=60)
    ledger = await reconcile(stack.kafka, pool, event_id=event_id)
    assert ledger.balanced, ledger.missing
    assert ledger.seats_ok
    return ledger


async def assert_all_in_queue(stack: LocalStack, reservation_ids: Sequence[str]) -> None:
    """Every one of these acknowledged requests is in the requests topic."""
    topic = stack.kafka.requests_topic
    stored = {
        decode_request(r.value, partition=r.partition, offset=r.offset).reservation_id
        for r in await read_topic(stack.kafka, topic)
    }
    lost = set(reservation_ids) - stored
    assert not lost, f"{len(lost)} acknowledged requests are not in {topic}"


SEATS_RUSH = 100
USERS_RUSH = 2_000
# Every tenth user retries its Reserve with the same key.
RETRY_EVERY = 10
