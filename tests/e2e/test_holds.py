"""Seat holds, payments, the waitlist and cancellation, from outside through
nginx: what a buyer sees on the stream and what the event's seats say."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
from aiokafka.partitioner import DefaultPartitioner

from ticketing.v1 import notifier_service_pb2 as ns
from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_common.domain import from_timestamp
from ticketing_common.status import reason
from ticketing_tools.ledger import reconcile
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
    create_event,
    create_priced_event,
    get_event,
    hold_for,
    pay,
    reserve,
    watch,
    watch_until,
)

PRICE = 2_500
CAPTURED = pb.PAYMENT_STATUS_CAPTURED
DECLINED = pb.PAYMENT_STATUS_DECLINED
VOIDED = pb.PAYMENT_STATUS_VOIDED
REFUNDED = pb.PAYMENT_STATUS_REFUNDED
REFUNDING = pb.PAYMENT_STATUS_REFUNDING


@pytest.fixture(autouse=True)
async def balanced_after(stack: LocalStack) -> AsyncIterator[None]:
    """Every test here ends with the seats and the money of every event balanced."""
    yield
    pool = await asyncpg.create_pool(stack.postgres_dsn, min_size=1, max_size=2)
    try:
        ledger = await reconcile(stack.kafka, pool)
    finally:
        await pool.close()
    assert ledger.balanced, ledger.missing
    assert ledger.seats_ok, [c for c in ledger.seats if not c.ok]
    assert ledger.money_ok, [c for c in ledger.money if not c.ok]


def held(r: pb.Reservation) -> bool:
    return r.status == HELD


def states(seen: list[pb.Reservation]) -> list[tuple[str, str]]:
    return [
        (
            pb.ReservationStatus.Name(r.status).removeprefix("RESERVATION_STATUS_"),
            pb.PaymentStatus.Name(r.payment_status).removeprefix("PAYMENT_STATUS_"),
        )
        for r in seen
    ]


async def seats(reservations: Reservations, event_id: str) -> tuple[int, int, int, int]:
    event = await get_event(reservations, event_id)
    return event.available, event.held, event.confirmed, event.waitlisted


async def test_a_paid_hold_is_confirmed_and_the_money_captured(
    gateway: Gateway, notifier: Notifier, payments: Payments, reservations: Reservations
) -> None:
    event = await create_priced_event(reservations, capacity=3, hold_s=60)
    assert (event.price.amount_minor, event.hold_ttl.seconds) == (PRICE, 60)
    hold = await hold_for(gateway, notifier, event.event_id, "hana", quantity=2)
    assert hold.amount == pb.Money(currency_code="EUR", amount_minor=2 * PRICE)
    assert hold.HasField("hold_expire_time")
    assert await seats(reservations, event.event_id) == (1, 2, 0, 0)

    payment = await pay(payments, hold.reservation_id, "hana", "test-ok")
    assert payment.amount.amount_minor == 2 * PRICE
    seen = await watch(notifier, hold.reservation_id)
    assert seen[-1].status == CONFIRMED
    assert seen[-1].payment_status == CAPTURED
    assert seen[-1].settled
    assert seen[-1].payment_id == payment.payment_id
    assert await seats(reservations, event.event_id) == (1, 0, 2, 0)

    # The same attempt again is the same payment, and changes nothing.
    again = await pay(payments, hold.reservation_id, "hana", "test-ok")
    assert (again.payment_id, again.status) == (payment.payment_id, CAPTURED)
    # The same key with another method is not that attempt: refused.
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await pay(payments, hold.reservation_id, "hana", "test-declined")
    assert reused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(reused.value) == "IDEMPOTENCY_KEY_REUSED"
    # A new attempt on a confirmed reservation is refused.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await pay(payments, hold.reservation_id, "hana", "test-ok", key="pay-2")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(refused.value) == "RESERVATION_NOT_HELD"
    assert await seats(reservations, event.event_id) == (1, 0, 2, 0)


async def test_a_declined_payment_keeps_the_hold_for_another_method(
    gateway: Gateway, notifier: Notifier, payments: Payments, reservations: Reservations
) -> None:
    event = await create_priced_event(reservations, capacity=1, hold_s=60)
    hold = await hold_for(gateway, notifier, event.event_id, "ivan")
    await pay(payments, hold.reservation_id, "ivan", "test-declined", key="card-1")
    seen = await watch_until(notifier, hold.reservation_id, lambda r: r.payment_status == DECLINED)
    assert seen[-1].status == HELD
    assert not seen[-1].settled

    await pay(payments, hold.reservation_id, "ivan", "test-ok", key="card-2")
    seen = await watch(notifier, hold.reservation_id)
    assert (seen[-1].status, seen[-1].payment_status) == (CONFIRMED, CAPTURED)
    assert await seats(reservations, event.event_id) == (0, 0, 1, 0)


async def test_a_payment_the_provider_never_answers_is_voided_and_the_hold_stays(
    gateway: Gateway, notifier: Notifier, payments: Payments, reservations: Reservations
) -> None:
    event = await create_priced_event(reservations, capacity=1, hold_s=60)
    hold = await hold_for(gateway, notifier, event.event_id, "jade")
    await pay(payments, hold.reservation_id, "jade", "test-timeout", key="t-1")
    seen = await watch_until(notifier, hold.reservation_id, lambda r: r.payment_status == VOIDED)
    assert seen[-1].status == HELD
    assert ("HELD", "VOIDING") in states(seen)
    await pay(payments, hold.reservation_id, "jade", "test-ok", key="t-2")
    seen = await watch(notifier, hold.reservation_id)
    assert (seen[-1].status, seen[-1].payment_status) == (CONFIRMED, CAPTURED)


async def test_a_late_payment_never_revives_an_expired_hold_and_is_given_back(
    gateway: Gateway, notifier: Notifier, payments: Payments, reservations: Reservations
) -> None:
    event = await create_priced_event(reservations, capacity=1, hold_s=1)
    hold = await hold_for(gateway, notifier, event.event_id, "kira")
    # test-slow answers after 3 s: the hold runs out while it authorizes.
    await pay(payments, hold.reservation_id, "kira", "test-slow")
    seen = await watch(notifier, hold.reservation_id)
    assert seen[-1].status == EXPIRED
    assert seen[-1].payment_status == VOIDED
    assert seen[-1].settled
    assert CONFIRMED not in [r.status for r in seen]
    assert await seats(reservations, event.event_id) == (1, 0, 0, 0)


async def test_unpaid_holds_expire_and_their_seats_go_to_waiting_buyers_in_order(
    gateway: Gateway, notifier: Notifier, payments: Payments, reservations: Reservations
) -> None:
    event = await create_priced_event(reservations, capacity=2, hold_s=2)
    payer = await hold_for(gateway, notifier, event.event_id, "ana")
    idler = await hold_for(gateway, notifier, event.event_id, "ben")
    # No seat free, two held: the next buyers wait, in arrival order.
    waiting = [await reserve(gateway, event.event_id, user) for user in ("cai", "dee", "eli")]
    for reply in waiting:
        first = await watch_until(notifier, reply.reservation_id, lambda r: r.version >= 2)
        assert first[-1].status == QUEUED
    assert await seats(reservations, event.event_id) == (0, 2, 0, 3)
    await pay(payments, payer.reservation_id, "ana", "test-ok")

    # Ben does not pay: his seat goes to the first in line, Cai.
    expired = (await watch(notifier, idler.reservation_id))[-1]
    assert expired.status == EXPIRED
    late_by = from_timestamp(expired.update_time) - from_timestamp(idler.hold_expire_time)
    assert late_by.total_seconds() < 2.0  # the expiry bound, with room for a busy machine
    cai = (await watch_until(notifier, waiting[0].reservation_id, held))[-1]
    assert cai.status == HELD
    for reply in waiting[1:]:
        assert (await get_reservation(reservations, reply.reservation_id)).status == QUEUED

    # Cai pays: every held seat is sold, so nobody waits any more.
    await pay(payments, cai.reservation_id, "cai", "test-ok")
    assert (await watch(notifier, cai.reservation_id))[-1].status == CONFIRMED
    for reply in waiting[1:]:
        final = (await watch(notifier, reply.reservation_id))[-1]
        assert (final.status, final.reject_reason) == (REJECTED, SOLD_OUT)
    assert await seats(reservations, event.event_id) == (0, 0, 2, 0)


async def test_holds_expiring_in_a_rush_go_to_waiting_buyers_in_queue_order(
    stack: LocalStack,
    gateway: Gateway,
    notifier: Notifier,
    payments: Payments,
    reservations: Reservations,
) -> None:
    event = await create_priced_event(reservations, capacity=6, hold_s=1.5, per_user_limit=1)
    users = [f"rush-{n}" for n in range(60)]
    # Three in ten do not pay, the first three among them: some holds must
    # run out whatever order the others arrive in.
    payers = {user for n, user in enumerate(users) if n % 10 >= 3}
    first = [await reserve(gateway, event.event_id, user) for user in users[:3]]

    async def buyer(user: str) -> pb.Reservation:
        n = users.index(user)
        reply = first[n] if n < 3 else await reserve(gateway, event.event_id, user)
        if reply.status == REJECTED:  # the gateway's own sold out, once all is paid
            return pb.Reservation(status=REJECTED, reject_reason=reply.reject_reason, settled=True)
        last = None
        paid = False
        async for message in notifier.WatchReservation(
            ns.WatchReservationRequest(reservation_id=reply.reservation_id),
            timeout=120,
            metadata=as_user(user),
        ):
            last = message.reservation
            if last.status == HELD and user in payers and not paid:
                paid = True
                await pay(payments, reply.reservation_id, user, "test-ok")
        assert last is not None
        return last

    finals = dict(zip(users, await asyncio.gather(*(buyer(u) for u in users)), strict=True))
    assert all(r.settled for r in finals.values())
    confirmed = {u for u, r in finals.items() if r.status == CONFIRMED}
    expired = {u for u, r in finals.items() if r.status == EXPIRED}
    assert len(confirmed) == 6
    assert confirmed <= payers  # nobody got a seat without paying
    assert expired and not expired & payers  # every unpaid hold ran out, no paid one did
    assert {r.reject_reason for u, r in finals.items() if r.status == REJECTED} == {SOLD_OUT}
    assert await seats(reservations, event.event_id) == (0, 0, 6, 0)
    # Seats went out in queue order: the holds were granted in the order the
    # requests sit in the queue, the waiting ones after the first winners.
    rows = await stack_rows(
        stack,
        """SELECT source_offset, hold_expires_at FROM reservations
           WHERE event_id = $1 AND hold_expires_at IS NOT NULL""",
        uuid.UUID(event.event_id),
    )
    by_queue = [row["source_offset"] for row in sorted(rows, key=lambda r: r["source_offset"])]
    # (Holds granted in one transaction share their start: within one, the
    # pure decision function serves the queue in order, as its tests show.)
    by_hold = [
        row["source_offset"]
        for row in sorted(rows, key=lambda r: (r["hold_expires_at"], r["source_offset"]))
    ]
    assert len(rows) > 6  # some seats were held more than once
    assert by_hold == by_queue


async def test_a_waitlist_does_not_stall_another_event_on_its_partition(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    busy = await create_priced_event(reservations, capacity=1, hold_s=60)
    partitions = list(range(stack.kafka.partitions))

    def partition(event_id: str) -> int:
        chosen: int = DefaultPartitioner()(event_id.encode(), partitions, partitions)
        return chosen

    # Another event whose requests share the busy one's partition.
    other = await create_event(reservations, capacity=5, per_user_limit=5)
    while partition(other.event_id) != partition(busy.event_id):
        other = await create_event(reservations, capacity=5, per_user_limit=5)
    await hold_for(gateway, notifier, busy.event_id, "vic")
    waiting = await reserve(gateway, busy.event_id, "wes")
    queued = await watch_until(notifier, waiting.reservation_id, lambda r: r.version >= 2)
    assert queued[-1].status == QUEUED

    later = await reserve(gateway, other.event_id, "xan")
    decided = (await watch(notifier, later.reservation_id, timeout=15))[-1]
    assert decided.status == CONFIRMED
    assert (await get_reservation(reservations, waiting.reservation_id)).status == QUEUED
    rows = await stack_rows(
        stack,
        "SELECT DISTINCT source_partition FROM reservations WHERE reservation_id = ANY($1::uuid[])",
        [uuid.UUID(waiting.reservation_id), uuid.UUID(later.reservation_id)],
    )
    assert len(rows) == 1  # one partition: the waiting request did not hold it up


async def stack_rows(stack: LocalStack, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(stack.postgres_dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def get_reservation(reservations: Reservations, reservation_id: str) -> pb.Reservation:
    reply = await reservations.GetReservation(
        rs.GetReservationRequest(reservation_id=reservation_id), timeout=10
    )
    return reply.reservation


async def cancel(reservations: Reservations, reservation_id: str, user: str) -> pb.Reservation:
    reply = await reservations.CancelReservation(
        rs.CancelReservationRequest(reservation_id=reservation_id),
        timeout=10,
        metadata=as_user(user),
    )
    return reply.reservation


async def test_cancelling_a_hold_releases_its_seats_and_twice_is_harmless(
    gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_priced_event(reservations, capacity=2, hold_s=60)
    hold = await hold_for(gateway, notifier, event.event_id, "lee", quantity=2)
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await cancel(reservations, hold.reservation_id, "mallory")
    assert foreign.value.code() == grpc.StatusCode.NOT_FOUND
    cancelled = await cancel(reservations, hold.reservation_id, "lee")
    assert cancelled.status == CANCELLED
    assert await seats(reservations, event.event_id) == (2, 0, 0, 0)
    again = await cancel(reservations, hold.reservation_id, "lee")
    assert (again.status, again.version) == (CANCELLED, cancelled.version)
    assert (await watch(notifier, hold.reservation_id))[-1].status == CANCELLED


async def test_a_cancelled_paid_seat_is_refunded_then_goes_to_the_waiting_buyer(
    gateway: Gateway, notifier: Notifier, payments: Payments, reservations: Reservations
) -> None:
    event = await create_priced_event(reservations, capacity=2, hold_s=60)
    paid = await hold_for(gateway, notifier, event.event_id, "max")
    await pay(payments, paid.reservation_id, "max", "test-ok")
    assert (await watch(notifier, paid.reservation_id))[-1].payment_status == CAPTURED
    await hold_for(gateway, notifier, event.event_id, "uma")  # holds the other seat, unpaid
    # No seat free, one held: Noa waits.
    waiting = await reserve(gateway, event.event_id, "noa")
    queued = await watch_until(notifier, waiting.reservation_id, lambda r: r.version >= 2)
    assert queued[-1].status == QUEUED
    assert await seats(reservations, event.event_id) == (0, 1, 1, 1)

    answer = await cancel(reservations, paid.reservation_id, "max")
    assert (answer.status, answer.payment_status) in {
        (CONFIRMED, REFUNDING),
        (CANCELLED, REFUNDED),
    }
    final = (await watch(notifier, paid.reservation_id))[-1]
    assert (final.status, final.payment_status, final.settled) == (CANCELLED, REFUNDED, True)
    # Refunded first, then the seat went to the first in line.
    noa = (await watch_until(notifier, waiting.reservation_id, held))[-1]
    assert noa.status == HELD
    assert await seats(reservations, event.event_id) == (0, 2, 0, 0)
    # Cancelling again changes nothing.
    again = await cancel(reservations, paid.reservation_id, "max")
    assert (again.status, again.version) == (CANCELLED, final.version)


async def test_a_free_confirmed_reservation_is_cancelled_at_once(
    gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=3, per_user_limit=3)
    reply = await reserve(gateway, event.event_id, "quinn", 2)
    assert (await watch(notifier, reply.reservation_id))[-1].status == CONFIRMED
    cancelled = await cancel(reservations, reply.reservation_id, "quinn")
    assert (cancelled.status, cancelled.settled) == (CANCELLED, True)
    assert await seats(reservations, event.event_id) == (3, 0, 0, 0)


async def test_what_cannot_be_paid_or_cancelled_says_why(
    gateway: Gateway, notifier: Notifier, payments: Payments, reservations: Reservations
) -> None:
    event = await create_priced_event(reservations, capacity=1, hold_s=60)
    hold = await hold_for(gateway, notifier, event.event_id, "rex")
    for method, key, field in (
        ("", "k", "payment_method"),
        ("test-bogus", "k", "payment_method"),
        ("test-ok", "", "idempotency_key"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await pay(payments, hold.reservation_id, "rex", method, key=key)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (bad.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await pay(payments, hold.reservation_id, "sam", "test-ok")
    assert foreign.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await pay(payments, str(uuid.uuid4()), "rex", "test-ok")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert await seats(reservations, event.event_id) == (0, 1, 0, 0)

    with pytest.raises(grpc.aio.AioRpcError) as bad_event:
        await reservations.CreateEvent(
            rs.CreateEventRequest(
                name="no hold",
                capacity=1,
                per_user_limit=1,
                price=pb.Money(currency_code="eur", amount_minor=100),
            ),
            timeout=10,
        )
    assert bad_event.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = bad_event.value.details() or ""
    assert "hold_ttl" in details and "price.currency_code" in details
