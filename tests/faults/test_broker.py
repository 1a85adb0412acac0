"""Apache Kafka itself failing while 2,000 users rush 100 seats, every tenth
one retrying its Reserve: the broker SIGKILLed and restarted on its data at
once, and SIGKILLed and kept down for 10 s. Each ends with exactly 100 seats
sold, every QUEUED answer at one terminal outcome told on the stream, nothing
acknowledged missing from the queue, and a balanced ledger."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import asyncpg
import grpc
import pytest

from ticketing.v1 import notifier_service_pb2
from ticketing.v1 import reservation_pb2 as pb
from ticketing_tools.stack import LocalStack

from ..helpers import consumers_paused, create_event, notifier_stub, reservations_stub
from .client import (
    RETRY_EVERY,
    SEATS_RUSH,
    USERS_RUSH,
    Outcome,
    RushLog,
    assert_all_in_queue,
    assert_exact_outcome,
    finals_of,
    reserve_until_queued,
    rush,
)

# The broker is killed once this many users have their QUEUED answer.
KILL_AFTER = 300
DOWN_S = 10.0

# Kafka's own failures take a broker start or two on top of the rush.
pytestmark = pytest.mark.timeout(600)


async def start_rush(
    channel: grpc.aio.Channel, stack: LocalStack
) -> tuple[str, RushLog, asyncio.Task[list[Outcome]]]:
    event = await create_event(reservations_stub(channel), capacity=SEATS_RUSH, per_user_limit=1)
    log = RushLog()
    running = asyncio.create_task(
        rush(stack, event.event_id, USERS_RUSH, retry_every=RETRY_EVERY, log=log)
    )
    await log.wait_queued(KILL_AFTER)
    return event.event_id, log, running


async def test_broker_killed_mid_rush_and_restarted_loses_nothing_acknowledged(
    fault_stack: LocalStack, fault_channel: grpc.aio.Channel, fault_pool: asyncpg.Pool
) -> None:
    event_id, log, running = await start_rush(fault_channel, fault_stack)
    broker = fault_stack.find("kafka")
    os.kill(broker.pid, signal.SIGKILL)
    assert KILL_AFTER <= len(log.queued) < USERS_RUSH  # mid-rush
    await asyncio.to_thread(fault_stack.restart, broker)

    outcomes = await running
    # Every QUEUED answer, before the kill or after the restart, is in the queue.
    await assert_all_in_queue(fault_stack, log.queued)
    await assert_exact_outcome(fault_stack, fault_pool, event_id, finals_of(outcomes), SEATS_RUSH)
    await assert_notifier_reads_requests(fault_stack, fault_channel)


async def assert_notifier_reads_requests(stack: LocalStack, channel: grpc.aio.Channel) -> None:
    """The notifier's requests feed followed the broker through its restart:
    a request nobody has decided yet is streamed as QUEUED, which only that
    feed can know (PostgreSQL has no row for it)."""
    event = await create_event(reservations_stub(channel), capacity=1, per_user_limit=1)
    first: pb.Reservation | None = None
    with consumers_paused(stack):
        rid, _, _ = await reserve_until_queued(channel, event.event_id, "late", uuid.uuid4().hex)
        call = notifier_stub(channel).WatchReservation(
            notifier_service_pb2.WatchReservationRequest(reservation_id=rid), timeout=10
        )
        async for message in call:
            first = message.reservation
            break
        call.cancel()
    assert first is not None
    assert first.status == pb.RESERVATION_STATUS_QUEUED


async def test_broker_down_for_10_s_answers_unavailable_never_queued(
    fault_stack: LocalStack, fault_channel: grpc.aio.Channel, fault_pool: asyncpg.Pool
) -> None:
    event_id, log, running = await start_rush(fault_channel, fault_stack)
    broker = fault_stack.find("kafka")
    loop = asyncio.get_running_loop()
    os.kill(broker.pid, signal.SIGKILL)
    killed_at = loop.time()
    assert KILL_AFTER <= len(log.queued) < USERS_RUSH  # mid-rush
    await asyncio.sleep(DOWN_S)  # the fault itself: the broker stays down this long
    restarted_at = loop.time()
    await asyncio.to_thread(fault_stack.restart, broker)

    outcomes = await running
    # Calls made while it was down (a dead broker acknowledges nothing) and
    # answered before it was back: all UNAVAILABLE, never QUEUED, none left
    # hanging until the caller's deadline.
    while_down = [a for a in log.answers if killed_at < a.started and a.at < restarted_at]
    assert len(while_down) >= 100
    assert {a.code for a in while_down} == {grpc.StatusCode.UNAVAILABLE}
    assert max(a.elapsed_s for a in while_down) < 5.0
    # Once the gateways' breakers opened, they answered at once with a retry
    # hint: well within the 2 s silence a publish otherwise waits (at once,
    # give or take a loaded machine with 2,000 buyers retrying).
    fast = [a for a in while_down if a.elapsed_s < 1.0 and (a.retry_after_ms or 0) > 0]
    assert len(fast) >= len(while_down) // 2
    # The retries completed after it returned; every QUEUED answer is in the queue.
    assert any(a.code == grpc.StatusCode.OK for a in log.answers if a.started > restarted_at)
    await assert_all_in_queue(fault_stack, log.queued)
    await assert_exact_outcome(fault_stack, fault_pool, event_id, finals_of(outcomes), SEATS_RUSH)
