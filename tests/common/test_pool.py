"""A pool's acquire is bounded: with every connection taken, a query waits
the configured time and then fails as a dependency outage."""

from __future__ import annotations

import asyncio
import time

import pytest

from ticketing_common.failures import is_transient
from ticketing_common.storage.db import create_pool
from ticketing_tools.stack import LocalStack


async def test_a_query_on_an_exhausted_pool_fails_after_the_acquire_timeout(
    stack: LocalStack,
) -> None:
    pool = await create_pool(stack.postgres_dsn, min_size=1, max_size=1, acquire_timeout_s=0.3)
    try:
        async with pool.acquire():
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError) as waited:
                await pool.fetchval("SELECT 1")
            elapsed = time.monotonic() - started
        assert 0.3 <= elapsed < 2.0
        assert is_transient(waited.value)
        # Free again: the pool serves.
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()
