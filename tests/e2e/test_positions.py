"""Queue positions from outside through nginx: what Reserve answers, what
WatchReservation streams while a request waits, and how a priority request
moves the standard ones back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from ticketing.v1 import gateway_service_pb2 as gw
from ticketing.v1 import notifier_service_pb2 as ns
from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_tools.tokens import bearer

from ..helpers import (
    HELD,
    QUEUED,
    TEST_KEY,
    Gateway,
    Notifier,
    Reservations,
    reserve,
    watch_until,
)


class Stream:
    """One WatchReservation stream, read in the background."""

    def __init__(self, notifier: Notifier, reservation_id: str) -> None:
        self.messages: list[ns.WatchReservationResponse] = []
        self._call = notifier.WatchReservation(
            ns.WatchReservationRequest(reservation_id=reservation_id), timeout=60
        )
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._call:
            self.messages.append(message)

    async def until(
        self, done: Callable[[ns.WatchReservationResponse], bool], timeout_s: float = 20
    ) -> ns.WatchReservationResponse:
        """The first message for which ``done`` holds, waiting for it."""
        async with asyncio.timeout(timeout_s):
            while True:
                for message in self.messages:
                    if done(message):
                        return message
                if self._task.done():
                    self._task.result()
                    raise AssertionError(f"the stream ended without it: {self.positions()}")
                await asyncio.sleep(0.02)

    def positions(self) -> list[tuple[str, int]]:
        return [
            (pb.ReservationStatus.Name(m.reservation.status), m.queue_position.position)
            for m in self.messages
        ]

    def close(self) -> None:
        self._call.cancel()


@contextlib.asynccontextmanager
async def streams(notifier: Notifier, ids: list[str]) -> AsyncIterator[list[Stream]]:
    opened = [Stream(notifier, reservation_id) for reservation_id in ids]
    try:
        yield opened
    finally:
        for stream in opened:
            stream.close()


def at(position: int) -> Callable[[ns.WatchReservationResponse], bool]:
    return lambda m: m.reservation.status == QUEUED and m.queue_position.position == position


def held(m: ns.WatchReservationResponse) -> bool:
    return m.reservation.status == HELD


async def test_positions_from_reserve_and_the_watch_fall_to_zero(
    gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    request = rs.CreateEventRequest(
        name="One seat at a time",
        capacity=1,
        per_user_limit=1,
        price=pb.Money(currency_code="EUR", amount_minor=1_000),
    )
    request.hold_ttl.FromSeconds(120)
    event = (await reservations.CreateEvent(request, timeout=10)).event
    await reservations.PauseSale(rs.PauseSaleRequest(event_id=event.event_id), timeout=10)

    users = [f"line-{n}" for n in range(4)]
    replies = [await reserve(gateway, event.event_id, user) for user in users]
    # Nothing is decided while paused: each is numbered behind the others.
    assert all(r.status == QUEUED and r.HasField("queue_position") for r in replies)
    assert [r.queue_position.position for r in replies] == [0, 1, 2, 3]
    for reply in replies:
        await watch_until(notifier, reply.reservation_id, lambda r: r.version >= 2)

    ids = [r.reservation_id for r in replies]
    async with streams(notifier, ids) as watched:
        firsts = [await s.until(lambda m: True) for s in watched]
        assert [m.queue_position.position for m in firsts] == [0, 1, 2, 3]
        # Paused: there is no basis for an estimated wait.
        assert not any(m.queue_position.HasField("estimated_wait") for m in firsts)

        await reservations.ResumeSale(rs.ResumeSaleRequest(event_id=event.event_id), timeout=10)
        await watched[0].until(held)
        for n, stream in enumerate(watched[1:]):
            await stream.until(at(n))
        # Each seat given back goes to the next in line; the others move up.
        for n in range(1, 4):
            await reservations.CancelReservation(
                rs.CancelReservationRequest(reservation_id=ids[n - 1]), timeout=10
            )
            await watched[n].until(held)
            for later, stream in enumerate(watched[n + 1 :]):
                await stream.until(at(later))

        for reply, stream in zip(replies, watched, strict=True):
            waited = [m for m in stream.messages if m.reservation.status == QUEUED]
            served = next(m for m in stream.messages if held(m))
            positions = [reply.queue_position.position] + [
                m.queue_position.position for m in [*waited, served]
            ]
            assert positions == sorted(positions, reverse=True), stream.positions()
            assert positions[-1] == 0, stream.positions()
        # The last in line saw every step (a message may repeat a position
        # when only its estimated wait changed).
        steps = [p for s, p in watched[3].positions() if s == "RESERVATION_STATUS_QUEUED"]
        assert list(dict.fromkeys(steps)) == [3, 2, 1, 0]


async def test_a_priority_request_is_placed_ahead_and_moves_the_standard_ones_back(
    gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = (
        await reservations.CreateEvent(
            rs.CreateEventRequest(
                name="presale", capacity=3, per_user_limit=1, priority_tiers=["vip"]
            ),
            timeout=10,
        )
    ).event
    await reservations.PauseSale(rs.PauseSaleRequest(event_id=event.event_id), timeout=10)
    standard = [await reserve(gateway, event.event_id, f"std-{n}") for n in range(2)]
    for reply in standard:
        await watch_until(notifier, reply.reservation_id, lambda r: r.version >= 2)

    async with streams(notifier, [r.reservation_id for r in standard]) as watched:
        for n, stream in enumerate(watched):
            await stream.until(at(n))
        vip = await gateway.Reserve(
            gw.ReserveRequest(event_id=event.event_id, quantity=1, idempotency_key="vip"),
            timeout=10,
            metadata=bearer(TEST_KEY.mint("vip-1", tier="vip")),
        )
        # The gateway knows no lanes: its figure counts the waitlist and
        # those numbered before; the notifier's is exact.
        assert vip.queue_position.position == 2
        async with streams(notifier, [vip.reservation_id]) as (vip_stream,):
            first = await vip_stream.until(
                lambda m: m.reservation.version >= 2 and m.HasField("queue_position")
            )
            assert first.reservation.priority and first.queue_position.position == 0
        for n, stream in enumerate(watched):
            await stream.until(at(n + 1))
