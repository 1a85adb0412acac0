"""PostgreSQL: pools and versioned migrations.

Migrations are the ``NNNN_name.sql`` files of the ``migrations`` package
(package data), applied in order by one deployment step
(``ticketing-admin migrate``, or the local stack before it starts the
services); services only check that none is missing. Several runs may
overlap: each takes a transaction-scoped advisory lock first, so exactly one
applies a version and the others see it recorded when they get the lock.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from importlib import resources
from typing import TypeAlias

import asyncpg
import structlog
from asyncpg.pool import PoolAcquireContext, PoolConnectionProxy

log = structlog.get_logger(__name__)

# A connection, whether taken from a pool or opened alone.
Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy
# Anything a single statement can run on.
Executor: TypeAlias = asyncpg.Pool | Connection

# Arbitrary, fixed: the advisory lock key that serialises migrations.
MIGRATION_LOCK_KEY = 0x7469636B  # "tick"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files("ticketing_common.storage.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    return sorted(found, key=lambda m: m.version)


async def migrate(conn: Connection) -> list[int]:
    """Applies pending migrations; returns the versions this call applied."""
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in migrations():
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied.append(migration.version)
    if applied:
        log.info("migrations_applied", versions=applied)
    return applied


class SchemaNotMigrated(RuntimeError):
    """The database lacks migrations this build needs."""


async def pending_migrations(conn: Connection) -> list[Migration]:
    recorded = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    done = (
        {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        if recorded
        else set()
    )
    return [m for m in migrations() if m.version not in done]


async def require_schema(conn: Connection) -> None:
    pending = await pending_migrations(conn)
    if pending:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
        raise SchemaNotMigrated(
            f"the database schema lacks migrations {names}: run `ticketing-admin migrate`"
        )


async def migrate_database(dsn: str, *, connect_timeout_s: float = 10.0) -> list[int]:
    """Connects to ``dsn`` and applies the pending migrations (the deployment
    step ``ticketing-admin migrate``, and the local stack, run this)."""
    conn = await asyncpg.connect(dsn, timeout=connect_timeout_s)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


# asyncpg prepares every statement, and after five runs PostgreSQL may switch
# a prepared statement to a generic plan, made without the parameters' values.
# For the decision statements (arrays of a batch's ids and users, unnested)
# that plan is far worse: measured at a steady 1,000 Reserve/s, decisions took
# p50 0.4 s / p99 2.3 s with generic plans and 44 ms / 84 ms with custom ones,
# with a third of PostgreSQL's CPU. Planning each run costs far less.
SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


class BoundedPool(asyncpg.Pool):
    """A pool whose every acquire, the convenience methods' (``fetchrow``...)
    included, waits at most ``acquire_timeout_s`` for a free connection.
    Past it, ``TimeoutError``: a dependency outage to every caller (an RPC
    answers UNAVAILABLE with a RetryInfo, the consumer retries its batch)
    rather than a queue of waiters growing without bound."""

    acquire_timeout_s: float | None = None

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext:
        return super().acquire(timeout=self.acquire_timeout_s if timeout is None else timeout)


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    acquire_timeout_s: float | None = None,
    connect_timeout_s: float = 10.0,
    retry_for_s: float = 30.0,
) -> asyncpg.Pool:
    """Opens a pool, retrying while the server is still starting, and checks
    that the schema is migrated (services never migrate: one deployment step
    does, ``ticketing-admin migrate``)."""
    deadline = asyncio.get_running_loop().time() + retry_for_s
    while True:
        try:
            # What asyncpg.create_pool builds, with the bounded acquire.
            pool = BoundedPool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                max_queries=50_000,
                max_inactive_connection_lifetime=300,
                loop=None,
                connection_class=asyncpg.Connection,
                record_class=asyncpg.Record,
                timeout=connect_timeout_s,
                command_timeout=30,
                server_settings=SERVER_SETTINGS,
            )
            pool.acquire_timeout_s = acquire_timeout_s
            await pool
            break
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.PostgresConnectionError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
    try:
        async with pool.acquire() as conn:
            await require_schema(conn)
    except BaseException:
        await pool.close()
        raise
    return pool
