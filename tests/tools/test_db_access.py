"""The services' PostgreSQL grants (ticketing_tools/db_access.py) cover the
schema: every table the migrations create is some service's to use, or the
migrator's alone on purpose; each service's own queries touch only tables
it is granted. (The local stack runs every service as its own role with
these grants, so the integration tests find a missing privilege.)"""

from __future__ import annotations

import re
from pathlib import Path

from ticketing_common.storage.db import migrations
from ticketing_tools import db_access

ROOT = Path(__file__).resolve().parents[2]
TABLE = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE)\s+([a-z_]+)\b", re.I)


def _created_tables() -> set[str]:
    return {
        name.lower()
        for migration in migrations()
        for name in re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", migration.sql, re.I)
    }


def test_every_table_has_its_users() -> None:
    granted = db_access.tables_of(db_access.GRANTS) | db_access.MIGRATOR_ONLY
    missing = _created_tables() - granted
    assert not missing, f"no grant names {sorted(missing)}: add them to db_access.GRANTS"
    assert "schema_migrations" in granted


def test_each_services_own_queries_touch_only_its_tables() -> None:
    tables = _created_tables() | {"schema_migrations"}
    for role, module in db_access.MODULES.items():
        allowed = set(db_access.privileges(reserve_sync=True)[role])
        used = {
            name.lower()
            for path in (ROOT / module).glob("*.py")
            for name in TABLE.findall(path.read_text())
            if name.lower() in tables
        }
        assert used <= allowed, f"{module} uses {sorted(used - allowed)} without a grant"


def test_the_grants_revoke_first_and_name_only_plain_roles() -> None:
    sql = db_access.statements({"gateway": "gw"})
    assert sql[0] == 'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "gw"'
    assert 'GRANT SELECT ON TABLE events TO "gw"' in sql
    # Rows are deleted only from the outbox and the window of seat map
    # changes kept for WatchSeatMap: never a reservation, event or seat.
    assert not [s for s in sql if "DELETE" in s and not ("outbox" in s or "seat_changes" in s)]
    assert not [s for s in sql if s.startswith("GRANT") and 'TO "gw"' in s and "INSERT" in s]
    try:
        db_access.statements({"gateway": 'x"; DROP TABLE events; --'})
    except db_access.AccessError:
        pass
    else:  # pragma: no cover
        raise AssertionError("a role name with SQL in it was taken")
