"""Composition root of the gateway."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack

import redis.asyncio as redis

from ticketing.v1 import gateway_service_pb2_grpc as pb_grpc
from ticketing_common import logs, tracing
from ticketing_common.auth import TokenVerifier
from ticketing_common.grpc_server import Server, wait_for_signal
from ticketing_common.kafka import new_producer, start_with_retry
from ticketing_common.storage.accepted import AcceptedRequests
from ticketing_common.storage.applier import Applier
from ticketing_common.storage.batched import ScriptBatcher
from ticketing_common.storage.db import create_pool
from ticketing_common.storage.locks import EventLocks
from ticketing_common.storage.rate_limits import RateLimits

from . import metrics
from .addresses import ClientAddresses
from .broker import BrokerGate
from .events import EventDirectory
from .idempotency import IdempotencyKeys
from .servicer import GatewayServicer
from .settings import GatewaySettings
from .sync import SyncReserver

SERVICES = ("ticketing.v1.GatewayService",)


async def run(settings: GatewaySettings) -> None:
    logs.configure("gateway", settings.server.log_level)
    tracing.configure("gateway", settings.server)
    async with AsyncExitStack() as stack:
        pool = await create_pool(
            settings.postgres_dsn,
            min_size=1,
            max_size=settings.pool_size,
            acquire_timeout_s=settings.pool_acquire_timeout_s,
        )
        stack.push_async_callback(pool.close)
        producer = new_producer(
            settings.kafka,
            client_id=f"gateway-{settings.server.instance_id}",
            linger_ms=settings.producer_linger_ms,
        )
        await start_with_retry(producer)
        # Closed after the server stopped: flushes whatever is still in flight.
        stack.push_async_callback(producer.stop)

        redis_client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=5
        )
        stack.push_async_callback(redis_client.aclose)
        sync = SyncReserver(
            locks=EventLocks(
                redis_client,
                owner=f"gateway-{settings.server.instance_id}",
                ttl_ms=settings.lock_ttl_ms,
            ),
            applier=Applier(pool),
            lock_wait_s=settings.sync_lock_wait_s,
        )

        # Its own client with a short timeout: a slow Redis must not hold up
        # Reserve (the check is skipped instead, see idempotency.py).
        keys_client = redis.Redis.from_url(
            settings.accepted_redis_url or settings.redis_url,
            socket_timeout=settings.idempotency_timeout_s,
            socket_connect_timeout=settings.idempotency_timeout_s,
        )
        stack.push_async_callback(keys_client.aclose)
        # Batches the hot path's Redis writes; cancelled after the server stopped.
        batcher = ScriptBatcher(keys_client)
        stack.push_async_callback(_cancelled, asyncio.create_task(batcher.run()))
        accepted = AcceptedRequests(keys_client, batcher=batcher, ttl_s=settings.idempotency_ttl_s)
        keys = IdempotencyKeys(accepted, timeout_s=settings.idempotency_timeout_s)
        # Fails closed: a call Redis could not count in time is UNAVAILABLE.
        limits = RateLimits(
            batcher,
            scope="reserve",
            limits={"subject": settings.rate_per_subject, "address": settings.rate_per_address},
            window_s=settings.rate_window_s,
            timeout_s=settings.idempotency_timeout_s,
            refused=metrics.RATE_LIMITED,
        )

        events = EventDirectory(
            pool, unknown_ttl_s=settings.unknown_event_ttl_s, refresh_s=settings.event_refresh_s
        )
        # Told by PostgreSQL when an event's terms change; cancelled at the end.
        stack.push_async_callback(
            _cancelled, asyncio.create_task(events.follow(settings.postgres_dsn))
        )

        verifier = TokenVerifier(settings.auth.verifier_config())
        server = Server("gateway", settings.server, verifier=verifier)
        pb_grpc.add_GatewayServiceServicer_to_server(
            GatewayServicer(
                events=events,
                keys=keys,
                limits=limits,
                addresses=ClientAddresses(settings.trusted_proxies),
                sold_out_fast_path=settings.sold_out_fast_path,
                record_keys=settings.record_keys(),
                broker=BrokerGate(
                    producer,
                    settings.kafka.requests_topic,
                    publish_timeout_s=settings.publish_timeout_s,
                    threshold=settings.broker_breaker_threshold,
                    reset_s=settings.broker_breaker_reset_s,
                    silence_s=settings.broker_silence_s,
                ),
                publish_timeout_s=settings.publish_timeout_s,
                fault_delay_s=settings.fault_delay_ms / 1000,
                sync=sync if settings.sync_enabled else None,
            ),
            server.grpc,
        )
        await server.start(SERVICES)
        # Unwound first: stop taking calls, finish those in flight, then close
        # what they use.
        stack.push_async_callback(server.stop, SERVICES)
        await wait_for_signal()


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
