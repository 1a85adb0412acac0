"""Sale control and listing, from outside through nginx: pausing, resuming,
closing and rescheduling a running sale, adding capacity, and paging through
events and reservations."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from ticketing.v1 import gateway_service_pb2 as gw
from ticketing.v1 import notifier_service_pb2 as ns
from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_common.domain import timestamp
from ticketing_common.status import reason
from ticketing_tools.ledger import end_offsets
from ticketing_tools.stack import LocalStack
from ticketing_tools.tokens import bearer

from ..helpers import (
    CONFIRMED,
    HELD,
    LIMIT_EXCEEDED,
    QUEUED,
    REJECTED,
    TEST_KEY,
    Gateway,
    Notifier,
    Reservations,
    as_user,
    consumers_paused,
    create_event,
    create_priced_event,
    get_event,
    queue_drained,
    reserve,
    watch,
    watch_until,
)

SALE_CLOSED = pb.REJECT_REASON_SALE_CLOSED


async def waiting(notifier: Notifier, reservation_id: str) -> pb.Reservation:
    """The reservation once it is on the waitlist (or decided)."""
    return (await watch_until(notifier, reservation_id, lambda r: r.version >= 2))[-1]


async def refused_within(
    gateway: Gateway, notifier: Notifier, event_id: str, user: str, timeout_s: float = 10
) -> grpc.aio.AioRpcError:
    """A refusal of Reserve once every gateway has the new terms (within
    TICKETING_GATEWAY_EVENT_REFRESH_S): four in a row, nginx spreading them
    over the gateways."""
    refusals: list[grpc.aio.AioRpcError] = []
    async with asyncio.timeout(timeout_s):
        while len(refusals) < 4:
            try:
                reply = await reserve(gateway, event_id, user)
            except grpc.aio.AioRpcError as exc:
                refusals.append(exc)
                continue
            refusals.clear()
            # Taken before that gateway knew: the consumer refuses it.
            final = (await watch(notifier, reply.reservation_id))[-1]
            assert (final.status, final.reject_reason) == (REJECTED, SALE_CLOSED)
            await asyncio.sleep(0.1)
    return refusals[-1]


async def test_a_paused_sale_keeps_requests_waiting_in_order_until_it_resumes(
    gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=2, per_user_limit=1)
    paused = await reservations.PauseSale(rs.PauseSaleRequest(event_id=event.event_id), timeout=10)
    assert paused.event.sale_state == pb.SALE_STATE_PAUSED
    replies = [await reserve(gateway, event.event_id, user) for user in ("pa", "pb", "pc")]
    for reply in replies:
        assert (await waiting(notifier, reply.reservation_id)).status == QUEUED
    event_now = await get_event(reservations, event.event_id)
    assert (event_now.available, event_now.waitlisted) == (2, 3)

    resumed = await reservations.ResumeSale(
        rs.ResumeSaleRequest(event_id=event.event_id), timeout=10
    )
    assert resumed.event.sale_state == pb.SALE_STATE_OPEN
    finals = [(await watch(notifier, r.reservation_id))[-1] for r in replies]
    assert [f.status for f in finals] == [CONFIRMED, CONFIRMED, REJECTED]
    assert finals[2].reject_reason == pb.REJECT_REASON_SOLD_OUT


async def test_added_capacity_goes_to_the_waiting_buyers_at_once(
    gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_priced_event(reservations, capacity=1, hold_s=60, per_user_limit=1)
    first = await reserve(gateway, event.event_id, "ca")
    assert await watch_until(notifier, first.reservation_id, lambda r: r.status == HELD)
    later = await reserve(gateway, event.event_id, "cb")
    assert (await waiting(notifier, later.reservation_id)).status == QUEUED

    updated = await reservations.UpdateEvent(
        rs.UpdateEventRequest(
            event=pb.Event(event_id=event.event_id, capacity=2),
            update_mask=FieldMask(paths=["capacity"]),
        ),
        timeout=10,
    )
    assert (updated.event.capacity, updated.event.available, updated.event.held) == (2, 0, 2)
    served = await watch_until(notifier, later.reservation_id, lambda r: r.status == HELD)
    assert served[-1].status == HELD


async def test_a_customer_queueing_during_a_pause_owns_at_most_the_limit_after_resume(
    gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=20, per_user_limit=2)
    await reservations.PauseSale(rs.PauseSaleRequest(event_id=event.event_id), timeout=10)
    replies = [await reserve(gateway, event.event_id, "scalper") for _ in range(12)]
    while_paused = [await waiting(notifier, r.reservation_id) for r in replies]
    # Counted at decision, pause or not: two wait, the rest are refused.
    assert [(r.status, r.reject_reason) for r in while_paused] == [(QUEUED, 0)] * 2 + [
        (REJECTED, LIMIT_EXCEEDED)
    ] * 10
    assert (await get_event(reservations, event.event_id)).waitlisted == 2

    await reservations.ResumeSale(rs.ResumeSaleRequest(event_id=event.event_id), timeout=10)
    finals = [(await watch(notifier, r.reservation_id))[-1] for r in replies]
    assert [f.status for f in finals].count(CONFIRMED) == 2
    assert [f.reject_reason for f in finals].count(LIMIT_EXCEEDED) == 10
    after = await get_event(reservations, event.event_id)
    assert (after.available, after.confirmed, after.waitlisted) == (18, 2, 0)


async def test_a_lowered_limit_keeps_what_was_granted_and_refuses_more(
    gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_priced_event(reservations, capacity=3, hold_s=60, per_user_limit=3)
    holds = [await reserve(gateway, event.event_id, "keeper") for _ in range(2)]
    for reply in holds:
        assert await watch_until(notifier, reply.reservation_id, lambda r: r.status == HELD)
    taken = await reserve(gateway, event.event_id, "other")
    assert await watch_until(notifier, taken.reservation_id, lambda r: r.status == HELD)
    # Every seat is held: the keeper's third request waits for one.
    third = await reserve(gateway, event.event_id, "keeper")
    assert (await waiting(notifier, third.reservation_id)).status == QUEUED

    await reservations.UpdateEvent(
        rs.UpdateEventRequest(
            event=pb.Event(event_id=event.event_id, per_user_limit=1),
            update_mask=FieldMask(paths=["per_user_limit"]),
        ),
        timeout=10,
    )
    refused = (await watch(notifier, third.reservation_id))[-1]
    assert (refused.status, refused.reject_reason) == (REJECTED, LIMIT_EXCEEDED)
    for reply in holds:  # granted before the change: kept
        kept = (await watch_until(notifier, reply.reservation_id, lambda r: True))[-1]
        assert kept.status == HELD
    fourth = await reserve(gateway, event.event_id, "keeper")
    final = (await watch(notifier, fourth.reservation_id))[-1]
    assert (final.status, final.reject_reason) == (REJECTED, LIMIT_EXCEEDED)
    after = await get_event(reservations, event.event_id)
    assert (after.held, after.waitlisted, after.per_user_limit) == (3, 0, 1)


async def test_closing_a_sale_refuses_the_waiting_and_then_the_gateways_queue_nothing(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=5, per_user_limit=1)
    await reservations.PauseSale(rs.PauseSaleRequest(event_id=event.event_id), timeout=10)
    queued = await reserve(gateway, event.event_id, "za")
    assert (await waiting(notifier, queued.reservation_id)).status == QUEUED
    closed = await reservations.CloseSale(rs.CloseSaleRequest(event_id=event.event_id), timeout=10)
    assert closed.event.sale_state == pb.SALE_STATE_CLOSED
    final = (await watch(notifier, queued.reservation_id))[-1]
    assert (final.status, final.reject_reason) == (REJECTED, SALE_CLOSED)

    refusal = await refused_within(gateway, notifier, event.event_id, "zb")
    assert refusal.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(refusal) == "SALE_CLOSED"
    before = await end_offsets(stack.kafka, stack.kafka.requests_topic)
    for user in ("zc", "zd", "ze"):
        with pytest.raises(grpc.aio.AioRpcError):
            await reserve(gateway, event.event_id, user)
    assert await end_offsets(stack.kafka, stack.kafka.requests_topic) == before

    with pytest.raises(grpc.aio.AioRpcError) as reopened:
        await reservations.ResumeSale(rs.ResumeSaleRequest(event_id=event.event_id), timeout=10)
    assert reopened.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (await get_event(reservations, event.event_id)).available == 5


async def test_outside_its_window_a_sale_queues_nothing(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    now = datetime.now(UTC)
    request = rs.CreateEventRequest(name="later", capacity=3, per_user_limit=1)
    request.sale_start_time.CopyFrom(timestamp(now + timedelta(hours=1)))
    event = (await reservations.CreateEvent(request, timeout=10)).event
    before = await end_offsets(stack.kafka, stack.kafka.requests_topic)
    with pytest.raises(grpc.aio.AioRpcError) as early:
        await reserve(gateway, event.event_id, "wa", key="wa-1")
    assert (early.value.code(), reason(early.value)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "SALE_NOT_STARTED",
    )
    assert await end_offsets(stack.kafka, stack.kafka.requests_topic) == before

    # Rescheduled to have started a second ago and to end in a minute.
    moved = pb.Event(event_id=event.event_id)
    moved.sale_start_time.CopyFrom(timestamp(now - timedelta(seconds=1)))
    moved.sale_end_time.CopyFrom(timestamp(now + timedelta(minutes=1)))
    await reservations.UpdateEvent(
        rs.UpdateEventRequest(
            event=moved, update_mask=FieldMask(paths=["sale_start_time", "sale_end_time"])
        ),
        timeout=10,
    )
    async with asyncio.timeout(10):
        while True:  # until the gateways have re-read the terms
            try:
                # The same key as the refused call: a refusal recorded nothing.
                reply = await reserve(gateway, event.event_id, "wa", key="wa-1")
                break
            except grpc.aio.AioRpcError as exc:
                assert reason(exc) == "SALE_NOT_STARTED"
                await asyncio.sleep(0.1)
    assert (await watch(notifier, reply.reservation_id))[-1].status == CONFIRMED

    ended = rs.CreateEventRequest(name="over", capacity=3, per_user_limit=1)
    ended.sale_end_time.CopyFrom(timestamp(now - timedelta(seconds=1)))
    over = (await reservations.CreateEvent(ended, timeout=10)).event
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await reserve(gateway, over.event_id, "wc")
    assert reason(late.value) == "SALE_ENDED"


async def test_sale_control_is_for_administrators_and_checks_what_it_changes(
    reservations: Reservations,
) -> None:
    event = await create_event(reservations, capacity=3, per_user_limit=1)
    for call in (
        reservations.PauseSale(
            rs.PauseSaleRequest(event_id=event.event_id), timeout=10, metadata=as_user("cust")
        ),
        reservations.UpdateEvent(
            rs.UpdateEventRequest(
                event=pb.Event(event_id=event.event_id, capacity=9),
                update_mask=FieldMask(paths=["capacity"]),
            ),
            timeout=10,
            metadata=as_user("cust"),
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await call
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    for paths, fields in (([], "update_mask"), (["held"], "update_mask")):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await reservations.UpdateEvent(
                rs.UpdateEventRequest(
                    event=pb.Event(event_id=event.event_id), update_mask=FieldMask(paths=paths)
                ),
                timeout=10,
            )
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert fields in (bad.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as shrink:
        await reservations.UpdateEvent(
            rs.UpdateEventRequest(
                event=pb.Event(event_id=event.event_id, capacity=0, per_user_limit=2),
                update_mask=FieldMask(paths=["capacity", "per_user_limit"]),
            ),
            timeout=10,
        )
    assert shrink.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "event.capacity" in (shrink.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await reservations.PauseSale(rs.PauseSaleRequest(event_id=str(uuid.uuid4())), timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await get_event(reservations, event.event_id)).capacity == 3


async def test_events_page_by_page(reservations: Reservations) -> None:
    created = [
        (await create_event(reservations, capacity=1, per_user_limit=1)).event_id for _ in range(5)
    ]
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await reservations.ListEvents(
            rs.ListEventsRequest(page_size=2, page_token=token), timeout=10
        )
        assert len(page.events) <= 2
        seen.extend(e.event_id for e in page.events)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen[-5:] == created  # oldest first: the newest five close the list
    assert len(seen) == len(set(seen))
    assert pages >= 3
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await reservations.ListEvents(rs.ListEventsRequest(page_token="garbage"), timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in (bad.value.details() or "")


async def test_reservations_page_by_page_an_events_for_admins_and_ones_own_for_customers(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=3, per_user_limit=1)
    users = ["la", "lb", "lc", "ld", "le"]
    # All five queued before any is decided: once the gateways know the
    # event sold out, they would refuse the last two without recording them.
    with consumers_paused(stack):
        replies = [await reserve(gateway, event.event_id, user) for user in users]
    for reply in replies:
        await watch(notifier, reply.reservation_id)

    async def listing(**fields: object) -> tuple[list[pb.Reservation], int]:
        metadata = fields.pop("metadata", None)
        found: list[pb.Reservation] = []
        token, pages = "", 0
        while True:
            page = await reservations.ListReservations(
                rs.ListReservationsRequest(page_token=token, page_size=2, **fields),  # type: ignore[arg-type]
                timeout=10,
                metadata=metadata,  # type: ignore[arg-type]
            )
            found.extend(page.reservations)
            pages += 1
            token = page.next_page_token
            if not token:
                return found, pages

    everyone, pages = await listing(event_id=event.event_id)
    assert [r.user_id for r in everyone] == users and pages == 3
    confirmed, _ = await listing(event_id=event.event_id, statuses=[CONFIRMED])
    assert [r.user_id for r in confirmed] == users[:3]
    rejected, _ = await listing(event_id=event.event_id, statuses=[REJECTED])
    assert [r.user_id for r in rejected] == users[3:]
    own, _ = await listing(metadata=as_user("lb"))
    assert [r.user_id for r in own] == ["lb"]
    # A customer naming an event still sees only their own.
    own_here, _ = await listing(event_id=event.event_id, metadata=as_user("ld"))
    assert [r.user_id for r in own_here] == ["ld"]
    with pytest.raises(grpc.aio.AioRpcError) as no_event:
        await reservations.ListReservations(rs.ListReservationsRequest(), timeout=10)
    assert "event_id" in (no_event.value.details() or "")
    first = await reservations.ListReservations(
        rs.ListReservationsRequest(event_id=event.event_id, page_size=1), timeout=10
    )
    with pytest.raises(grpc.aio.AioRpcError) as mixed:
        await reservations.ListReservations(
            rs.ListReservationsRequest(
                event_id=event.event_id,
                page_size=1,
                page_token=first.next_page_token,
                statuses=[CONFIRMED],
            ),
            timeout=10,
        )
    assert mixed.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_watch_event_follows_a_rush_to_sold_out_in_coalesced_updates(
    gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=10, per_user_limit=1)
    seen: list[pb.Event] = []
    stream = notifier.WatchEvent(ns.WatchEventRequest(event_id=event.event_id), timeout=60)

    async def follow() -> None:
        async for message in stream:
            seen.append(message.event)
            if message.event.available == 0:
                return

    follower = asyncio.create_task(follow())
    while not seen:  # the first message is the current state
        await asyncio.sleep(0.01)
    assert (seen[0].capacity, seen[0].available, seen[0].confirmed) == (10, 10, 0)
    replies = await asyncio.gather(
        *(reserve(gateway, event.event_id, f"rw-{n}") for n in range(40))
    )
    await asyncio.wait_for(follower, 30)
    stream.cancel()
    assert (seen[-1].available, seen[-1].confirmed, seen[-1].held) == (0, 10, 0)
    confirmed = [e.confirmed for e in seen]
    assert confirmed == sorted(confirmed)  # availability only ever shrinks here
    assert len(seen) < len(replies)  # coalesced: fewer messages than decisions


async def test_after_a_sell_out_reserves_are_answered_at_once_and_queue_nothing(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=2, per_user_limit=1)
    winners = [
        await reserve(gateway, event.event_id, user, key=f"{user}-key") for user in ("so-a", "so-b")
    ]
    for reply in winners:
        assert (await watch(notifier, reply.reservation_id))[-1].status == CONFIRMED

    async def fast_refusals(needed: int) -> None:
        """Until ``needed`` answers in a row are the gateways' own sold-out."""
        in_a_row = 0
        async with asyncio.timeout(10):
            while in_a_row < needed:
                reply = await reserve(gateway, event.event_id, f"so-probe-{uuid.uuid4().hex[:6]}")
                if reply.status == REJECTED and reply.reject_reason == pb.REJECT_REASON_SOLD_OUT:
                    in_a_row += 1
                else:
                    in_a_row = 0
                    await watch(notifier, reply.reservation_id)
                    await asyncio.sleep(0.1)

    await fast_refusals(4)  # every gateway knows
    # A winner's retry with its key is not told SOLD_OUT: it is the same
    # request, queued again, and its real outcome stands.
    retried = await reserve(gateway, event.event_id, "so-a", key="so-a-key")
    assert (retried.reservation_id, retried.status) == (winners[0].reservation_id, QUEUED)
    assert (await watch(notifier, retried.reservation_id))[-1].status == CONFIRMED
    await queue_drained(stack)
    before = await end_offsets(stack.kafka, stack.kafka.requests_topic)
    answers: list[tuple[int, int]] = []
    slots = asyncio.Semaphore(200)

    async def one(n: int) -> None:
        async with slots:
            reply = await reserve(gateway, event.event_id, f"so-{n % 100}")
            answers.append((reply.status, reply.reject_reason))

    await asyncio.gather(*(one(n) for n in range(10_000)))
    assert len(answers) == 10_000
    assert set(answers) == {(REJECTED, pb.REJECT_REASON_SOLD_OUT)}
    assert await end_offsets(stack.kafka, stack.kafka.requests_topic) == before

    # A seat comes back: within the gateways' refresh, requests queue again.
    await reservations.CancelReservation(
        rs.CancelReservationRequest(reservation_id=winners[0].reservation_id), timeout=10
    )
    async with asyncio.timeout(10):
        while True:
            reply = await reserve(gateway, event.event_id, f"so-back-{uuid.uuid4().hex[:6]}")
            if reply.status == QUEUED:
                break
            await asyncio.sleep(0.1)
    assert (await watch(notifier, reply.reservation_id))[-1].status == CONFIRMED


async def test_vip_requests_sent_after_a_standard_burst_win_their_seats(
    gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    request = rs.CreateEventRequest(
        name="presale", capacity=5, per_user_limit=1, priority_tiers=["vip"]
    )
    event = (await reservations.CreateEvent(request, timeout=10)).event
    assert list(event.priority_tiers) == ["vip"]
    await reservations.PauseSale(rs.PauseSaleRequest(event_id=event.event_id), timeout=10)
    standard = [await reserve(gateway, event.event_id, f"std-{n}") for n in range(6)]
    vips = [
        await gateway.Reserve(
            gw.ReserveRequest(event_id=event.event_id, quantity=1, idempotency_key="vip"),
            timeout=10,
            metadata=bearer(TEST_KEY.mint(f"vip-{n}", tier="vip")),
        )
        for n in range(3)
    ]
    for reply in [*standard, *vips]:
        assert (await waiting(notifier, reply.reservation_id)).status == QUEUED
    await reservations.ResumeSale(rs.ResumeSaleRequest(event_id=event.event_id), timeout=10)

    vip_finals = [(await watch(notifier, r.reservation_id))[-1] for r in vips]
    assert [(f.status, f.priority) for f in vip_finals] == [(CONFIRMED, True)] * 3
    std_finals = [(await watch(notifier, r.reservation_id))[-1] for r in standard]
    # The standard lane gets what is left, in arrival order.
    assert [f.status for f in std_finals] == [CONFIRMED] * 2 + [REJECTED] * 4
    assert not any(f.priority for f in std_finals)
