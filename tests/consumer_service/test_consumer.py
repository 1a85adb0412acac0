"""Consumer guarantees against the real broker, Redis and PostgreSQL:
redelivery is recognised, stale fencing tokens are refused, a Redis that lost
its counters does not stop the sale."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
import redis.asyncio as redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from ticketing.queue.v1 import queue_pb2
from ticketing_common.codecs import encode_request
from ticketing_common.decisions import Request
from ticketing_common.errors import StaleFencingToken
from ticketing_common.storage.applier import Applier, fenced
from ticketing_common.storage.locks import EventLocks, LockNotAcquired
from ticketing_tools.ledger import end_offsets
from ticketing_tools.stack import LocalStack

from ..helpers import (
    CONFIRMED,
    REJECTED,
    SOLD_OUT,
    Gateway,
    Notifier,
    Reservations,
    create_event,
    get_event,
    queue_drained,
    reservation_rows,
    reserve,
    watch,
)

# How a consumer logs a batch PostgreSQL refused for being read-only.
READ_ONLY_REFUSAL = "ReadOnlySQLTransactionError"


@pytest.fixture
async def pool(stack: LocalStack) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(stack.postgres_dsn, min_size=1, max_size=4) as p:
        yield p


@pytest.fixture
async def redis_client(stack: LocalStack) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(stack.redis_url)
    yield client
    await client.aclose()


def request_for(
    stack: LocalStack, event_id: str, user: str, key: str, quantity: int = 1
) -> Request:
    """The request a gateway of ``stack`` would append (its id derived with
    the stack's record key; append it signed with that key, or the consumers
    dead-letter it as forged)."""
    return Request(
        reservation_id=stack.reservation_id(user, key, event_id),
        event_id=event_id,
        user_id=user,
        quantity=quantity,
        idempotency_key=key,
        accepted_at=datetime.now(UTC),
        partition=0,
        offset=0,
    )


async def results_for(stack: LocalStack, reservation_id: str) -> list[queue_pb2.ReservationDecided]:
    """Every record the consumers published for one reservation."""
    consumer = AIOKafkaConsumer(
        stack.kafka.results_topic,
        **stack.kafka.client_options(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=1_000)
            if not batch:
                break
            for records in batch.values():
                for record in records:
                    if record.key == reservation_id.encode():
                        found.append(queue_pb2.ReservationDecided.FromString(record.value or b""))
    finally:
        await consumer.stop()
    return found


async def test_the_same_message_delivered_twice_yields_one_reservation(
    stack: LocalStack, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=3, per_user_limit=3)
    request = request_for(stack, event.event_id, "dave", "twice", quantity=2)
    producer = AIOKafkaProducer(**stack.kafka.client_options(), acks="all")
    await producer.start()
    try:
        for _ in range(2):  # a producer retry or a replay: the same record twice
            await producer.send_and_wait(
                stack.kafka.requests_topic,
                encode_request(request, stack.record_keys),
                key=event.event_id.encode(),
            )
        await queue_drained(stack)
        # And once more after the first two were decided and committed.
        await producer.send_and_wait(
            stack.kafka.requests_topic,
            encode_request(request, stack.record_keys),
            key=event.event_id.encode(),
        )
        await queue_drained(stack)
    finally:
        await producer.stop()

    final = (await watch(notifier, request.reservation_id))[-1]
    assert final.status == CONFIRMED
    rows = await reservation_rows(stack.postgres_dsn, request.reservation_id)
    assert len(rows) == 1
    after = await get_event(reservations, event.event_id)
    assert (after.available, after.confirmed) == (1, 2)
    # Each delivery's outcome was published, and it is the one stored outcome.
    published = await results_for(stack, request.reservation_id)
    assert len(published) == 3
    assert {p.reservation.status for p in published} == {CONFIRMED}
    assert len({p.reservation.decide_time.ToNanoseconds() for p in published}) == 1


async def test_a_batch_with_a_stale_fencing_token_is_refused_and_changes_nothing(
    stack: LocalStack, pool: asyncpg.Pool, redis_client: redis.Redis, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=5, per_user_limit=5)
    paused = EventLocks(redis_client, owner="consumer-paused", ttl_ms=200)
    successor = EventLocks(redis_client, owner="consumer-successor", ttl_ms=10_000)
    applier = Applier(pool)

    old = await paused.acquire(event.event_id, wait_s=1)
    with pytest.raises(LockNotAcquired):
        await successor.acquire(event.event_id, wait_s=0.05)  # held: nobody else gets it
    await asyncio.sleep(0.3)  # the first holder stalls past its lock's expiry
    new = await successor.acquire(event.event_id, wait_s=1)
    assert new.token > old.token

    winner = request_for(stack, event.event_id, "erin", "fresh", quantity=2)
    await fenced(pool, event.event_id, new.token, lambda c, t, e: applier.apply(c, t, e, [winner]))
    before = await get_event(reservations, event.event_id)

    stale = request_for(stack, event.event_id, "frank", "stale", quantity=3)
    with pytest.raises(StaleFencingToken) as refused:
        await fenced(
            pool, event.event_id, old.token, lambda c, t, e: applier.apply(c, t, e, [stale])
        )
    assert (refused.value.token, refused.value.stored) == (old.token, new.token)

    after = await get_event(reservations, event.event_id)
    assert (after.available, after.confirmed) == (before.available, before.confirmed) == (3, 2)
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM reservations WHERE reservation_id = $1",
            uuid.UUID(stale.reservation_id),
        )
        == 0
    )
    assert (
        await pool.fetchval(
            "SELECT fence_token FROM events WHERE event_id = $1", uuid.UUID(event.event_id)
        )
        == new.token
    )
    # The stalled holder's release does not free the successor's lock.
    assert not await paused.release(old)
    assert await successor.release(new)


async def test_sale_goes_on_after_redis_lost_its_fencing_counters(
    stack: LocalStack,
    pool: asyncpg.Pool,
    redis_client: redis.Redis,
    gateway: Gateway,
    notifier: Notifier,
    reservations: Reservations,
) -> None:
    event = await create_event(reservations, capacity=10, per_user_limit=1)
    for n in range(3):
        first = await reserve(gateway, event.event_id, f"early-{n}")
        assert (await watch(notifier, first.reservation_id))[-1].status == CONFIRMED
    token_before = await pool.fetchval(
        "SELECT fence_token FROM events WHERE event_id = $1", uuid.UUID(event.event_id)
    )
    assert token_before >= 1

    await redis_client.flushall()  # what a restart without persistence does

    later = await reserve(gateway, event.event_id, "after-flush")
    assert (await watch(notifier, later.reservation_id))[-1].status == CONFIRMED
    token_after = await pool.fetchval(
        "SELECT fence_token FROM events WHERE event_id = $1", uuid.UUID(event.event_id)
    )
    assert token_after > token_before
    after = await get_event(reservations, event.event_id)
    assert (after.available, after.confirmed) == (6, 4)


async def test_a_read_only_database_delays_decisions_and_dead_letters_nothing(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    """PostgreSQL switched read-only (a failover in progress, an operator's
    hand) is the environment's failure, not the requests': the consumer keeps
    retrying, and once writes are back every request gets its real outcome."""
    event = await create_event(reservations, capacity=5, per_user_limit=1)
    dead_before = await end_offsets(stack.kafka, stack.kafka.dead_letter_topic)
    logs = [child.log for child in stack.services["consumer_service"]]
    refusals_before = sum(log.read_text().count(READ_ONLY_REFUSAL) for log in logs)
    admin = await asyncpg.connect(stack.admin_dsn)
    try:
        await admin.execute("SET default_transaction_read_only = off")  # this session writes
        await admin.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        await admin.execute("SELECT pg_reload_conf()")
        try:
            replies = [
                await reserve(gateway, event.event_id, f"ro-{i}", key=f"ro-{i}") for i in range(8)
            ]
            # The fault hit the window: decisions were tried and refused.
            async with asyncio.timeout(30):
                while sum(log.read_text().count(READ_ONLY_REFUSAL) for log in logs) <= (
                    refusals_before
                ):
                    await asyncio.sleep(0.1)
            for reply in replies:
                assert await reservation_rows(stack.postgres_dsn, reply.reservation_id) == []
        finally:
            await admin.execute("ALTER SYSTEM RESET default_transaction_read_only")
            await admin.execute("SELECT pg_reload_conf()")
    finally:
        await admin.close()

    outcomes = [(await watch(notifier, r.reservation_id))[-1] for r in replies]
    assert sorted(o.status for o in outcomes) == [CONFIRMED] * 5 + [REJECTED] * 3
    assert {o.reject_reason for o in outcomes if o.status == REJECTED} == {SOLD_OUT}
    await queue_drained(stack)
    assert await end_offsets(stack.kafka, stack.kafka.dead_letter_topic) == dead_before
    after = await get_event(reservations, event.event_id)
    assert (after.available, after.confirmed) == (0, 5)
