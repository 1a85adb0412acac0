"""The ticket rush: 2,000 users (one in ten retrying), 100 seats, through nginx,
outcomes streamed."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg

from ticketing.v1 import reservation_pb2 as pb
from ticketing_tools.ledger import reconcile
from ticketing_tools.stack import LocalStack

from ..helpers import (
    CONFIRMED,
    QUEUED,
    REJECTED,
    SOLD_OUT,
    Reservations,
    authorized,
    create_event,
    gateway_stub,
    get_event,
    notifier_stub,
    queue_drained,
    reserve,
    watch,
)

USERS = 2_000
SEATS = 100
CHANNELS = 8  # spread the users over several HTTP/2 connections, as real clients are


async def test_rush_sells_exactly_the_seats_and_streams_every_outcome(
    stack: LocalStack, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=SEATS, per_user_limit=1)
    channels = [authorized(stack.endpoint) for _ in range(CHANNELS)]
    try:
        gateways = [gateway_stub(ch) for ch in channels]
        notifiers = [notifier_stub(ch) for ch in channels]

        async def user(n: int) -> tuple[str, list[pb.Reservation], int]:
            """The reservation id, what the stream said, and how many of the
            user's calls were queued (a call the gateway answered sold out
            itself is queued nowhere)."""
            lane = n % CHANNELS
            attempts = 2 if n % 10 == 0 else 1  # one user in ten retries at once
            replies = await asyncio.gather(
                *(
                    reserve(
                        gateways[(lane + a) % CHANNELS],
                        event.event_id,
                        f"user-{n}",
                        key=f"rush-{n}",
                    )
                    for a in range(attempts)
                )
            )
            assert len({r.reservation_id for r in replies}) == 1  # a retry gets the same id
            rid = replies[0].reservation_id
            queued = [r for r in replies if r.status == QUEUED]
            for r in replies:
                if r.status != QUEUED:  # the sold-out fast path, after the sell-out
                    assert (r.status, r.reject_reason) == (REJECTED, SOLD_OUT)
            if not queued:
                return (
                    rid,
                    [
                        pb.Reservation(
                            reservation_id=rid,
                            status=REJECTED,
                            reject_reason=SOLD_OUT,
                            settled=True,
                        )
                    ],
                    0,
                )
            return rid, await watch(notifiers[lane], rid), len(queued)

        results = await asyncio.gather(*(user(n) for n in range(USERS)))
    finally:
        for ch in channels:
            await ch.close(None)

    ids = [rid for rid, *_ in results]
    assert len(set(ids)) == USERS
    finals = {rid: stream[-1] for rid, stream, _ in results}
    for rid, stream, _ in results:
        # Every stream ends on its one terminal state, preceded at most by QUEUED.
        assert [m.reservation_id for m in stream] == [rid] * len(stream)
        assert all(m.status == QUEUED for m in stream[:-1])
    outcomes = Counter((r.status, r.reject_reason) for r in finals.values())
    assert outcomes == {
        (CONFIRMED, pb.REJECT_REASON_UNSPECIFIED): SEATS,
        (REJECTED, SOLD_OUT): USERS - SEATS,
    }
    after = await get_event(reservations, event.event_id)
    assert (after.capacity, after.available, after.confirmed, after.held) == (SEATS, 0, SEATS, 0)

    await queue_drained(stack)
    async with asyncpg.create_pool(stack.postgres_dsn, min_size=1, max_size=2) as pool:
        ledger = await reconcile(stack.kafka, pool, event_id=event.event_id)
    # Every queued record (retries included) is accounted for; the rest were
    # answered sold out by the gateways themselves and queued nowhere.
    queued_calls = sum(calls for *_, calls in results)
    queued_users = sum(1 for *_, calls in results if calls)
    assert ledger.balanced, ledger.missing
    assert ledger.seats_ok
    assert (ledger.accepted, ledger.decided, ledger.unique_reservations) == (
        queued_calls,
        queued_calls,
        queued_users,
    )
    assert queued_users >= SEATS
