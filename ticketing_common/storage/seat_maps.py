"""Reading a seated event's seat map: the whole map at one version, and
the changes after a version (``seat_changes``, written by ``seats``)."""

from __future__ import annotations

import json
import uuid

from ticketing.v1 import reservation_pb2 as pb

from .db import Connection

_STATE = {
    "AVAILABLE": pb.SEAT_STATE_AVAILABLE,
    "HELD": pb.SEAT_STATE_HELD,
    "SOLD": pb.SEAT_STATE_SOLD,
    "BLOCKED": pb.SEAT_STATE_BLOCKED,
}


async def read_map(conn: Connection, event_id: uuid.UUID) -> pb.SeatMap | None:
    """The event's seats and sections at one version (a snapshot: call in a
    REPEATABLE READ transaction, or this opens one); None if the event does
    not exist or is not seated."""
    if not conn.is_in_transaction():
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            return await read_map(conn, event_id)
    version = await conn.fetchval(
        "SELECT seat_version FROM events WHERE event_id = $1 AND seated", event_id
    )
    if version is None:
        return None
    seat_map = pb.SeatMap(event_id=str(event_id), version=version)
    for row in await conn.fetch(
        """SELECT section_id, capacity, available, held, sold FROM event_sections
           WHERE event_id = $1 ORDER BY ordinal""",
        event_id,
    ):
        seat_map.sections.add(**dict(row))
    for row in await conn.fetch(
        """SELECT e.section_id, e.row_id, e.seat_id, e.state, e.accessible
           FROM event_seats e JOIN event_sections s USING (event_id, section_id)
           WHERE e.event_id = $1 AND e.row_id <> ''
           ORDER BY s.ordinal, e.row_ordinal, e.ordinal""",
        event_id,
    ):
        seat_map.seats.add(
            section_id=row["section_id"],
            row_id=row["row_id"],
            seat_id=row["seat_id"],
            state=_STATE[row["state"]],
            accessible=row["accessible"],
        )
    return seat_map


async def changes_after(
    conn: Connection, event_id: uuid.UUID, version: int, *, limit: int = 1000
) -> list[pb.SeatMapChange] | None:
    """The changes after ``version``, in order (at most ``limit``); None when
    some of them are no longer kept (the caller needs the whole map)."""
    # The version first: a change committed between the two reads is then
    # among the rows, and no rows past a newer version means they are gone.
    latest = await conn.fetchval("SELECT seat_version FROM events WHERE event_id = $1", event_id)
    rows = await conn.fetch(
        """SELECT version, seats, sections FROM seat_changes
           WHERE event_id = $1 AND version > $2 ORDER BY version LIMIT $3""",
        event_id,
        version,
        limit,
    )
    if rows and rows[0]["version"] != version + 1:
        return None
    if not rows and latest is not None and latest > version:
        return None
    return [_change(row) for row in rows]


def _change(row: object) -> pb.SeatMapChange:
    change = pb.SeatMapChange(version=row["version"])  # type: ignore[index]
    for section_id, row_id, seat_id, state, accessible in json.loads(row["seats"]):  # type: ignore[index]
        change.seats.add(
            section_id=section_id,
            row_id=row_id,
            seat_id=seat_id,
            state=_STATE[state],
            accessible=accessible,
        )
    for section_id, capacity, available, held, sold in json.loads(row["sections"]):  # type: ignore[index]
        change.sections.add(
            section_id=section_id, capacity=capacity, available=available, held=held, sold=sold
        )
    return change
