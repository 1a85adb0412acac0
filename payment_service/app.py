"""Composition root of the payment service."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack
from datetime import timedelta

import asyncpg
import redis.asyncio as redis
import structlog
from aiokafka import AIOKafkaConsumer
from aiolimiter import AsyncLimiter

from ticketing.v1 import payment_service_pb2_grpc as pb_grpc
from ticketing_common import logs, tracing
from ticketing_common.auth import TokenVerifier
from ticketing_common.grpc_server import Server, wait_for_signal
from ticketing_common.kafka import start_with_retry
from ticketing_common.storage.batched import ScriptBatcher
from ticketing_common.storage.db import create_pool
from ticketing_common.storage.locks import EventLocks
from ticketing_common.storage.rate_limits import RateLimits

from . import metrics, webhooks
from .commands import CommandRunner
from .provider import LocalProvider, Provider
from .retries import RetryBudget
from .saga import Saga, Sweeper
from .servicer import PaymentServicer
from .settings import PaymentSettings
from .stripe_provider import StripeProvider

SERVICES = ("ticketing.v1.PaymentService",)

log = structlog.get_logger(__name__)


class ProviderRefused(SystemExit):
    """The payment service cannot take payments as configured: the local
    provider outside the local stack, or a key Stripe refuses."""


async def run(settings: PaymentSettings) -> None:
    logs.configure("payment_service", settings.server.log_level)
    tracing.configure("payment_service", settings.server)
    if (why := settings.local_refused()) is not None:
        log.error("payment_provider_refused", error=why)
        raise ProviderRefused(f"payment service: {why}")
    if settings.provider == "local" and not settings.local_stack:
        log.warning(
            "payment_provider_local",
            warning="the local payment provider moves no money: every seat it sells is "
            "sold for nothing (TICKETING_PAYMENT_ALLOW_LOCAL=1)",
        )
    instance = settings.server.instance_id
    async with AsyncExitStack() as stack:
        pool = await create_pool(
            settings.postgres_dsn,
            max_size=settings.pool_size,
            acquire_timeout_s=settings.pool_acquire_timeout_s,
        )
        stack.push_async_callback(pool.close)
        redis_client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=5
        )
        stack.push_async_callback(redis_client.aclose)
        # Its own client and batcher with a short timeout: the Pay limit
        # fails closed, so a slow Redis must answer or refuse quickly.
        limits_client = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.rate_timeout_s,
            socket_connect_timeout=settings.rate_timeout_s,
        )
        stack.push_async_callback(limits_client.aclose)
        batcher = ScriptBatcher(limits_client)
        stack.push_async_callback(_cancelled, asyncio.create_task(batcher.run()))
        limits = RateLimits(
            batcher,
            scope="pay",
            limits={"subject": settings.rate_per_subject},
            window_s=settings.rate_window_s,
            timeout_s=settings.rate_timeout_s,
            refused=metrics.PAY_REFUSED,
        )
        provider = await _provider(settings, pool, stack)
        saga = Saga(
            pool,
            EventLocks(redis_client, owner=f"payment-{instance}", ttl_ms=settings.lock_ttl_ms),
            provider,
            budget=RetryBudget(
                attempts=settings.retry_attempts,
                window=timedelta(seconds=settings.retry_window_s),
                backoff=timedelta(seconds=settings.retry_backoff_s),
                backoff_max=timedelta(seconds=settings.retry_backoff_max_s),
            ),
            lock_wait_s=settings.lock_wait_s,
            provider_timeout_s=settings.provider_timeout_s,
            action_poll=timedelta(seconds=settings.action_poll_s),
            # Stripe limits requests per account: a rush waits its turn.
            pace=(
                AsyncLimiter(settings.stripe.max_requests_per_s, 1)
                if settings.provider == "stripe"
                else None
            ),
            fault_delay_s=settings.fault_delay_ms / 1000,
        )
        consumer = AIOKafkaConsumer(
            settings.kafka.payments_topic,
            **settings.kafka.client_options(),
            group_id=settings.kafka.saga_group,
            client_id=f"payment-{instance}",
            # The state is in PostgreSQL and the sweeper finds what a crash
            # left half-done: a command is done with once read.
            enable_auto_commit=True,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.kafka.fetch_max_wait_ms,
        )
        await start_with_retry(consumer)
        stack.push_async_callback(consumer.stop)
        running: set[str] = set()
        commands = CommandRunner(consumer, saga, concurrency=settings.concurrency, running=running)
        sweeper = Sweeper(
            pool,
            saga,
            interval_s=settings.sweep_interval_s,
            # A saga still at work is not taken over: authorizing may take up
            # to the saga's timeout, any other step the provider's.
            stale_after=timedelta(seconds=settings.provider_timeout_s + settings.lock_wait_s),
            running=running,
        )

        verifier = TokenVerifier(settings.auth.verifier_config())
        server = Server("payment_service", settings.server, verifier=verifier)
        pb_grpc.add_PaymentServiceServicer_to_server(
            PaymentServicer(
                pool,
                provider,
                saga_timeout=timedelta(seconds=settings.saga_timeout_s),
                limits=limits,
                max_declines=settings.max_declines,
            ),
            server.grpc,
        )
        await server.start(SERVICES)
        stack.push_async_callback(server.stop, SERVICES)
        if settings.provider == "stripe":
            assert settings.stripe.webhook_secret is not None  # checked with the settings
            runner = await webhooks.serve(
                webhooks.StripeWebhooks(
                    pool,
                    secret=settings.stripe.webhook_secret.get_secret_value(),
                    tolerance_s=settings.stripe.webhook_tolerance_s,
                ),
                host=settings.webhook_host,
                port=settings.webhook_port,
                cert_file=settings.webhook_tls_cert_file,
                key_file=settings.webhook_tls_key_file,
            )
            stack.push_async_callback(runner.cleanup)
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(commands.run()), group.create_task(sweeper.run())]
            await wait_for_signal()
            for task in tasks:
                task.cancel()
        await commands.drain()


async def _provider(
    settings: PaymentSettings, pool: asyncpg.Pool, stack: AsyncExitStack
) -> Provider:
    if settings.provider == "local":
        return LocalProvider(pool, slow_delay_s=settings.slow_delay_s)
    assert settings.stripe.api_key is not None  # checked with the settings
    provider = StripeProvider(
        settings.stripe.api_key.get_secret_value(),
        api_base=settings.stripe.api_base,
        timeout_s=settings.provider_timeout_s,
    )
    stack.push_async_callback(provider.close)
    if (why := await provider.check_key()) is not None:
        log.error("payment_provider_refused", error=why)
        raise ProviderRefused(f"payment service: {why}")
    log.info("payment_provider", provider="stripe", api_base=settings.stripe.api_base)
    return provider


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
