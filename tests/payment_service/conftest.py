"""A database of its own on the test stack's server for the payment
service's store, saga and webhook tests (so that the stack's payment
service never takes these payments on), and reservations to pay for."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from ticketing_common.domain import Reservation
from ticketing_common.storage.queries import RESERVATION_COLUMNS
from ticketing_tools.stack import LocalStack

from ..helpers import own_database

PRICE = 2_500


@pytest.fixture(scope="module")
async def pool(stack: LocalStack) -> AsyncIterator[asyncpg.Pool]:
    async with (
        own_database(stack, "payments") as dsn,
        asyncpg.create_pool(dsn, min_size=1, max_size=4) as created,
    ):
        yield created


async def new_reservation(pool: asyncpg.Pool, status: str) -> Reservation:
    """A one-seat reservation of a priced event of its own, ``status``."""
    event_id, reservation_id = uuid.uuid4(), uuid.uuid4()
    held, confirmed = (1, 0) if status == "HELD" else (0, 1)
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO events (event_id, name, capacity, available, held, confirmed,
                                   per_user_limit, price_minor, currency, hold_ttl_ms)
               VALUES ($1, 'saga store', 1, 0, $2, $3, 1, $4, 'EUR', 600000)""",
            event_id,
            held,
            confirmed,
            PRICE,
        )
        row = await conn.fetchrow(
            f"""INSERT INTO reservations (reservation_id, event_id, user_id, quantity, status,
                       idempotency_key, accepted_at, decided_at, source_partition,
                       source_offset, fence_token, hold_expires_at, amount_minor, currency)
                VALUES ($1, $2, 'buyer', 1, $3, 'k', $4, $4, 0, 0, 1, $5, $6, 'EUR')
                RETURNING {RESERVATION_COLUMNS}""",
            reservation_id,
            event_id,
            status,
            now,
            now + timedelta(minutes=10) if status == "HELD" else None,
            PRICE,
        )
    assert row is not None
    return Reservation.from_row(row)
