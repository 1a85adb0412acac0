"""Fault injection against a real stack: processes are killed (SIGKILL),
frozen (SIGSTOP/SIGCONT) and restarted while users rush an event. Each fault
is timed against the rush (never by a fixed sleep), each test checks that it
landed where it was aimed, and ends with the exact outcome, a balanced ledger
and the seat invariant. (Kafka's own failures: test_broker, test_cluster.)"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import asyncpg
import grpc
import pytest
import redis.asyncio as redis
from aiokafka import AIOKafkaConsumer
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_common.status import reason, retry_delay_s
from ticketing_common.storage.locks import EventLocks
from ticketing_tools import db_access
from ticketing_tools.ledger import committed_offsets, read_topic, topic_partitions
from ticketing_tools.stack import LocalStack
from ticketing_tools.stack.processes import Child

from ..helpers import authorized, consumers_paused, create_event, reservations_stub
from .client import (
    RushLog,
    assert_balanced,
    assert_exact_outcome,
    finals_of,
    reserve_until_queued,
    rush,
    watch_until_terminal,
)

USERS = 300
SEATS = 40
# Rushes that a fault must hit while users are still arriving last this long.
ARRIVALS_S = 4.0


def alive_consumers(stack: LocalStack) -> list[Child]:
    return [c for c in stack.services["consumer_service"] if c.alive()]


def consumer_named(stack: LocalStack, instance: str) -> Child:
    return next(c for c in stack.services["consumer_service"] if c.name == instance)


async def new_event(channel: grpc.aio.Channel, seats: int = SEATS) -> str:
    event = await create_event(reservations_stub(channel), capacity=seats, per_user_limit=1)
    return event.event_id


async def test_consumer_killed_after_its_commit_and_before_its_offset_commit(
    fault_stack: LocalStack, fault_channel: grpc.aio.Channel, fault_pool: asyncpg.Pool
) -> None:
    event_id = await new_event(fault_channel)
    running = asyncio.create_task(rush(fault_stack, event_id, USERS))
    topic = fault_stack.kafka.requests_topic

    async def decided_beyond_commit() -> tuple[int, int, int] | None:
        row = await fault_pool.fetchrow(
            """SELECT source_partition AS p, max(source_offset) AS o FROM reservations
               WHERE event_id = $1 GROUP BY 1""",
            uuid.UUID(event_id),
        )
        if row is None:
            return None
        committed = await committed_offsets(
            fault_stack.kafka, fault_stack.kafka.consumer_group, topic, [row["p"]]
        )
        return (
            (row["p"], row["o"], committed[row["p"]]) if row["o"] >= committed[row["p"]] else None
        )

    async with asyncio.timeout(30):
        while (window := await decided_beyond_commit()) is None:
            await asyncio.sleep(0.02)
    # Decided in PostgreSQL, offsets not committed: the consumer that just
    # decided this event is in the window. Kill it there.
    victim = await asyncio.to_thread(last_decider, fault_stack, event_id)
    os.kill(victim.pid, signal.SIGKILL)
    partition, decided_to, _ = window
    committed = await committed_offsets(
        fault_stack.kafka, fault_stack.kafka.consumer_group, topic, [partition]
    )
    assert committed[partition] <= decided_to  # the kill came before the offset commit

    await asyncio.to_thread(fault_stack.restart, victim)
    outcomes = await running
    await assert_exact_outcome(fault_stack, fault_pool, event_id, finals_of(outcomes), SEATS)


def last_decider(stack: LocalStack, event_id: str) -> Child:
    """The consumer whose log shows the latest decision for the event."""
    best: tuple[str, Child] | None = None
    for child in alive_consumers(stack):
        for line in child.log.read_text(errors="replace").splitlines():
            if '"batch_decided"' in line and event_id in line:
                stamp = line.rsplit('"timestamp": "', 1)[-1]
                if best is None or stamp > best[0]:
                    best = (stamp, child)
    assert best is not None
    return best[1]


async def test_stalled_consumer_past_its_lock_ttl_is_fenced_off(
    fault_stack: LocalStack, fault_channel: grpc.aio.Channel, fault_pool: asyncpg.Pool
) -> None:
    event_id = await new_event(fault_channel)
    client = redis.Redis.from_url(fault_stack.redis_url)
    lock_key = EventLocks(client, owner="probe").lock_key(event_id)
    running = asyncio.create_task(rush(fault_stack, event_id, USERS))
    try:
        async with asyncio.timeout(30):
            while (holder := await client.get(lock_key)) is None:
                await asyncio.sleep(0.005)
    finally:
        await client.aclose()
    # The holder sits between taking the lock and writing: freeze it there
    # past the lock's TTL and its group session, so another consumer takes
    # over the partition, the lock and the batch.
    owner = holder.decode() if isinstance(holder, bytes) else holder
    name, token = owner.rsplit(":", 1)
    stalled = consumer_named(fault_stack, name)
    os.kill(stalled.pid, signal.SIGSTOP)
    try:
        # Frozen until another consumer has taken the partition and the lock
        # and written this event's decisions with a newer token.
        async with asyncio.timeout(60):
            while await fault_pool.fetchval(
                "SELECT fence_token FROM events WHERE event_id = $1", uuid.UUID(event_id)
            ) <= int(token):
                await asyncio.sleep(0.2)
    finally:
        os.kill(stalled.pid, signal.SIGCONT)

    outcomes = await running
    await assert_exact_outcome(fault_stack, fault_pool, event_id, finals_of(outcomes), SEATS)
    # Its late write was refused.
    async with asyncio.timeout(30):
        while '"event": "fencing_refused"' not in stalled.log.read_text(errors="replace"):
            await asyncio.sleep(0.1)


async def decided(pool: asyncpg.Pool, event_id: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM reservations WHERE event_id = $1", uuid.UUID(event_id)
    )
    return count


async def first_decisions(pool: asyncpg.Pool, event_id: str, at_least: int = 1) -> int:
    """Waits until the consumers have decided ``at_least`` of the event's requests."""
    async with asyncio.timeout(60):
        while (count := await decided(pool, event_id)) < at_least:
            await asyncio.sleep(0.02)
    return count


async def test_redis_restarted_in_the_middle_of_a_rush(
    fault_stack: LocalStack, fault_channel: grpc.aio.Channel, fault_pool: asyncpg.Pool
) -> None:
    event_id = await new_event(fault_channel)
    log = RushLog()
    running = asyncio.create_task(rush(fault_stack, event_id, USERS, log=log, spread_s=ARRIVALS_S))
    await first_decisions(fault_pool, event_id)
    redis_server = fault_stack.find("redis")
    await asyncio.to_thread(redis_server.stop)
    # Down while requests were still arriving: the locks were lost mid-rush.
    assert len(log.queued) < USERS
    await asyncio.to_thread(fault_stack.restart, redis_server, down_s=1.0)
    outcomes = await running
    await assert_exact_outcome(fault_stack, fault_pool, event_id, finals_of(outcomes), SEATS)


async def consumer_health(stack: LocalStack) -> set[int]:
    statuses = set()
    for child in alive_consumers(stack):
        assert child.health_address is not None
        async with grpc.aio.insecure_channel(child.health_address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=2
            )
            statuses.add(reply.status)
    return statuses


async def test_postgres_restarted_in_the_middle_of_a_rush(
    fault_stack: LocalStack, fault_channel: grpc.aio.Channel
) -> None:
    """Down long enough for the consumers' breakers to open: they pause and
    report NOT_SERVING, then resume by themselves. A second wave of users
    arrives while it is down, so the consumers have work that fails."""
    event_id = await new_event(fault_channel)
    async with asyncpg.create_pool(fault_stack.postgres_dsn, min_size=1, max_size=2) as pool:
        first = asyncio.create_task(rush(fault_stack, event_id, USERS // 2))
        await first_decisions(pool, event_id)
    postgres = fault_stack.find("postgres")
    await asyncio.to_thread(postgres.stop)
    # A client of the reservation service is told to retry, not that it hit a bug.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await reservations_stub(fault_channel).GetEvent(
            rs.GetEventRequest(event_id=event_id), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reason(caught.value) == "DEPENDENCY_UNAVAILABLE"
    assert retry_delay_s(caught.value) == 1.0
    second = asyncio.create_task(rush(fault_stack, event_id, USERS // 2, prefix="late-"))
    restarting = asyncio.create_task(asyncio.to_thread(fault_stack.restart, postgres, down_s=8.0))
    seen: set[int] = set()
    while not restarting.done() and health_pb2.HealthCheckResponse.NOT_SERVING not in seen:
        seen |= await consumer_health(fault_stack)
        await asyncio.sleep(0.1)
    assert health_pb2.HealthCheckResponse.NOT_SERVING in seen
    await restarting
    outcomes = await first + await second
    assert await consumer_health(fault_stack) == {health_pb2.HealthCheckResponse.SERVING}
    async with asyncpg.create_pool(fault_stack.postgres_dsn, min_size=1, max_size=2) as pool:
        await assert_exact_outcome(fault_stack, pool, event_id, finals_of(outcomes), SEATS)


async def test_backends_terminated_in_the_middle_of_a_batch(
    fault_stack: LocalStack, fault_channel: grpc.aio.Channel, fault_pool: asyncpg.Pool
) -> None:
    event_id = await new_event(fault_channel)
    running = asyncio.create_task(rush(fault_stack, event_id, USERS, spread_s=ARRIVALS_S))
    terminated: dict[str, int] = {}
    # The services connect as their own roles, whose backends only the
    # superuser (or a member of the role) may signal.
    admin = await asyncpg.connect(fault_stack.admin_dsn, timeout=10)
    try:
        for wave in range(1, 4):
            # Mid-rush: after the first decisions, while most are still to
            # come (three waves within the first half of the requests: a
            # wave's reconnections may let the rest be decided in a burst).
            assert await first_decisions(fault_pool, event_id, at_least=wave * USERS // 8) < USERS
            for role, n in await admin.fetch(
                """SELECT usename, count(*) FILTER (WHERE pg_terminate_backend(pid)) AS n
                   FROM pg_stat_activity
                   WHERE datname = current_database() AND usename = ANY($1::text[])
                     AND backend_type = 'client backend'
                   GROUP BY 1""",
                list(db_access.SERVICES),
            ):
                terminated[role] = terminated.get(role, 0) + n
    finally:
        await admin.close()
    # The consumers' connections (their batches' transactions) among them.
    assert terminated.get("consumer", 0) > 0, terminated
    outcomes = await running
    await assert_exact_outcome(fault_stack, fault_pool, event_id, finals_of(outcomes), SEATS)


async def test_gateway_killed_after_the_ack_and_before_the_answer(
    fault_stack: LocalStack, fault_channel: grpc.aio.Channel, fault_pool: asyncpg.Pool
) -> None:
    """Gateways pause 300 ms between the broker's ack and their answer. Callers
    talk to one gateway directly; it is killed inside that pause, once the
    first acks are in, and restarted as an orchestrator would. Its callers
    retry with the same key."""
    event_id = await new_event(fault_channel, seats=10)
    users = 40
    victim = fault_stack.find("gateway-0")
    assert victim.health_address is not None
    keys = {f"retrier-{n}": uuid.uuid4().hex for n in range(users)}
    topic = fault_stack.kafka.requests_topic
    offsets = AIOKafkaConsumer(**fault_stack.kafka.client_options())
    await offsets.start()
    direct = authorized(victim.health_address)
    try:
        partitions = await topic_partitions(offsets, topic)
        offsets.assign(partitions)
        for partition, end in (await offsets.end_offsets(partitions)).items():
            offsets.seek(partition, end)
        attempts = [
            asyncio.create_task(reserve_until_queued(direct, event_id, name, key))
            for name, key in keys.items()
        ]
        # The first of this event's requests in the queue (not any record: an
        # earlier test's rush may still be appending its own).
        async with asyncio.timeout(30):
            while not any(
                record.key == event_id.encode()
                for batch in (await offsets.getmany(timeout_ms=5)).values()
                for record in batch
            ):
                pass
        os.kill(victim.pid, signal.SIGKILL)
        await asyncio.to_thread(fault_stack.restart, victim)
        replies = await asyncio.gather(*attempts)
    finally:
        await offsets.stop()
        await direct.close(None)

    for (name, key), (rid, _, _) in zip(keys.items(), replies, strict=True):
        assert rid == fault_stack.reservation_id(name, key, event_id)
    retried = {rid for rid, tries, _ in replies if tries > 1}
    assert retried, "no call was cut off by the kill"
    finals = await asyncio.gather(
        *(watch_until_terminal(fault_channel, rid) for rid, *_ in replies)
    )
    assert sum(f.status == pb.RESERVATION_STATUS_CONFIRMED for f in finals) == 10

    records = await read_topic(fault_stack.kafka, fault_stack.kafka.requests_topic)
    copies: dict[str, int] = {}
    for record in records:
        for rid in retried:
            if rid.encode() in (record.value or b""):
                copies[rid] = copies.get(rid, 0) + 1
    # The killed gateway had appended them: the retry is a second copy...
    assert any(n >= 2 for n in copies.values())
    # ...and still one reservation each.
    rows = await fault_pool.fetch(
        "SELECT reservation_id, count(*) AS n FROM reservations WHERE event_id = $1 GROUP BY 1",
        uuid.UUID(event_id),
    )
    assert len(rows) == users
    assert {r["n"] for r in rows} == {1}
    await assert_balanced(fault_stack, fault_pool, event_id)


async def test_consumer_added_and_removed_during_a_rush(
    fault_stack: LocalStack, fault_channel: grpc.aio.Channel, fault_pool: asyncpg.Pool
) -> None:
    event_id = await new_event(fault_channel)
    leaving = alive_consumers(fault_stack)[0]
    log = RushLog()
    latecomers = asyncio.Event()
    running = asyncio.create_task(
        rush(fault_stack, event_id, USERS, log=log, spread_s=ARRIVALS_S, latecomers=latecomers)
    )
    await first_decisions(fault_pool, event_id)
    joining = fault_stack.start_service("consumer_service")
    assert joining.health_address is not None
    await asyncio.to_thread(fault_stack.wait_healthy, joining, joining.health_address)
    assert leaving.process is not None
    leaving.process.send_signal(signal.SIGTERM)
    # Both moves happened while users were still arriving.
    assert len(log.queued) < USERS
    latecomers.set()
    outcomes = await running
    assert await asyncio.to_thread(leaving.process.wait, 30) == 0
    assert joining.alive()
    await assert_exact_outcome(fault_stack, fault_pool, event_id, finals_of(outcomes), SEATS)


async def test_notifier_killed_mid_stream_and_watchers_reconnect(
    fault_stack: LocalStack, fault_channel: grpc.aio.Channel, fault_pool: asyncpg.Pool
) -> None:
    users = 60
    event_id = await new_event(fault_channel, seats=20)
    notifier = fault_stack.find("notifier_service-0")
    with consumers_paused(fault_stack):
        replies = await asyncio.gather(
            *(
                reserve_until_queued(fault_channel, event_id, f"watcher-{n}", uuid.uuid4().hex)
                for n in range(users)
            )
        )
        told_queued: set[str] = set()

        def seen(reservation: pb.Reservation) -> None:
            if reservation.status == pb.RESERVATION_STATUS_QUEUED:
                told_queued.add(reservation.reservation_id)

        watchers = [
            asyncio.create_task(watch_until_terminal(fault_channel, rid, on_message=seen))
            for rid, *_ in replies
        ]
        # Every stream is open and has told its watcher QUEUED.
        async with asyncio.timeout(30):
            while len(told_queued) < users:
                await asyncio.sleep(0.05)
        os.kill(notifier.pid, signal.SIGKILL)
        await asyncio.to_thread(fault_stack.restart, notifier)
    finals = await asyncio.gather(*watchers)
    by_id = {rid: final for (rid, *_), final in zip(replies, finals, strict=True)}
    await assert_exact_outcome(fault_stack, fault_pool, event_id, by_id, 20)
