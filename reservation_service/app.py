"""Composition root of the reservation service."""

from __future__ import annotations

import secrets
from contextlib import AsyncExitStack

import redis.asyncio as redis

from ticketing.v1 import reservation_service_pb2_grpc as pb_grpc
from ticketing_common import logs, tracing
from ticketing_common.auth import TokenVerifier
from ticketing_common.grpc_server import Server, wait_for_signal
from ticketing_common.storage.accepted import AcceptedRequests
from ticketing_common.storage.db import create_pool
from ticketing_common.storage.locks import EventLocks

from .cancel import Cancellations
from .listing import PageTokens
from .sale import SaleControl
from .seating_plan import MAX_PLAN_MESSAGE_BYTES
from .servicer import ReservationServicer
from .settings import ReservationSettings
from .store import Store

SERVICES = ("ticketing.v1.ReservationService",)


async def run(settings: ReservationSettings) -> None:
    logs.configure("reservation_service", settings.server.log_level)
    tracing.configure("reservation_service", settings.server)
    async with AsyncExitStack() as stack:
        pool = await create_pool(
            settings.postgres_dsn,
            max_size=settings.pool_size,
            acquire_timeout_s=settings.pool_acquire_timeout_s,
        )
        stack.push_async_callback(pool.close)
        verifier = TokenVerifier(settings.auth.verifier_config())
        # CreateEvent takes a seating plan: an arena's is hundreds of kB.
        server = Server(
            "reservation_service",
            settings.server,
            verifier=verifier,
            max_receive_bytes=MAX_PLAN_MESSAGE_BYTES,
        )
        redis_client = redis.Redis.from_url(
            settings.accepted_redis_url or settings.redis_url,
            socket_timeout=5,
            socket_connect_timeout=5,
        )
        stack.push_async_callback(redis_client.aclose)
        accepted = AcceptedRequests(redis_client)  # read only
        locks_client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=5
        )
        stack.push_async_callback(locks_client.aclose)
        locks = EventLocks(
            locks_client,
            owner=f"reservation-{settings.server.instance_id}",
            ttl_ms=settings.lock_ttl_ms,
        )
        # Unset: a key of this process's own, so its tokens hold until it stops.
        page_token_key = (
            settings.page_token_secret.get_secret_value().encode()
            if settings.page_token_secret is not None
            else secrets.token_bytes(32)
        )
        cancellations = Cancellations(pool, locks, lock_wait_s=settings.lock_wait_s)
        sale = SaleControl(pool, locks, lock_wait_s=settings.lock_wait_s)
        pb_grpc.add_ReservationServiceServicer_to_server(
            ReservationServicer(
                Store(pool, accepted, cancellations), sale, pool, PageTokens(page_token_key)
            ),
            server.grpc,
        )
        await server.start(SERVICES)
        # Unwound first: stop taking calls, finish those in flight, then close
        # what they use.
        stack.push_async_callback(server.stop, SERVICES)
        await wait_for_signal()
