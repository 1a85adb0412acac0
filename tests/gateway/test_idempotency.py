"""The gateway's idempotency check, without a network: what it does with the
first request's record, and what it does when Redis fails or hangs."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
import redis.exceptions
from structlog.testing import capture_logs

from gateway.idempotency import IdempotencyKeys
from ticketing_common.decisions import Request
from ticketing_common.errors import IdempotencyKeyReused
from ticketing_common.storage.accepted import Accepted, AcceptedRequests, State

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def request(quantity: int = 2, at: datetime = NOW) -> Request:
    return Request(
        reservation_id="r-1",
        event_id="e-1",
        user_id="ann",
        quantity=quantity,
        idempotency_key="k-1",
        accepted_at=at,
    )


class Recorded:
    """Stands in for Redis: answers with a fixed first request, or fails."""

    def __init__(self, first: Request | None = None, failure: Exception | None = None) -> None:
        self.first = first
        self.failure = failure
        self.hang = False
        self.marked: list[str] = []

    async def claim(self, sent: Request, *, decided_sequence: int = 0) -> Accepted:
        if self.hang:
            await asyncio.Event().wait()
        if self.failure is not None:
            raise self.failure
        first = self.first or sent
        return Accepted(
            first.reservation_id,
            first.event_id,
            first.user_id,
            first.quantity,
            first.accepted_at,
            State.QUEUED,
            first.sequence,
            first.shape,
        )

    async def mark_queued(self, reservation_id: str) -> None:
        if self.hang:
            await asyncio.Event().wait()
        self.marked.append(reservation_id)


def keys(recorded: Recorded, timeout_s: float = 5.0) -> IdempotencyKeys:
    return IdempotencyKeys(cast(AcceptedRequests, recorded), timeout_s=timeout_s)


async def test_a_new_key_admits_the_request_as_sent() -> None:
    assert await keys(Recorded()).admit(request()) == request()


async def test_a_retry_keeps_the_first_accept_time_and_number() -> None:
    first = dataclasses.replace(request(), sequence=7)
    retry = request(at=NOW + timedelta(seconds=3))
    assert await keys(Recorded(first)).admit(retry) == first


async def test_another_quantity_under_the_key_is_refused_naming_the_first() -> None:
    with pytest.raises(IdempotencyKeyReused) as refused:
        await keys(Recorded(request(quantity=2))).admit(request(quantity=5))
    assert refused.value.metadata == {"reservation_id": "r-1", "quantity": "2"}
    assert refused.value.message == (
        "idempotency_key 'k-1' was used for quantity 2 on this event; "
        "use a new key for another request"
    )


async def test_other_seats_under_the_key_are_refused_naming_the_first() -> None:
    first = dataclasses.replace(request(quantity=2), seat_ids=("A-1-1", "A-1-2"))
    again = dataclasses.replace(request(quantity=2), seat_ids=("A-1-1", "A-1-2"))
    assert await keys(Recorded(first)).admit(again) == first
    with pytest.raises(IdempotencyKeyReused) as refused:
        await keys(Recorded(first)).admit(dataclasses.replace(again, seat_ids=("A-1-2", "A-1-3")))
    assert refused.value.message == (
        "idempotency_key 'k-1' was used for quantity 2 (seats=A-1-1,A-1-2) on this event; "
        "use a new key for another request"
    )
    with pytest.raises(IdempotencyKeyReused):
        await keys(Recorded(first)).admit(dataclasses.replace(again, seat_ids=(), section_id="A"))


async def test_redis_down_admits_without_the_check_and_says_so() -> None:
    with capture_logs() as logged:
        admitted = await keys(Recorded(failure=redis.exceptions.ConnectionError("refused"))).admit(
            request()
        )
    assert admitted == request()
    assert [e["event"] for e in logged] == ["idempotency_check_skipped"]


async def test_a_hanging_redis_costs_at_most_the_timeout() -> None:
    recorded = Recorded()
    recorded.hang = True
    async with asyncio.timeout(2):
        assert await keys(recorded, timeout_s=0.05).admit(request()) == request()


async def test_a_bug_is_not_mistaken_for_an_outage() -> None:
    with pytest.raises(KeyError):
        await keys(Recorded(failure=KeyError("bug"))).admit(request())


async def test_marking_queued_waits_no_longer_than_the_callers_deadline_allows() -> None:
    recorded = Recorded()
    await keys(recorded).queued("r-1", within_s=1.0)
    assert recorded.marked == ["r-1"]
    recorded.hang = True
    with capture_logs() as logged:
        async with asyncio.timeout(2):
            await keys(recorded, timeout_s=5.0).queued("r-2", within_s=0.0)
    assert [e["event"] for e in logged] == ["queued_mark_unconfirmed"]
