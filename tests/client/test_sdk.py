"""The client SDK against the local stack, through nginx, as a new user
would use it: one ``TicketingClient`` per customer, a token, an event id."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from ticketing.v1 import gateway_service_pb2 as gw
from ticketing.v1 import gateway_service_pb2_grpc as gw_grpc
from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_client import (
    Accepted,
    Cancelled,
    Confirmed,
    Held,
    IdempotencyKeyReused,
    InvalidArgument,
    Money,
    NoSeatsTogether,
    NotFound,
    QueueUpdate,
    RetryPolicy,
    SaleNotOpen,
    Seat,
    SeatTaken,
    SoldOut,
    TicketingClient,
    Unauthenticated,
    Update,
)
from ticketing_tools.stack import LocalStack

from ..helpers import (
    Reservations,
    consumers_paused,
    create_event,
    create_priced_event,
    get_event,
    token,
)


@asynccontextmanager
async def customer(stack: LocalStack, name: str) -> AsyncIterator[TicketingClient]:
    """A client for a customer of its own (a fresh subject per test run)."""
    subject = f"{name}-{uuid.uuid4().hex[:8]}"

    async def current_token() -> str:  # as a client with a token refresher passes it
        return token(subject)

    async with TicketingClient(stack.endpoint, token=current_token) as client:
        yield client


async def test_reserve_and_wait_confirms_seats_of_a_free_event(
    stack: LocalStack, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=5, per_user_limit=4)
    async with customer(stack, "sdk-free") as client:
        outcome = await client.reserve_and_wait(event.event_id, 2)
    assert isinstance(outcome, Confirmed)
    assert (outcome.event_id, outcome.quantity, outcome.settled) == (event.event_id, 2, True)
    assert outcome.amount is None and outcome.version >= 2
    assert (await get_event(reservations, event.event_id)).confirmed == 2


async def test_a_sold_out_event_is_a_sold_out_outcome_then_an_immediate_answer(
    stack: LocalStack, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=1, per_user_limit=1)
    async with customer(stack, "sdk-one") as one, customer(stack, "sdk-other") as other:
        # Both queued before either is decided (the consumers frozen until
        # both have their place in line): the queue decides one each way.
        queued = [asyncio.Event(), asyncio.Event()]

        def placed_in_line(placed: asyncio.Event) -> Callable[[object], None]:
            return lambda _: placed.set()

        with consumers_paused(stack):
            calls = [
                asyncio.create_task(
                    client.reserve_and_wait(event.event_id, 1, on_update=placed_in_line(placed))
                )
                for client, placed in zip((one, other), queued, strict=True)
            ]
            async with asyncio.timeout(30):
                for placed in queued:
                    await placed.wait()
        outcomes = await asyncio.gather(*calls)
    assert sorted(type(o).__name__ for o in outcomes) == ["Confirmed", "SoldOut"], outcomes
    decided = next(o for o in outcomes if isinstance(o, SoldOut))
    assert decided.version >= 2 and decided.reservation is not None
    async with customer(stack, "sdk-late") as late:
        # Answered by the gateways themselves once they have re-read the
        # event (version 0: nothing was stored, there is nothing to watch).
        async with asyncio.timeout(15):
            while True:
                outcome = await late.reserve_and_wait(event.event_id, 1)
                assert isinstance(outcome, SoldOut), outcome
                if outcome.version == 0:
                    break
                await asyncio.sleep(0.1)
    assert outcome.settled and outcome.reservation is None
    assert (await get_event(reservations, event.event_id)).confirmed == 1


async def test_a_priced_event_holds_the_seats_until_a_deadline(
    stack: LocalStack, reservations: Reservations
) -> None:
    event = await create_priced_event(reservations, capacity=4, hold_s=60, price_minor=4_900)
    async with customer(stack, "sdk-payer") as client:
        before = datetime.now(UTC)
        outcome = await client.reserve_and_wait(event.event_id, 2)
        assert isinstance(outcome, Held), outcome
        assert outcome.amount == Money("EUR", 9_800)
        assert not outcome.settled
        slack = timedelta(seconds=5)
        assert before + timedelta(seconds=60) - slack < outcome.deadline
        assert outcome.deadline <= datetime.now(UTC) + timedelta(seconds=60) + slack
        assert (await get_event(reservations, event.event_id)).held == 2

        # The watch goes on from the hold: an administrator cancels it.
        await reservations.CancelReservation(
            rs.CancelReservationRequest(reservation_id=outcome.reservation_id), timeout=10
        )
        updates = [u async for u in client.watch(outcome.reservation_id)]
    assert isinstance(updates[-1], Cancelled) and updates[-1].settled
    versions = [u.version for u in updates]
    assert versions == sorted(set(versions))  # each state once, in order


async def test_the_same_key_is_the_same_reservation(
    stack: LocalStack, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=5, per_user_limit=4)
    key = f"sdk-key-{uuid.uuid4().hex}"
    async with customer(stack, "sdk-retry") as client:
        first = await client.reserve(event.event_id, 2, idempotency_key=key)
        again = await client.reserve(event.event_id, 2, idempotency_key=key)
        assert isinstance(first, Accepted) and isinstance(again, Accepted)
        assert again.reservation_id == first.reservation_id
        outcome = await client.reserve_and_wait(event.event_id, 2, idempotency_key=key)
        assert isinstance(outcome, Confirmed)
        assert outcome.reservation_id == first.reservation_id
        with pytest.raises(IdempotencyKeyReused) as reused:
            await client.reserve(event.event_id, 3, idempotency_key=key)
    assert (reused.value.reservation_id, reused.value.first_quantity) == (
        first.reservation_id,
        2,
    )
    # Three calls with the key took the seats once.
    assert (await get_event(reservations, event.event_id)).confirmed == 2


async def test_the_place_in_line_reaches_on_update_while_queued(
    stack: LocalStack, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=3, per_user_limit=1)
    await reservations.PauseSale(rs.PauseSaleRequest(event_id=event.event_id), timeout=10)
    async with (
        customer(stack, "sdk-first") as first,
        customer(stack, "sdk-second") as second,
        customer(stack, "sdk-third") as third,
    ):
        ahead = [await c.reserve(event.event_id, 1) for c in (first, second)]
        assert all(isinstance(a, Accepted) for a in ahead)
        seen: list[Update] = []
        waiting = asyncio.create_task(
            third.reserve_and_wait(event.event_id, 1, on_update=seen.append)
        )

        def places() -> list[QueueUpdate]:
            return [u for u in seen if isinstance(u, QueueUpdate)]

        # Paused: the notifier places it behind the two, with no estimate.
        async with asyncio.timeout(20):
            while not any(u.version >= 1 and u.position == 2 for u in places()):
                assert not waiting.done(), waiting
                await asyncio.sleep(0.05)
        while_paused = places()
        await reservations.ResumeSale(rs.ResumeSaleRequest(event_id=event.event_id), timeout=10)
        outcome = await asyncio.wait_for(waiting, 30)

    assert isinstance(outcome, Confirmed)
    reserve_figure = while_paused[0]
    assert (reserve_figure.version, reserve_figure.position) == (0, 2)
    assert all(u.estimated_wait is None for u in while_paused)
    positions = [u.position for u in places() if u.position is not None]
    assert positions == sorted(positions, reverse=True), positions  # the line only moves up
    assert {u.reservation_id for u in places()} == {outcome.reservation_id}


async def test_refusals_raise_typed_errors_with_their_reasons(
    stack: LocalStack, reservations: Reservations
) -> None:
    async with customer(stack, "sdk-errors") as client:
        with pytest.raises(InvalidArgument) as bad:
            await client.reserve("nope", 0)
        assert bad.value.reason == "INVALID_REQUEST"
        assert {v.field for v in bad.value.field_violations} == {"event_id", "quantity"}

        with pytest.raises(NotFound) as missing:
            await client.reserve(str(uuid.uuid4()), 1)
        assert missing.value.reason == "EVENT_NOT_FOUND"

        event = await create_event(reservations, capacity=2, per_user_limit=1)
        later = pb.Event(event_id=event.event_id)
        later.sale_start_time.FromDatetime(datetime.now(UTC) + timedelta(days=1))
        await reservations.UpdateEvent(
            rs.UpdateEventRequest(event=later, update_mask=FieldMask(paths=["sale_start_time"])),
            timeout=10,
        )
        with pytest.raises(SaleNotOpen) as early:
            await client.reserve(event.event_id, 1)
        assert early.value.reason == "SALE_NOT_STARTED"
        assert early.value.metadata["event_id"] == event.event_id

    async with TicketingClient(stack.endpoint, token="not-a-token") as stranger:
        with pytest.raises(Unauthenticated) as unknown:
            await stranger.reserve(event.event_id, 1)
    assert unknown.value.reason == "TOKEN_INVALID"


def seating(sections: dict[str, tuple[int, int]]) -> pb.SeatingPlan:
    """Sections of ``(rows, seats)``, seat ids ``<section>-<row>-<n>`` along
    each row, and a standing section ``floor`` of 10 places last."""
    plan = pb.SeatingPlan()
    for section_id, (rows, seats) in sections.items():
        section = plan.sections.add(section_id=section_id, name=f"Section {section_id}")
        for r in range(1, rows + 1):
            section.rows.add(
                row_id=f"{section_id}-{r}",
                seat_ids=[f"{section_id}-{r}-{n}" for n in range(1, seats + 1)],
            )
    plan.sections.add(section_id="floor", name="Floor", capacity=10)
    return plan


def together(seats: tuple[Seat, ...], plan: pb.SeatingPlan) -> bool:
    """All in one row, next to each other in the row's order of the plan."""
    rows = {(s.section_id, s.row_id) for s in seats}
    if len(rows) != 1:
        return False
    (section_id, row_id) = rows.pop()
    section = next(x for x in plan.sections if x.section_id == section_id)
    order = list(next(r for r in section.rows if r.row_id == row_id).seat_ids)
    places = sorted(order.index(s.seat_id) for s in seats)
    return places == list(range(places[0], places[0] + len(places)))


async def test_reserve_and_wait_gives_seats_together_in_the_section_asked_for(
    stack: LocalStack, reservations: Reservations
) -> None:
    plan = seating({"A": (2, 8), "B": (2, 6), "C": (1, 3)})
    event = (
        await reservations.CreateEvent(
            rs.CreateEventRequest(name="SDK seated", per_user_limit=4, seating_plan=plan),
            timeout=10,
        )
    ).event
    assert event.seated and event.capacity == 16 + 12 + 3 + 10
    async with customer(stack, "sdk-pair") as pair, customer(stack, "sdk-chooser") as chooser:
        outcome = await pair.reserve_and_wait(event.event_id, 2, section_id="B", wait_s=30)
        assert isinstance(outcome, Confirmed), outcome
        assert outcome.quantity == 2 and len(outcome.seats) == 2
        assert {s.section_id for s in outcome.seats} == {"B"}
        assert together(outcome.seats, plan), outcome.seats
        # The first pair of a fresh section gets the middle of its front row.
        assert {s.seat_id for s in outcome.seats} == {"B-1-3", "B-1-4"}

        # The seats are the pair's: asking for one of them is SEAT_TAKEN.
        taken = await chooser.reserve_and_wait(
            event.event_id, 0, seat_ids=[outcome.seats[0].seat_id], wait_s=30
        )
        assert isinstance(taken, SeatTaken), taken
        # With the middle of a row of 3 gone, 2 seats are left but not together.
        middle = await chooser.reserve_and_wait(event.event_id, 1, seat_ids=["C-1-2"], wait_s=30)
        assert isinstance(middle, Confirmed) and middle.seats == (Seat("C", "C-1", "C-1-2"),)
        apart = await chooser.reserve_and_wait(event.event_id, 2, section_id="C", wait_s=30)
        assert isinstance(apart, NoSeatsTogether), apart
        standing = await chooser.reserve_and_wait(event.event_id, 2, section_id="floor", wait_s=30)
        assert isinstance(standing, Confirmed)
        assert standing.seats == (Seat("floor"), Seat("floor"))
    sold = await get_event(reservations, event.event_id)
    assert sold.confirmed == 2 + 1 + 2


class FlakyGateway(gw_grpc.GatewayServiceServicer):
    """Refuses the first Reserve as a proxy without an upstream would."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def Reserve(
        self, request: gw.ReserveRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> gw.ReserveResponse:
        self.keys.append(request.idempotency_key)
        if len(self.keys) == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "no upstream")
        return gw.ReserveResponse(reservation_id="r-1", status=pb.RESERVATION_STATUS_QUEUED)

    async def ReserveSync(
        self, request: gw.ReserveSyncRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> gw.ReserveSyncResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not here")


async def test_the_channel_itself_resends_a_reserve_refused_before_any_answer() -> None:
    """The service config's retry policy, on a real gRPC server: one call of
    the client's (it retries nothing itself here) reaches the server twice,
    with the same key."""
    flaky = FlakyGateway()
    server = grpc.aio.server()
    gw_grpc.add_GatewayServiceServicer_to_server(flaky, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        once = RetryPolicy(max_attempts=1)
        async with TicketingClient(f"127.0.0.1:{port}", token="t", retry=once) as client:
            answer = await client.reserve(str(uuid.uuid4()), 1, idempotency_key="same")
    finally:
        await server.stop(None)
    assert isinstance(answer, Accepted) and answer.reservation_id == "r-1"
    assert flaky.keys == ["same", "same"]
