"""A stack of its own for the fault-injection tests: they kill, pause and
restart its processes. Settings make the dangerous windows wide (a pause after
taking a lock, after publishing results, after the broker's acknowledgement)
and failure detection quick (short lock TTL and consumer session)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping

import asyncpg
import grpc
import pytest

from ticketing_tools.stack import LocalStack, StackConfig

from ..helpers import TEST_KEY_FILE, TEST_SERVICE_ENV, authorized

FAULT_SETTINGS = {
    "TICKETING_CONSUMER_FAULT_DELAY_MS": "300",
    "TICKETING_GATEWAY_FAULT_DELAY_MS": "300",
    "TICKETING_CONSUMER_LOCK_TTL_MS": "1000",
    "TICKETING_GATEWAY_LOCK_TTL_MS": "1000",
    "TICKETING_CONSUMER_SESSION_TIMEOUT_MS": "3000",
    "TICKETING_CONSUMER_BREAKER_RESET_S": "1",
    "TICKETING_CONSUMER_RETRY_BACKOFF_S": "0.2",
    "TICKETING_NOTIFIER_RECHECK_S": "1",
    # These tests account for every request through the queue under faults
    # (a rush's every user queued and decided); the fast path has its own
    # tests against the main stack.
    "TICKETING_GATEWAY_SOLD_OUT_FAST_PATH": "false",
}


def fault_stack_of(config: StackConfig, extra: Mapping[str, str] | None = None) -> LocalStack:
    """The fault tests kill and restart PostgreSQL, Redis and Kafka: they
    always start their own, whatever the connection settings name."""
    config = config.model_copy(update={"signing_key_file": str(TEST_KEY_FILE)})
    return LocalStack(
        config,
        service_env={**TEST_SERVICE_ENV, **FAULT_SETTINGS, **(extra or {})},
        own_servers=True,
    )


@pytest.fixture(scope="module")
def fault_stack() -> Iterator[LocalStack]:
    with fault_stack_of(StackConfig(listen_port=0)) as running:
        yield running


@pytest.fixture(scope="module")
async def fault_channel(fault_stack: LocalStack) -> AsyncIterator[grpc.aio.Channel]:
    async with authorized(fault_stack.endpoint) as channel:
        yield channel


@pytest.fixture
async def fault_pool(fault_stack: LocalStack) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(fault_stack.postgres_dsn, min_size=1, max_size=2) as pool:
        yield pool
