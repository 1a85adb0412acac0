"""What every server shares: health checking, graceful shutdown, migrations."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ticketing_common.storage.db import migrate, migrations, require_schema
from ticketing_tools.stack import LocalStack

SERVING = health_pb2.HealthCheckResponse.SERVING
SERVICE_OF = {
    "gateway": "ticketing.v1.GatewayService",
    "reservation_service": "ticketing.v1.ReservationService",
    "notifier_service": "ticketing.v1.NotifierService",
    "consumer_service": "ticketing.v1.ConsumerService",
    "payment_service": "ticketing.v1.PaymentService",
}


async def test_every_backend_reports_serving_for_itself(stack: LocalStack) -> None:
    for name, addresses in stack.addresses.items():
        for address in addresses:
            async with grpc.aio.insecure_channel(address) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                for service in ("", SERVICE_OF[name]):
                    reply = await health.Check(
                        health_pb2.HealthCheckRequest(service=service), timeout=5
                    )
                    assert reply.status == SERVING, (name, address, service)
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
                assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("service", ["consumer_service", "gateway"])
async def test_sigterm_drains_and_exits_cleanly(stack: LocalStack, service: str) -> None:
    """An extra instance joins (for a consumer: a rebalance), then leaves on SIGTERM."""
    child = stack.start_service(service)
    address = stack.addresses[service][-1]
    await asyncio.to_thread(stack.wait_healthy, child, address)
    assert child.process is not None
    child.process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(child.process.wait, 30)
    stack.stop_service(child)  # gone: the stack forgets its address
    assert code == 0, child.tail()
    log = child.log.read_text()
    assert '"event": "draining"' in log
    assert '"event": "stopped"' in log
    assert "Traceback" not in log


async def run_module(
    module: str, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", module, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def empty_database(stack: LocalStack, name: str) -> str:
    """A new, empty database on the stack's PostgreSQL; returns its DSN."""
    admin = await asyncpg.connect(stack.admin_dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name}")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    return stack.admin_dsn.rsplit("/", 1)[0] + "/" + name


async def test_migrations_apply_once_when_many_processes_start_together(
    stack: LocalStack,
) -> None:
    dsn = await empty_database(stack, "migration_race")
    connections = [await asyncpg.connect(dsn) for _ in range(6)]
    try:
        applied = await asyncio.gather(*(migrate(conn) for conn in connections))
        versions = [m.version for m in migrations()]
        assert sorted(applied, key=len) == [[]] * 5 + [versions]
        rows = await connections[0].fetch("SELECT version FROM schema_migrations ORDER BY 1")
        assert [r["version"] for r in rows] == versions
        assert await migrate(connections[1]) == []  # a restart applies nothing
    finally:
        for conn in connections:
            await conn.close()


async def test_services_refuse_an_unmigrated_schema_until_the_admin_migrates_it(
    stack: LocalStack,
) -> None:
    dsn = await empty_database(stack, "not_migrated")
    env = {**os.environ, "TICKETING_POSTGRES_DSN": dsn, "TICKETING_PORT": "0"}
    refused = await run_module("reservation_service", env=env)
    expected = ", ".join(f"{m.version:04d}_{m.name}" for m in migrations())
    assert (refused.returncode, refused.stderr.strip()) == (
        2,
        f"start-up error: the database schema lacks migrations {expected}: "
        "run `ticketing-admin migrate`",
    )

    first = await run_module("ticketing_tools.admin", "migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"applied migrations {[m.version for m in migrations()]}"
    again = await run_module("ticketing_tools.admin", "migrate", env=env)
    assert (again.returncode, again.stdout.strip()) == (0, "the schema is up to date")
    conn = await asyncpg.connect(dsn)
    try:
        await require_schema(conn)  # what a service checks at start-up
    finally:
        await conn.close()


def test_a_bad_setting_stops_a_service_with_a_clear_message() -> None:
    env = {
        **os.environ,
        "TICKETING_RESERVATION_ID_SECRET": "s" * 32,
        "TICKETING_CONSUMER_LOCK_TTL_MS": "soon",
        "TICKETING_CONSUMER_MAX_BATCH": "0",
    }
    result = subprocess.run(
        [sys.executable, "-m", "consumer_service"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "configuration error: TICKETING_CONSUMER_MAX_BATCH must be >= 1, got 0",
        "configuration error: TICKETING_CONSUMER_LOCK_TTL_MS must be an integer, got soon",
    ]
    # A required setting left unset is named as such, without echoing the rest.
    del env["TICKETING_RESERVATION_ID_SECRET"]
    env.pop("TICKETING_CONSUMER_LOCK_TTL_MS")
    env.pop("TICKETING_CONSUMER_MAX_BATCH")
    missing = subprocess.run(
        [sys.executable, "-m", "consumer_service"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (missing.returncode, missing.stderr.splitlines()) == (
        2,
        ["configuration error: TICKETING_RESERVATION_ID_SECRET is required"],
    )
