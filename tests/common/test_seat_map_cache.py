"""The seat maps kept in memory: a transaction takes its event's map out of
the cache, and only a committed one puts it back, so no other transaction
sees seats changed by one that may yet roll back."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, cast

from ticketing_common.seating import PlanRow, PlanSection, SeatMap, SeatState, Verdict
from ticketing_common.storage import seats
from ticketing_common.storage.db import Connection

EVENT = uuid.uuid4()


def state(version: int) -> seats.EventState:
    return seats.EventState(
        event_id=EVENT,
        available=2,
        held=0,
        per_user_limit=2,
        queue_ttl=timedelta(minutes=1),
        hold_ttl=None,
        price_minor=0,
        currency="",
        seated=True,
        seat_version=version,
    )


def one_row() -> SeatMap:
    return SeatMap([PlanSection("A", (PlanRow("A-1", ("A-1-1", "A-1-2")),))])


NO_DB = cast(Connection, cast(Any, None))  # a cache hit reads nothing


async def test_a_transaction_s_map_is_its_own_until_it_commits() -> None:
    mine = one_row()
    seats._keep(EVENT, 3, mine)
    with seats.maps_of_transaction() as pending:
        taken = await seats.seat_map(NO_DB, state(3))
        assert taken is mine
        taken.set_state(["A-1-1"], SeatState.HELD)
        # Meanwhile nobody else finds it in the cache.
        assert EVENT not in seats._maps
        assert await seats.seat_map(NO_DB, state(3)) is mine  # the same transaction
    assert EVENT not in seats._maps  # rolled back: gone, read again next time
    seats._keep(EVENT, 4, mine)
    with seats.maps_of_transaction() as pending:
        await seats.seat_map(NO_DB, state(4))
        seats.kept_after_commit(pending)
    assert seats._maps[EVENT] == (4, mine)
    seats.forget(EVENT)


def test_standing_places_short_of_the_quantity_are_sold_out_not_apart() -> None:
    plan = SeatMap([PlanSection("GA", (), capacity=1)])
    assert plan.best_available(2).verdict is Verdict.SOLD_OUT
    assert plan.best_available(1).verdict is Verdict.GRANTED
