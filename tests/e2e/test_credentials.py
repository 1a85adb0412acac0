"""Each service of the local stack has credentials of its own, with only the
grants its code needs, and no secret is on any process's command line."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from ticketing_tools import db_access
from ticketing_tools.stack import LocalStack

from ..helpers import Reservations, create_event


def _password(dsn: str) -> str:
    password = urlsplit(dsn).password
    assert password, dsn
    return password


def _secrets_of(stack: LocalStack) -> dict[str, str]:
    found = {
        "reservation id secret": stack.reservation_id_secret,
        "postgres superuser": _password(stack.admin_dsn),
        "postgres owner": _password(stack.owner_dsn),
        "postgres rows": _password(stack.postgres_dsn),
        "redis": _password(stack.redis_url),
        **{f"postgres {name}": _password(dsn) for name, dsn in stack.service_dsns.items()},
        **{f"kafka {user}": password for user, password in stack.kafka_credentials.values()},
    }
    if stack.kafka.sasl_password is not None:
        found["kafka super user"] = stack.kafka.sasl_password.get_secret_value()
    return found


def test_no_secret_is_on_a_command_line(stack: LocalStack) -> None:
    """What `ps` shows every local user: the command lines of every server
    and service the stack started."""
    secrets = _secrets_of(stack)
    assert len(secrets) >= 13
    seen = 0
    for child in stack.children:
        if not child.alive():
            continue
        argv = Path(f"/proc/{child.pid}/cmdline").read_bytes().decode(errors="replace")
        leaked = [what for what, value in secrets.items() if value in argv]
        assert not leaked, f"{child.name}'s command line holds the {', '.join(leaked)}"
        seen += 1
    assert seen >= 8


async def test_each_service_connects_as_its_own_role(stack: LocalStack) -> None:
    assert set(stack.service_dsns) == set(db_access.MODULES.values())
    admin = await asyncpg.connect(stack.admin_dsn)
    try:
        users = {
            row["usename"]
            for row in await admin.fetch(
                "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = 'ticketing'"
            )
        }
    finally:
        await admin.close()
    assert set(db_access.SERVICES) <= users, users


async def _refused(dsn: str, statement: str, *args: object) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(statement, *args)
    finally:
        await conn.close()


async def test_a_service_role_can_do_only_what_its_service_does(
    stack: LocalStack, reservations: Reservations
) -> None:
    """The notifier and the gateway only read; nobody but the consumers
    deletes, and then only published outbox records; no service changes the
    schema or reads what it has no business with."""
    event_id = (await create_event(reservations, capacity=5)).event_id
    dsns = stack.service_dsns
    gateway, notifier = dsns["gateway"], dsns["notifier_service"]
    # (The local stack's gateways may also decide, for ReserveSync.)
    await _refused(gateway, "INSERT INTO events (event_id) VALUES ($1)", uuid.uuid4())
    await _refused(
        notifier, "UPDATE events SET sale_state = 'PAUSED' WHERE event_id = $1", uuid.UUID(event_id)
    )
    await _refused(notifier, "UPDATE reservations SET status = 'CONFIRMED'")
    await _refused(notifier, "SELECT count(*) FROM payments")
    await _refused(gateway, "SELECT count(*) FROM payments")
    await _refused(dsns["consumer_service"], "SELECT count(*) FROM payments")
    await _refused(
        dsns["payment_service"], "INSERT INTO events (event_id) VALUES ($1)", uuid.uuid4()
    )
    for dsn in dsns.values():
        await _refused(dsn, "DELETE FROM reservations")
        await _refused(dsn, "ALTER TABLE events ADD COLUMN mischief text")
        await _refused(dsn, "CREATE TABLE mischief (id int)")
    # What it may do, it can.
    reader = await asyncpg.connect(notifier)
    try:
        assert (
            await reader.fetchval(
                "SELECT count(*) FROM events WHERE event_id = $1", uuid.UUID(event_id)
            )
            == 1
        )
    finally:
        await reader.close()
