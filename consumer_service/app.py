"""Composition root of the consumer."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import redis.asyncio as redis
from aiokafka import AIOKafkaConsumer
from aiolimiter import AsyncLimiter

from ticketing_common import logs, tracing
from ticketing_common.grpc_server import Server, wait_for_signal
from ticketing_common.kafka import new_producer, start_with_retry
from ticketing_common.storage.accepted import AcceptedRequests
from ticketing_common.storage.applier import Applier
from ticketing_common.storage.db import create_pool
from ticketing_common.storage.locks import EventLocks
from ticketing_common.storage.outbox import PAYMENTS, RESULTS, OutboxRelay

from . import metrics
from .expiry import HoldExpiry
from .loop import ConsumeLoop, DependencyBreaker
from .settings import ConsumerSettings
from .worker import BatchProcessor

BACKGROUND_CONNECTIONS = 2

# The consumer serves health checking only; its work comes from Kafka.
SERVICES = ("ticketing.v1.ConsumerService",)


async def run(settings: ConsumerSettings) -> None:
    logs.configure("consumer_service", settings.server.log_level)
    tracing.configure("consumer_service", settings.server)
    instance = settings.server.instance_id
    async with AsyncExitStack() as stack:
        pool = await create_pool(
            settings.postgres_dsn,
            # The decisions' connections, plus one each for the hold expiry
            # and the outbox relay: a decision never waits for theirs.
            max_size=settings.pool_size + BACKGROUND_CONNECTIONS,
            acquire_timeout_s=settings.pool_acquire_timeout_s,
        )
        stack.push_async_callback(pool.close)
        redis_client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=5
        )
        stack.push_async_callback(redis_client.aclose)
        # The gateways' record of accepted requests, read only: whose a
        # record that fails verification is.
        accepted_client = (
            redis.Redis.from_url(
                settings.accepted_redis_url, socket_timeout=5, socket_connect_timeout=5
            )
            if settings.accepted_redis_url
            else redis_client
        )
        if accepted_client is not redis_client:
            stack.push_async_callback(accepted_client.aclose)
        producer = new_producer(settings.kafka, client_id=f"consumer-{instance}")
        await start_with_retry(producer)
        stack.push_async_callback(producer.stop)

        consumer = AIOKafkaConsumer(
            **settings.kafka.client_options(),
            group_id=settings.kafka.consumer_group,
            client_id=f"consumer-{instance}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.max_batch,
            # A long-poll: the broker answers a fetch as soon as there is data
            # and holds an idle one this long, so an idle consumer sleeps.
            fetch_max_wait_ms=settings.kafka.fetch_max_wait_ms,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.session_timeout_ms // 3,
        )
        processor = BatchProcessor(
            applier=Applier(pool),
            locks=EventLocks(redis_client, owner=instance, ttl_ms=settings.lock_ttl_ms),
            producer=producer,
            results_topic=settings.kafka.results_topic,
            dead_letter_topic=settings.kafka.dead_letter_topic,
            lock_wait_s=settings.lock_wait_s,
            concurrency=settings.pool_size,
            fault_delay_s=settings.fault_delay_ms / 1000,
            record_keys=settings.record_keys(),
            accepted=AcceptedRequests(accepted_client),
        )
        # Health checks only: no API method, so no caller to verify.
        # Health checks only: nothing routes calls here, so no drain delay
        # (it would hold the partitions while the group waits for us).
        server = Server(
            "consumer_service",
            settings.server.model_copy(update={"drain_delay_s": 0.0}),
            verifier=None,
        )

        async def probe() -> None:
            async with asyncio.timeout(5):
                await pool.fetchval("SELECT 1")
                await redis_client.ping()

        async def set_serving(serving: bool) -> None:
            await server.set_serving(serving, SERVICES)

        rate = settings.max_decisions_per_s
        loop = ConsumeLoop(
            consumer,
            processor,
            breaker=DependencyBreaker(
                threshold=settings.breaker_threshold,
                reset_s=settings.breaker_reset_s,
                probe=probe,
            ),
            limiter=AsyncLimiter(rate, time_period=1) if rate else None,
            set_serving=set_serving,
            max_batch=settings.max_batch,
            poll_timeout_ms=settings.poll_timeout_ms,
            retry_backoff_s=settings.retry_backoff_s,
            max_attempts=settings.max_attempts,
            linger_s=settings.kafka.fetch_linger_ms / 1000,
            fault_delay_s=settings.fault_delay_ms / 1000,
        )
        metrics.register_lag(consumer, loop.committed)
        consumer.subscribe([settings.kafka.requests_topic], listener=loop)
        await start_with_retry(consumer)
        # Unwound first (the stack is LIFO): leaves the group after the loop's
        # final commit, before the producer and pools close.
        stack.push_async_callback(consumer.stop)

        await server.start(SERVICES)
        stack.push_async_callback(server.stop, SERVICES)
        locks = EventLocks(redis_client, owner=f"{instance}-expiry", ttl_ms=settings.lock_ttl_ms)
        expiry = HoldExpiry(
            pool, locks, lock_wait_s=settings.lock_wait_s, interval_s=settings.expiry_interval_s
        )
        relay = OutboxRelay(
            pool,
            producer,
            {RESULTS: settings.kafka.results_topic, PAYMENTS: settings.kafka.payments_topic},
            dsn=settings.postgres_dsn,
        )
        async with asyncio.TaskGroup() as group:
            worker = group.create_task(loop.run())
            background = [group.create_task(expiry.run()), group.create_task(relay.run())]
            await wait_for_signal()
            for task in background:
                task.cancel()
            # Finish the batch in hand and its commit, then stop polling.
            loop.stop()
            await worker
