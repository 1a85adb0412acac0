"""A seated event's rush with its consumer SIGKILLed mid-rush: the
restarted consumers decide what was left, and in the end every seat is sold
once, every pair sits together, every request has one outcome, and the
ledger checks every seat."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections import Counter

import asyncpg
import grpc

from ticketing.v1 import gateway_service_pb2 as gs
from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_tools.ledger import reconcile
from ticketing_tools.stack import LocalStack

from ..helpers import as_user, gateway_stub, queue_drained, reservations_stub
from .test_faults import alive_consumers, last_decider

BUYERS = 240
# 8 rows of 10: 40 pairs fit; 240 buyers of 2 ask for them.
ROWS, SEATS = 8, 10


async def test_consumer_killed_mid_rush_on_a_seated_event(
    fault_stack: LocalStack, fault_channel: grpc.aio.Channel, fault_pool: asyncpg.Pool
) -> None:
    seating = pb.SeatingPlan()
    section = seating.sections.add(section_id="A", name="Stalls")
    for r in range(1, ROWS + 1):
        section.rows.add(row_id=f"A-{r}", seat_ids=[f"A-{r}-{n}" for n in range(1, SEATS + 1)])
    event = (
        await reservations_stub(fault_channel).CreateEvent(
            rs.CreateEventRequest(name="Seated rush", per_user_limit=2, seating_plan=seating),
            timeout=10,
        )
    ).event
    gateway = gateway_stub(fault_channel)
    queued: list[str] = []
    answered_at_once: list[str] = []

    async def buyer(n: int) -> None:
        key = f"seated-{n}"
        await asyncio.sleep(n * 0.015)  # arrivals over about 3.6 s
        async with asyncio.timeout(60):
            while True:  # the same key until QUEUED: a retry is the same request
                try:
                    reply = await gateway.Reserve(
                        gs.ReserveRequest(event_id=event.event_id, quantity=2, idempotency_key=key),
                        timeout=5,
                        metadata=as_user(f"buyer-{n}"),
                    )
                except grpc.aio.AioRpcError as exc:
                    if exc.code() not in (
                        grpc.StatusCode.UNAVAILABLE,
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                    ):
                        raise
                    continue
                if reply.status == pb.RESERVATION_STATUS_REJECTED:
                    # The gateway saw the sell-out: answered, queued nowhere.
                    assert reply.reject_reason == pb.REJECT_REASON_SOLD_OUT
                    answered_at_once.append(reply.reservation_id)
                else:
                    queued.append(reply.reservation_id)
                return

    rush = asyncio.gather(*(buyer(n) for n in range(BUYERS)))
    event_uuid = uuid.UUID(event.event_id)
    async with asyncio.timeout(60):
        while not await fault_pool.fetchval(
            "SELECT count(*) FROM reservations WHERE event_id = $1", event_uuid
        ):
            await asyncio.sleep(0.02)
    # The decision is committed before its consumer logs it: wait for the line.
    async with asyncio.timeout(30):
        while True:
            try:
                victim = await asyncio.to_thread(last_decider, fault_stack, event.event_id)
                break
            except AssertionError:
                await asyncio.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    decided_at_kill = await fault_pool.fetchval(
        "SELECT count(*) FROM reservations WHERE event_id = $1", event_uuid
    )
    # The kill hit the rush: buyers were still arriving and most undecided.
    assert len(queued) + len(answered_at_once) < BUYERS and decided_at_kill < BUYERS // 2
    await rush
    await asyncio.to_thread(fault_stack.restart, victim)
    assert len(alive_consumers(fault_stack)) >= 1
    await queue_drained(fault_stack, timeout_s=60)

    rows = await fault_pool.fetch(
        "SELECT reservation_id, status, reject_reason, seats FROM reservations WHERE event_id = $1",
        event_uuid,
    )
    # Every request has exactly one outcome, and nothing else is stored.
    assert sorted(str(r["reservation_id"]) for r in rows) == sorted(set(queued))
    assert Counter((r["status"], r["reject_reason"]) for r in rows) == {
        ("CONFIRMED", None): ROWS * SEATS // 2,
        ("REJECTED", "SOLD_OUT"): BUYERS - ROWS * SEATS // 2 - len(answered_at_once),
    }
    reservations = {r["reservation_id"]: r for r in rows if r["status"] == "CONFIRMED"}
    seats: Counter[str] = Counter()
    for row in reservations.values():
        pair = json.loads(row["seats"])
        assert len(pair) == 2 and pair[0][1] == pair[1][1]  # one row
        numbers = sorted(int(seat.rsplit("-", 1)[1]) for _, _, seat in pair)
        assert numbers[1] == numbers[0] + 1  # next to each other
        seats.update(seat for _, _, seat in pair)
    assert len(seats) == ROWS * SEATS and set(seats.values()) == {1}
    ledger = await reconcile(fault_stack.kafka, fault_pool, event_id=event.event_id)
    assert ledger.balanced, ledger.missing
    assert ledger.seats_ok, [c for c in ledger.seats if not c.ok]
