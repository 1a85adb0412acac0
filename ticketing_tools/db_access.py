"""Who may do what in PostgreSQL: one role per service, and grants that give
each only the tables and privileges its queries use.

| role | events | reservations | payments | provider_operations | provider_events | outbox |
|---|---|---|---|---|---|---|
| gateway | S | S | | | | |
| reservation | S I U | S U | S U | | | I |
| consumer | S U | S I U | | | | S I U D |
| notifier | S | S | | | | |
| payment | S U | S U | S I U | S I | S I U | I |

(S: SELECT, read; I: INSERT; U: UPDATE; D: DELETE.)

Every service also reads ``schema_migrations`` (it refuses to start on a
schema that lacks a migration). The ``migrator`` role owns the database and
its tables and runs ``ticketing-admin migrate``; no service can change the
schema, and only the consumers' outbox relay deletes a row (a published
outbox record). ``SELECT ... FOR UPDATE`` needs ``UPDATE`` on its table; an
``UPDATE ... WHERE``, a ``RETURNING`` and an ``ON CONFLICT (columns)`` need
``SELECT``: hence the reads that go with every write above. An identity
column (``outbox.id``, ``payments.seq``) needs no grant on its sequence.

Where the grants come from, by table and service:

- gateway: the event directory reads an event's terms and counts its
  waiting requests (``gateway/events.py``); it LISTENs for changed terms,
  which needs no grant. ``ReserveSync`` (benchmarks only, off in
  production) decides like a consumer: ``SYNC_GRANTS``, given only with
  ``--reserve-sync``.
- reservation: events created and changed (``UpdateEvent``, sale
  control), reservations listed and cancelled, a paid one's payment set to
  refunding, the waitlist settled, all announced through the outbox
  (``reservation_service/``, ``storage/seats.py``, ``storage/applier.py``'s
  fence).
- consumer: decisions (``storage/applier.py``, ``storage/seats.py``), the
  hold expiry (``consumer_service/expiry.py``) and the outbox relay, which
  reads, locks and deletes what it published (``storage/outbox.py``).
- notifier: events and reservations read for watchers and queue positions
  (``notifier_service/``).
- payment: payments recorded and moved through the saga, the local
  provider's operations, holds confirmed or released, and Stripe's webhook
  events, each taken once by its id (inserted) and marked with what it did
  (updated) (``payment_service/``). A grant is on a whole table, so the
  payments columns a migration adds (``provider``, ``refund_ref``, ...) need
  none of their own.

``ticketing-admin`` has no role here: ``migrate`` and ``db-grants`` need the
tables' owner, and so its reports (``ledger``, ``payments``, ``payments
reconcile``, which reads payments and provider_operations) run with the
owner's connection too (the migrator in a deployment, ``ticketing_app`` in
the local stack).

``tests/tools/test_db_access.py`` holds these to the schema (every table has
an owner here) and to each service's own queries; the local stack runs every
service as its own role with these grants, so the whole suite checks that
they suffice. A new table or a new kind of statement needs its grant here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg

SERVICES = ("gateway", "reservation", "consumer", "notifier", "payment")
MIGRATOR = "migrator"
# The module each service role runs.
MODULES = {
    "gateway": "gateway",
    "reservation": "reservation_service",
    "consumer": "consumer_service",
    "notifier": "notifier_service",
    "payment": "payment_service",
}

SELECT, INSERT, UPDATE, DELETE = "SELECT", "INSERT", "UPDATE", "DELETE"
PRIVILEGES = (SELECT, INSERT, UPDATE, DELETE)


@dataclass(frozen=True)
class Grant:
    """``service`` may do ``privileges`` on ``table``."""

    service: str
    table: str
    privileges: tuple[str, ...]


def _each(services: Iterable[str], table: str, *privileges: str) -> list[Grant]:
    return [Grant(service, table, privileges) for service in services]


GRANTS: tuple[Grant, ...] = (
    *_each(SERVICES, "schema_migrations", SELECT),
    Grant("gateway", "events", (SELECT,)),
    Grant("gateway", "reservations", (SELECT,)),
    Grant("reservation", "events", (SELECT, INSERT, UPDATE)),
    Grant("reservation", "reservations", (SELECT, UPDATE)),
    Grant("reservation", "payments", (SELECT, UPDATE)),
    Grant("reservation", "outbox", (INSERT,)),
    Grant("consumer", "events", (SELECT, UPDATE)),
    Grant("consumer", "reservations", (SELECT, INSERT, UPDATE)),
    Grant("consumer", "outbox", (SELECT, INSERT, UPDATE, DELETE)),
    Grant("notifier", "events", (SELECT,)),
    Grant("notifier", "reservations", (SELECT,)),
    Grant("payment", "events", (SELECT, UPDATE)),
    Grant("payment", "reservations", (SELECT, UPDATE)),
    Grant("payment", "payments", (SELECT, INSERT, UPDATE)),
    Grant("payment", "provider_operations", (SELECT, INSERT)),
    Grant("payment", "provider_events", (SELECT, INSERT, UPDATE)),
    Grant("payment", "outbox", (INSERT,)),
    # Seated events: the gateway checks the ids a request names; whoever
    # takes, sells or gives back seats moves them (storage/seats.py).
    Grant("gateway", "event_sections", (SELECT,)),
    Grant("gateway", "event_seats", (SELECT,)),
    Grant("reservation", "event_sections", (SELECT, INSERT, UPDATE)),
    Grant("reservation", "event_seats", (SELECT, INSERT, UPDATE)),
    Grant("reservation", "seat_changes", (SELECT, INSERT, DELETE)),
    *(
        grant
        for service in ("consumer", "payment")
        for grant in (
            Grant(service, "event_sections", (SELECT, UPDATE)),
            Grant(service, "event_seats", (SELECT, UPDATE)),
            Grant(service, "seat_changes", (SELECT, INSERT, DELETE)),
        )
    ),
    Grant("notifier", "event_sections", (SELECT,)),
    Grant("notifier", "event_seats", (SELECT,)),
    Grant("notifier", "seat_changes", (SELECT,)),
)

# What ReserveSync (the synchronous design, for benchmarks) adds to the
# gateway's grants: it decides like a consumer.
SYNC_GRANTS: tuple[Grant, ...] = (
    Grant("gateway", "events", (UPDATE,)),
    Grant("gateway", "reservations", (INSERT, UPDATE)),
    Grant("gateway", "outbox", (INSERT,)),
    Grant("gateway", "event_sections", (UPDATE,)),
    Grant("gateway", "event_seats", (UPDATE,)),
    Grant("gateway", "seat_changes", (SELECT, INSERT, DELETE)),
)

# Tables no service touches: the migrator's alone.
MIGRATOR_ONLY: frozenset[str] = frozenset()

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class AccessError(RuntimeError):
    """Roles are missing or misnamed; the message says which."""


def privileges(
    users: Mapping[str, str] | None = None, *, reserve_sync: bool = False
) -> dict[str, dict[str, frozenset[str]]]:
    """Role name to table to privileges (``users``: service to role name,
    default the service's name)."""
    names = {service: service for service in SERVICES} | dict(users or {})
    found: dict[str, dict[str, set[str]]] = {}
    for grant in (*GRANTS, *(SYNC_GRANTS if reserve_sync else ())):
        tables = found.setdefault(names[grant.service], {})
        tables.setdefault(grant.table, set()).update(grant.privileges)
    return {
        role: {table: frozenset(p) for table, p in tables.items()} for role, tables in found.items()
    }


def quoted(role: str) -> str:
    """``role`` as an SQL identifier; only plain lower-case names are taken."""
    if not _ROLE_NAME.match(role):
        raise AccessError(f"not a plain role name: {role!r}")
    return f'"{role}"'


def statements(users: Mapping[str, str] | None = None, *, reserve_sync: bool = False) -> list[str]:
    """The SQL that leaves each service role with exactly its grants: every
    privilege on the schema's tables and sequences revoked first, so a grant
    taken out here is taken away on the next run."""
    wanted = privileges(users, reserve_sync=reserve_sync)
    sql: list[str] = []
    for role, tables in wanted.items():
        name = quoted(role)
        sql += [
            f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {name}",
            f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {name}",
        ]
        for table, granted in sorted(tables.items()):
            listed = ", ".join(p for p in PRIVILEGES if p in granted)
            sql.append(f"GRANT {listed} ON TABLE {table} TO {name}")
    return sql


async def apply_grants(
    conn: asyncpg.Connection, users: Mapping[str, str] | None = None, *, reserve_sync: bool = False
) -> list[str]:
    """Runs ``statements`` in one transaction, as the tables' owner (the
    migrator), after the migrations; returns them. Every role must exist."""
    sql = statements(users, reserve_sync=reserve_sync)
    roles = sorted(privileges(users, reserve_sync=reserve_sync))
    existing = {
        row["rolname"]
        for row in await conn.fetch("SELECT rolname FROM pg_roles WHERE rolname = ANY($1)", roles)
    }
    missing = [role for role in roles if role not in existing]
    if missing:
        raise AccessError(
            f"PostgreSQL has no role {', '.join(missing)}: create it first "
            "(deploy/postgres/roles.sql)"
        )
    async with conn.transaction():
        for statement in sql:
            await conn.execute(statement)
    return sql


def tables_of(grants: Sequence[Grant]) -> frozenset[str]:
    return frozenset(grant.table for grant in grants)
