"""A three-node Apache Kafka cluster (replication factor 3,
min.insync.replicas=2): the leader of the rushed event's requests partition is
SIGKILLed mid-rush. No acknowledged request is lost, and the rush completes on
the new leader: exactly 100 seats sold to 2,000 users, every tenth retrying."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator

import asyncpg
import grpc
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

from ticketing_tools.stack import LocalStack, StackConfig
from ticketing_tools.stack.processes import Child

from ..helpers import authorized, create_event, reservations_stub
from .client import (
    RETRY_EVERY,
    SEATS_RUSH,
    USERS_RUSH,
    RushLog,
    assert_all_in_queue,
    assert_exact_outcome,
    finals_of,
    rush,
)
from .conftest import fault_stack_of

KILL_AFTER = 300

# Three JVMs to start on top of the rush.
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster_stack() -> Iterator[LocalStack]:
    config = StackConfig(listen_port=0, kafka_nodes=3, kafka_heap="256m")
    with fault_stack_of(config) as running:
        yield running


@pytest.fixture(scope="module")
async def cluster_channel(cluster_stack: LocalStack) -> AsyncIterator[grpc.aio.Channel]:
    async with authorized(cluster_stack.endpoint) as channel:
        yield channel


async def partition_leader(stack: LocalStack, event_id: str) -> tuple[int, Child]:
    """The requests partition the event's records go to (keyed by event id,
    as the gateway keys them) and the node leading it."""
    admin = AIOKafkaAdminClient(**stack.kafka.client_options())
    await admin.start()
    try:
        (topic,) = await admin.describe_topics([stack.kafka.requests_topic])
    finally:
        await admin.close()
    partitions = sorted(p["partition"] for p in topic["partitions"])
    partition = DefaultPartitioner()(event_id.encode(), partitions, partitions)
    leader = next(p["leader"] for p in topic["partitions"] if p["partition"] == partition)
    return partition, stack.find(f"kafka-{leader}")


async def test_requests_partition_leader_killed_mid_rush(
    cluster_stack: LocalStack, cluster_channel: grpc.aio.Channel
) -> None:
    assert cluster_stack.kafka.replication_factor == 3
    event = await create_event(
        reservations_stub(cluster_channel), capacity=SEATS_RUSH, per_user_limit=1
    )
    event_id = event.event_id
    log = RushLog()
    running = asyncio.create_task(
        rush(cluster_stack, event_id, USERS_RUSH, retry_every=RETRY_EVERY, log=log)
    )
    await log.wait_queued(KILL_AFTER)
    _, leader = await partition_leader(cluster_stack, event_id)
    os.kill(leader.pid, signal.SIGKILL)
    assert KILL_AFTER <= len(log.queued) < USERS_RUSH  # mid-rush

    outcomes = await running
    # Served by a new leader while the old one stayed dead.
    _, new_leader = await partition_leader(cluster_stack, event_id)
    assert new_leader is not leader
    # Every QUEUED answer, before the kill or after it, is in the queue.
    await assert_all_in_queue(cluster_stack, log.queued)
    async with asyncpg.create_pool(cluster_stack.postgres_dsn, min_size=1, max_size=2) as pool:
        await assert_exact_outcome(cluster_stack, pool, event_id, finals_of(outcomes), SEATS_RUSH)
