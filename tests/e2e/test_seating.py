"""Assigned seating from outside, through nginx: seated events, best
available seats together in queue order, chosen seats, the seat map and its
stream, and every seat checked by the ledger after each test."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import asyncpg
import grpc
import pytest

from ticketing.v1 import gateway_service_pb2 as gs
from ticketing.v1 import notifier_service_pb2 as ns
from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_common.status import reason
from ticketing_tools.ledger import seat_checks
from ticketing_tools.stack import LocalStack

from ..helpers import (
    CANCELLED,
    CONFIRMED,
    EXPIRED,
    HELD,
    QUEUED,
    REJECTED,
    SOLD_OUT,
    Gateway,
    Notifier,
    Payments,
    Reservations,
    as_user,
    consumers_paused,
    get_event,
    pay,
    queue_drained,
    watch,
    watch_until,
)

SEAT_TAKEN = pb.REJECT_REASON_SEAT_TAKEN
NO_SEATS_TOGETHER = pb.REJECT_REASON_NO_SEATS_TOGETHER
AVAILABLE, S_HELD, SOLD, BLOCKED = (
    pb.SEAT_STATE_AVAILABLE,
    pb.SEAT_STATE_HELD,
    pb.SEAT_STATE_SOLD,
    pb.SEAT_STATE_BLOCKED,
)


def plan(
    sections: Sequence[tuple[str, int, int]],
    *,
    accessible: Sequence[str] = (),
    blocked: Sequence[str] = (),
    standing: Sequence[tuple[str, int]] = (),
) -> pb.SeatingPlan:
    """Sections of ``rows`` rows of ``seats`` seats, ids ``<section>-<row>-<n>``
    (rows numbered from 1, the front), then standing sections."""
    out = pb.SeatingPlan()
    for section_id, rows, seats in sections:
        section = out.sections.add(section_id=section_id, name=f"Section {section_id}")
        for r in range(1, rows + 1):
            ids = [f"{section_id}-{r}-{n}" for n in range(1, seats + 1)]
            section.rows.add(
                row_id=f"{section_id}-{r}",
                seat_ids=ids,
                accessible_seat_ids=[s for s in ids if s in accessible],
                blocked_seat_ids=[s for s in ids if s in blocked],
            )
    for section_id, capacity in standing:
        out.sections.add(section_id=section_id, name="Standing", capacity=capacity)
    return out


async def seated_event(
    reservations: Reservations,
    seating: pb.SeatingPlan,
    *,
    per_user_limit: int = 4,
    hold_s: float | None = None,
    price_minor: int = 0,
) -> pb.Event:
    request = rs.CreateEventRequest(
        name="Seated event", per_user_limit=per_user_limit, seating_plan=seating
    )
    if price_minor:
        request.price.CopyFrom(pb.Money(currency_code="EUR", amount_minor=price_minor))
    if hold_s is not None:
        request.hold_ttl.FromMilliseconds(round(hold_s * 1000))
    return (await reservations.CreateEvent(request, timeout=10)).event


async def ask(
    gateway: Gateway,
    event_id: str,
    user: str,
    quantity: int = 0,
    *,
    section_id: str = "",
    seat_ids: Sequence[str] = (),
    accessible: bool = False,
    key: str | None = None,
) -> gs.ReserveResponse:
    return await gateway.Reserve(
        gs.ReserveRequest(
            event_id=event_id,
            quantity=quantity,
            idempotency_key=key or uuid.uuid4().hex,
            section_id=section_id,
            seat_ids=list(seat_ids),
            accessible=accessible,
        ),
        timeout=30,
        metadata=as_user(user),
    )


async def outcome(notifier: Notifier, reservation_id: str) -> pb.Reservation:
    """The reservation once decided (HELD, CONFIRMED or REJECTED)."""
    seen = await watch_until(
        notifier, reservation_id, lambda r: r.status in (HELD, CONFIRMED, REJECTED), timeout=60
    )
    return seen[-1]


async def seat_map(reservations: Reservations, event_id: str) -> pb.SeatMap:
    reply = await reservations.GetSeatMap(rs.GetSeatMapRequest(event_id=event_id), timeout=10)
    return reply.seat_map


def seat_ids(reservation: pb.Reservation) -> list[str]:
    return [s.seat_id for s in reservation.seats]


def together(reservation: pb.Reservation) -> bool:
    """All its seats in one row, next to each other (ids count along the row)."""
    rows = {(s.section_id, s.row_id) for s in reservation.seats}
    numbers = sorted(int(s.seat_id.rsplit("-", 1)[1]) for s in reservation.seats)
    return len(rows) == 1 and numbers == list(range(numbers[0], numbers[0] + len(numbers)))


@pytest.fixture(autouse=True)
async def seats_balanced_after(stack: LocalStack) -> AsyncIterator[None]:
    """Every test here ends with every seat of every event as the ledger
    says it must be."""
    yield
    await queue_drained(stack)
    pool = await asyncpg.create_pool(stack.postgres_dsn, min_size=1, max_size=2)
    try:
        checks = await seat_checks(pool)
    finally:
        await pool.close()
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]


async def test_a_seated_event_gives_pairs_together_best_first_and_chosen_seats_once(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await seated_event(reservations, plan([("A", 2, 10), ("B", 2, 6)]))
    assert (event.seated, event.capacity, event.available) == (True, 32, 32)
    # In a known order: the consumers see them all at once, in this order.
    with consumers_paused(stack):
        first = await ask(gateway, event.event_id, "ann", 2)
        chosen = await ask(gateway, event.event_id, "bob", seat_ids=["A-1-1", "A-1-2"])
        contested = [
            await ask(gateway, event.event_id, f"fan{n}", seat_ids=["A-2-1"]) for n in range(3)
        ]
        in_b = await ask(gateway, event.event_id, "cat", 3, section_id="B")
        second = await ask(gateway, event.event_id, "dan", 2)
    got = {
        name: await outcome(notifier, reply.reservation_id)
        for name, reply in (
            ("first", first),
            ("chosen", chosen),
            ("in_b", in_b),
            ("second", second),
        )
    }
    # The first in the queue gets the middle of the front row of the first section.
    assert seat_ids(got["first"]) == ["A-1-5", "A-1-6"]
    assert [(s.section_id, s.row_id) for s in got["first"].seats] == [("A", "A-1")] * 2
    assert (got["first"].status, got["first"].quantity) == (CONFIRMED, 2)
    assert seat_ids(got["chosen"]) == ["A-1-1", "A-1-2"]
    # The contested seat goes to the earliest request; the others are told it is taken.
    won = [await outcome(notifier, r.reservation_id) for r in contested]
    assert [(w.status, w.reject_reason) for w in won] == [
        (CONFIRMED, 0),
        (REJECTED, SEAT_TAKEN),
        (REJECTED, SEAT_TAKEN),
    ]
    assert seat_ids(won[0]) == ["A-2-1"]
    assert seat_ids(got["in_b"]) == ["B-1-2", "B-1-3", "B-1-4"]
    # Next to the first pair, as near the middle as a pair can be.
    assert seat_ids(got["second"]) in (["A-1-3", "A-1-4"], ["A-1-7", "A-1-8"])
    assert all(together(r) for r in got.values())

    # The seat map agrees with the reservations, seat by seat.
    seats = await seat_map(reservations, event.event_id)
    sold = {s.seat_id for s in seats.seats if s.state == SOLD}
    assert sold == {seat for r in (*got.values(), won[0]) for seat in seat_ids(r)}
    assert len(seats.seats) == 32 and seats.version >= 1
    assert [(c.section_id, c.capacity, c.available, c.sold) for c in seats.sections] == [
        ("A", 20, 13, 7),
        ("B", 12, 9, 3),
    ]
    shown = await get_event(reservations, event.event_id)
    assert (shown.available, shown.confirmed) == (22, 10)


async def test_fragmented_rows_refuse_pairs_with_no_seats_together_never_a_split_pair(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    # One row of 5: seats 2 and 4 sold leave 1, 3 and 5 free, no two together.
    event = await seated_event(reservations, plan([("A", 1, 5)]))
    for seat in ("A-1-2", "A-1-4"):
        sold = await outcome(
            notifier,
            (await ask(gateway, event.event_id, f"u{seat}", seat_ids=[seat])).reservation_id,
        )
        assert sold.status == CONFIRMED
    pair = await outcome(notifier, (await ask(gateway, event.event_id, "pair", 2)).reservation_id)
    assert (pair.status, pair.reject_reason, list(pair.seats)) == (REJECTED, NO_SEATS_TOGETHER, [])
    single = await outcome(notifier, (await ask(gateway, event.event_id, "one", 1)).reservation_id)
    assert single.status == CONFIRMED and seat_ids(single) == ["A-1-3"]
    # Sold out at last: SOLD_OUT rather than NO_SEATS_TOGETHER.
    for user in ("x", "y"):
        await outcome(notifier, (await ask(gateway, event.event_id, user, 1)).reservation_id)
    late = await ask(gateway, event.event_id, "late", 1)
    # Answered by the gateway itself once it has seen the sell-out, else decided.
    last = late if late.status == REJECTED else await outcome(notifier, late.reservation_id)
    assert (last.status, last.reject_reason) == (REJECTED, SOLD_OUT)


async def test_a_rush_of_pairs_sells_every_seat_once_and_every_pair_together(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    # 4 rows of 10: 20 pairs fit exactly; 60 buyers of 2 rush for them.
    event = await seated_event(reservations, plan([("A", 2, 10), ("B", 2, 10)]), per_user_limit=2)
    replies = await asyncio.gather(
        *(ask(gateway, event.event_id, f"rush{n}", 2) for n in range(60))
    )
    # Once the gateway has seen the sell-out it answers SOLD_OUT itself,
    # queueing nothing: those are final as answered.
    at_once = [r for r in replies if r.status == REJECTED]
    assert {r.reject_reason for r in at_once} <= {SOLD_OUT}
    decided = await asyncio.gather(
        *(outcome(notifier, r.reservation_id) for r in replies if r.status != REJECTED)
    )
    winners = [r for r in decided if r.status == CONFIRMED]
    assert len(winners) == 20
    assert all(together(r) for r in winners)
    taken = Counter(seat for r in winners for seat in seat_ids(r))
    assert len(taken) == 40 and set(taken.values()) == {1}
    refused = [r for r in decided if r.status == REJECTED]
    assert len(refused) + len(at_once) == 40
    assert {r.reject_reason for r in refused} <= {SOLD_OUT}
    seats = await seat_map(reservations, event.event_id)
    assert {s.seat_id for s in seats.seats if s.state == SOLD} == set(taken)


async def test_bad_plans_are_refused_naming_the_seat_or_row_and_create_nothing(
    stack: LocalStack, reservations: Reservations
) -> None:
    conn = await asyncpg.connect(stack.postgres_dsn)
    try:
        before = await conn.fetchval("SELECT count(*) FROM events")
        cases = []
        twice = plan([("A", 1, 3)])
        twice.sections[0].rows.add(row_id="A-2", seat_ids=["A-2-1", "A-1-2"])
        cases.append((twice, "seating_plan.sections[0].rows[1].seat_ids[1]", "twice"))
        same_row = plan([("A", 1, 3)])
        same_row.sections[0].rows.add(row_id="A-1", seat_ids=["x1"])
        cases.append((same_row, "seating_plan.sections[0].rows[1].row_id", "twice"))
        stranger = plan([("A", 1, 3)])
        stranger.sections[0].rows[0].blocked_seat_ids.append("B-9-9")
        cases.append(
            (stranger, "seating_plan.sections[0].rows[0].blocked_seat_ids[0]", "not a seat")
        )
        bad_id = plan([("A", 1, 3)])
        bad_id.sections[0].rows[0].seat_ids[2] = "A 1 3"
        cases.append((bad_id, "seating_plan.sections[0].rows[0].seat_ids[2]", "must be"))
        empty = pb.SeatingPlan()
        empty.sections.add(section_id="S")  # neither rows nor places
        cases.append((empty, "seating_plan.sections[0].capacity", "standing"))
        for seating, field, words in cases:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await seated_event(reservations, seating)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in (refused.value.details() or ""), refused.value.details()
            assert words in (refused.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as wrong:
            await reservations.CreateEvent(
                rs.CreateEventRequest(
                    name="x", capacity=7, per_user_limit=1, seating_plan=plan([("A", 1, 3)])
                ),
                timeout=10,
            )
        assert wrong.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "capacity: must be 0 or the seating plan's places (3), got 7" in (
            wrong.value.details() or ""
        )
        assert await conn.fetchval("SELECT count(*) FROM events") == before
    finally:
        await conn.close()


async def test_requests_naming_seats_the_plan_lacks_are_invalid_arguments(
    gateway: Gateway, reservations: Reservations
) -> None:
    event = await seated_event(reservations, plan([("A", 1, 4)]))
    general = (
        await reservations.CreateEvent(
            rs.CreateEventRequest(name="GA", capacity=5, per_user_limit=2), timeout=10
        )
    ).event
    cases = [
        (event.event_id, {"seat_ids": ["A-1-1", "Z-1-1"]}, "seat_ids[1]: event"),
        (event.event_id, {"section_id": "Z", "quantity": 1}, "section_id: event"),
        (
            event.event_id,
            {"seat_ids": ["A-1-1", "A-1-1"]},
            "seat_ids[1]: 'A-1-1' is asked for twice",
        ),
        (event.event_id, {"seat_ids": ["A-1-1"], "quantity": 2}, "quantity: must be 0 or"),
        (event.event_id, {"seat_ids": ["A-1-1"], "section_id": "A"}, "not both"),
        (event.event_id, {"seat_ids": ["A-1-1\n"]}, "seat_ids[0]: is not a seat id"),
        (general.event_id, {"section_id": "A", "quantity": 1}, "has no seating plan"),
        (general.event_id, {"seat_ids": ["A-1-1"]}, "has no seating plan"),
    ]
    for event_id, fields, words in cases:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ask(gateway, event_id, "val", **fields)  # type: ignore[arg-type]
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, fields
        assert words in (refused.value.details() or ""), refused.value.details()
    # The same key with other seats is another request: refused.
    await ask(gateway, event.event_id, "keyed", seat_ids=["A-1-3"], key="k1")
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await ask(gateway, event.event_id, "keyed", seat_ids=["A-1-4"], key="k1")
    assert reused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(reused.value) == "IDEMPOTENCY_KEY_REUSED"
    assert "seats=A-1-3" in (reused.value.details() or "")
    again = await ask(gateway, event.event_id, "keyed", seat_ids=["A-1-3"], key="k1")
    assert again.status == QUEUED
    with pytest.raises(grpc.aio.AioRpcError) as general_map:
        await seat_map(reservations, general.event_id)
    assert general_map.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(general_map.value) == "EVENT_NOT_SEATED"


async def test_accessible_seats_go_only_to_who_asks_and_blocked_ones_never(
    gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await seated_event(
        reservations,
        plan([("A", 1, 4)], accessible=["A-1-1", "A-1-2"], blocked=["A-1-4"]),
        per_user_limit=2,
    )
    assert event.capacity == 3  # the blocked seat is not for sale
    general = await outcome(notifier, (await ask(gateway, event.event_id, "g1", 1)).reservation_id)
    assert seat_ids(general) == ["A-1-3"]
    # Only accessible seats are left: a general request is refused.
    nobody = await outcome(notifier, (await ask(gateway, event.event_id, "g2", 1)).reservation_id)
    assert (nobody.status, nobody.reject_reason) == (REJECTED, SOLD_OUT)
    chosen = await outcome(
        notifier, (await ask(gateway, event.event_id, "g3", seat_ids=["A-1-1"])).reservation_id
    )
    assert (chosen.status, chosen.reject_reason) == (REJECTED, SEAT_TAKEN)
    blocked = await outcome(
        notifier, (await ask(gateway, event.event_id, "b1", seat_ids=["A-1-4"])).reservation_id
    )
    assert (blocked.status, blocked.reject_reason) == (REJECTED, SEAT_TAKEN)
    needs = await outcome(
        notifier, (await ask(gateway, event.event_id, "a1", 2, accessible=True)).reservation_id
    )
    assert seat_ids(needs) == ["A-1-1", "A-1-2"]
    seats = await seat_map(reservations, event.event_id)
    assert [(s.seat_id, s.state, s.accessible) for s in seats.seats] == [
        ("A-1-1", SOLD, True),
        ("A-1-2", SOLD, True),
        ("A-1-3", SOLD, False),
        ("A-1-4", BLOCKED, False),
    ]


async def test_expired_holds_go_to_the_first_waiting_request_they_fit(
    gateway: Gateway, notifier: Notifier, payments: Payments, reservations: Reservations
) -> None:
    # One row of 4, held 3 s: two pairs hold it all; the next pair waits.
    event = await seated_event(
        reservations, plan([("A", 1, 4)]), hold_s=3, price_minor=1_000, per_user_limit=2
    )
    holds = [
        await outcome(
            notifier, (await ask(gateway, event.event_id, u, seat_ids=seats)).reservation_id
        )
        for u, seats in (("h1", ["A-1-1", "A-1-2"]), ("h2", ["A-1-3", "A-1-4"]))
    ]
    assert [h.status for h in holds] == [HELD, HELD]
    assert holds[0].amount.amount_minor == 2_000
    waiting = await ask(gateway, event.event_id, "w1", 2)
    await watch_until(notifier, waiting.reservation_id, lambda r: r.version >= 2)
    seats = await seat_map(reservations, event.event_id)
    assert [s.state for s in seats.seats] == [S_HELD] * 4
    # The first hold is paid, the second runs out: its seats go to the waiting pair.
    await pay(payments, holds[0].reservation_id, "h1", "test-ok")
    served = await outcome(notifier, waiting.reservation_id)
    assert served.status == HELD
    assert sorted(seat_ids(served)) == sorted(seat_ids(holds[1]))
    expired = await watch(notifier, holds[1].reservation_id)
    assert expired[-1].status == EXPIRED
    # Cancelled, its seats are free again.
    cancelled = await reservations.CancelReservation(
        rs.CancelReservationRequest(reservation_id=waiting.reservation_id),
        timeout=10,
        metadata=as_user("w1"),
    )
    assert cancelled.reservation.status == CANCELLED
    seats = await seat_map(reservations, event.event_id)
    by_id = {s.seat_id: s.state for s in seats.seats}
    assert {by_id[s] for s in seat_ids(holds[0])} == {SOLD}
    assert {by_id[s] for s in seat_ids(served)} == {AVAILABLE}


async def test_watch_seat_map_streams_the_map_then_every_change_and_resumes(
    gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await seated_event(reservations, plan([("A", 1, 6)]))
    call = notifier.WatchSeatMap(ns.WatchSeatMapRequest(event_id=event.event_id), timeout=30)
    stream = call.__aiter__()
    first = await stream.__anext__()
    assert first.WhichOneof("update") == "seat_map"
    assert first.seat_map.version == 0 and len(first.seat_map.seats) == 6
    mine = await outcome(notifier, (await ask(gateway, event.event_id, "w", 2)).reservation_id)
    change = (await stream.__anext__()).change
    assert change.version == 1
    assert sorted((s.seat_id, s.state) for s in change.seats) == sorted(
        (seat, SOLD) for seat in seat_ids(mine)
    )
    assert [(c.section_id, c.available, c.sold) for c in change.sections] == [("A", 4, 2)]
    call.cancel()
    await outcome(notifier, (await ask(gateway, event.event_id, "w2", 1)).reservation_id)
    # Resumed from version 1: only what came after, no map.
    resumed = notifier.WatchSeatMap(
        ns.WatchSeatMapRequest(event_id=event.event_id, from_version=1), timeout=30
    )
    update = await resumed.__aiter__().__anext__()
    assert update.WhichOneof("update") == "change" and update.change.version == 2
    resumed.cancel()
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        async for _ in notifier.WatchSeatMap(
            ns.WatchSeatMapRequest(event_id=str(uuid.uuid4())), timeout=10
        ):
            pass
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_section_prices_standing_places_and_the_per_user_limit_in_seats(
    gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    seating = plan([("A", 1, 4)], standing=[("GA", 3)])
    seating.sections[0].price.CopyFrom(pb.Money(currency_code="EUR", amount_minor=5_000))
    event = await seated_event(
        reservations, seating, hold_s=60, price_minor=2_000, per_user_limit=3
    )
    assert event.capacity == 7
    front = await outcome(
        notifier, (await ask(gateway, event.event_id, "ann", 2, section_id="A")).reservation_id
    )
    assert front.status == HELD and front.amount.amount_minor == 2 * 5_000
    # One more seat for ann is within her 3; two more would not be.
    over = await outcome(
        notifier, (await ask(gateway, event.event_id, "ann", 2, section_id="GA")).reservation_id
    )
    assert (over.status, over.reject_reason) == (REJECTED, pb.REJECT_REASON_LIMIT_EXCEEDED)
    standing = await outcome(
        notifier, (await ask(gateway, event.event_id, "ann", 1, section_id="GA")).reservation_id
    )
    assert standing.status == HELD and standing.amount.amount_minor == 2_000
    assert [(s.section_id, s.row_id, s.seat_id) for s in standing.seats] == [("GA", "", "")]
    seats = await seat_map(reservations, event.event_id)
    # Standing places are counted, not listed.
    assert len(seats.seats) == 4
    assert [(c.section_id, c.available, c.held) for c in seats.sections] == [
        ("A", 2, 2),
        ("GA", 2, 1),
    ]
    # Seat ids of a standing section are not the buyer's to choose.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ask(gateway, event.event_id, "bob", seat_ids=["GA~1"])
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_mixed_rush_leaves_no_block_free_that_a_refused_request_asked_for(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    # Rows of 7 (odd: singles get stranded), 1 to 3 seats each, twice the demand.
    event = await seated_event(reservations, plan([("A", 3, 7), ("B", 3, 7)]), per_user_limit=3)
    sizes = [1 + (n * 7) % 3 for n in range(42)]
    replies = await asyncio.gather(
        *(ask(gateway, event.event_id, f"mix{n}", q) for n, q in enumerate(sizes))
    )

    async def final(reply: gs.ReserveResponse) -> tuple[int, pb.Reservation | None]:
        """Its status, and the reservation unless the gateway refused it at once."""
        if reply.status == REJECTED:  # the sold-out fast path
            return reply.status, None
        decided = await outcome(notifier, reply.reservation_id)
        return decided.status, decided

    finals = await asyncio.gather(*(final(r) for r in replies))
    winners = [r for status, r in finals if status == CONFIRMED and r is not None]
    assert all(together(r) for r in winners)
    taken = Counter(seat for r in winners for seat in seat_ids(r))
    assert set(taken.values()) <= {1}
    seats = await seat_map(reservations, event.event_id)
    assert {s.seat_id for s in seats.seats if s.state == SOLD} == set(taken)
    # The longest run of free seats left in any row: no refused request
    # asked for that many or fewer (seats only got taken during the rush).
    longest = 0
    for row_id in {s.row_id for s in seats.seats}:
        run = 0
        for s in (s for s in seats.seats if s.row_id == row_id):
            run = run + 1 if s.state == AVAILABLE else 0
            longest = max(longest, run)
    refused = [q for q, (status, _) in zip(sizes, finals, strict=True) if status == REJECTED]
    assert refused, "the rush asked for more than the venue has"
    assert min(refused) > longest, (sorted(refused), longest)


async def test_an_arena_is_created_through_the_load_balancer_and_its_map_read_whole(
    gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    # 50 sections x 20 rows x 20 seats: a plan of about 250 kB.
    arena = pb.SeatingPlan()
    for s in range(1, 51):
        section = arena.sections.add(section_id=f"S{s:02}", name=f"Block {s}")
        for r in range(1, 21):
            section.rows.add(
                row_id=f"S{s:02}-R{r:02}",
                seat_ids=[f"S{s:02}-R{r:02}-{n:02}" for n in range(1, 21)],
            )
    assert arena.ByteSize() > 200_000
    event = await seated_event(reservations, arena)
    assert event.capacity == 20_000
    mine = await outcome(
        notifier, (await ask(gateway, event.event_id, "fan", 2, section_id="S07")).reservation_id
    )
    assert seat_ids(mine) == ["S07-R01-10", "S07-R01-11"]
    seats = await seat_map(reservations, event.event_id)
    assert len(seats.seats) == 20_000 and len(seats.sections) == 50
    assert [s.seat_id for s in seats.seats if s.state == SOLD] == seat_ids(mine)
    # Past what the reservation service takes, still refused before it is read.
    too_big = rs.CreateEventRequest(name="x" * (5 * 1024 * 1024), per_user_limit=1, capacity=1)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await reservations.CreateEvent(too_big, timeout=30)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
