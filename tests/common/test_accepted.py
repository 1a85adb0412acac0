"""The record of accepted requests against the stack's real Redis: pipelined
claims from many concurrent callers each get the right answer."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as redis

from ticketing_common.decisions import Request
from ticketing_common.storage.accepted import AcceptedRequests, State
from ticketing_common.storage.batched import MAX_BATCH, ScriptBatcher
from ticketing_tools.stack import LocalStack

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
async def accepted(stack: LocalStack) -> AsyncIterator[AcceptedRequests]:
    client = redis.Redis.from_url(stack.redis_url)
    batcher = ScriptBatcher(client)
    records = AcceptedRequests(client, batcher=batcher, ttl_s=60)
    sender = asyncio.create_task(batcher.run())
    try:
        yield records
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        await client.aclose()


def request(reservation_id: str, quantity: int, at: datetime) -> Request:
    return Request(
        reservation_id=reservation_id,
        event_id="00000000-0000-4000-8000-000000000001",
        user_id=f"user-{reservation_id[:8]}",
        quantity=quantity,
        idempotency_key="k",
        accepted_at=at,
    )


async def test_concurrent_claims_each_see_the_first_request_of_their_id(
    accepted: AcceptedRequests,
) -> None:
    # More than one batch's worth, each id claimed twice: first with quantity
    # 1, then (later, same burst) with quantity 2.
    ids = [str(uuid.uuid4()) for _ in range(MAX_BATCH + 100)]
    firsts = [accepted.claim(request(i, 1, T0)) for i in ids]
    seconds = [accepted.claim(request(i, 2, T0 + timedelta(seconds=1))) for i in ids]
    results = await asyncio.gather(*firsts, *seconds)
    assert all(r.quantity == 1 and r.accepted_at == T0 for r in results)
    assert [r.reservation_id for r in results] == ids + ids
    assert all(r.state is State.PENDING for r in results)

    await asyncio.gather(*(accepted.mark_queued(i) for i in ids[:10]))
    states = [(await accepted.get(i)) for i in ids[:12]]
    assert [s.state if s else None for s in states] == [State.QUEUED] * 10 + [State.PENDING] * 2
    assert await accepted.get(str(uuid.uuid4())) is None


async def test_marking_an_unknown_id_records_nothing(accepted: AcceptedRequests) -> None:
    unknown = str(uuid.uuid4())
    await accepted.mark_queued(unknown)
    assert await accepted.get(unknown) is None


async def test_a_reader_cannot_write(stack: LocalStack) -> None:
    client = redis.Redis.from_url(stack.redis_url)
    try:
        with pytest.raises(RuntimeError, match="records nothing"):
            await AcceptedRequests(client).claim(request(str(uuid.uuid4()), 1, T0))
    finally:
        await client.aclose()


async def test_new_requests_are_numbered_in_their_events_line_and_a_retry_keeps_its_number(
    accepted: AcceptedRequests,
) -> None:
    event_id = str(uuid.uuid4())
    ids = [str(uuid.uuid4()) for _ in range(5)]

    def for_event(reservation_id: str) -> Request:
        return dataclasses.replace(request(reservation_id, 1, T0), event_id=event_id)

    numbered = await asyncio.gather(*(accepted.claim(for_event(i)) for i in ids))
    assert [r.sequence for r in numbered] == [1, 2, 3, 4, 5]
    retried = await accepted.claim(for_event(ids[1]), decided_sequence=100)
    assert retried.sequence == 2
    # Redis lost the line but the consumers decided up to 100: it goes on above.
    await accepted.claim(for_event(str(uuid.uuid4())))  # 6
    late = await accepted.claim(for_event(str(uuid.uuid4())), decided_sequence=100)
    after = await accepted.claim(for_event(str(uuid.uuid4())))
    assert (late.sequence, after.sequence) == (101, 102)
