"""The gateway's event directory: unknown ids are remembered, but boundedly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import cast

import asyncpg
import grpc
import pytest

from gateway import events
from gateway.events import EventDirectory, SaleTerms
from ticketing_common.domain import SaleState
from ticketing_common.errors import FailedPrecondition, Reason


async def test_a_flood_of_unknown_ids_is_remembered_boundedly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []

    async def nothing_exists(self: EventDirectory, event_id: str) -> SaleTerms | None:
        asked.append(event_id)
        return None

    monkeypatch.setattr(events, "MAX_UNKNOWN", 100)
    monkeypatch.setattr(EventDirectory, "_query", nothing_exists)
    directory = EventDirectory(cast(asyncpg.Pool, None), unknown_ttl_s=60, refresh_s=1)
    ids = [str(uuid.uuid4()) for _ in range(250)]
    for event_id in ids:
        assert not await directory.exists(event_id)
    assert len(directory._unknown_until) == 100
    # The newest are still remembered (no query); the oldest are asked again.
    assert not await directory.exists(ids[-1])
    assert not await directory.exists(ids[0])
    assert asked == [*ids, ids[0]]


async def test_a_known_events_terms_are_reread_after_the_refresh_and_kept_if_that_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers: list[SaleTerms | Exception] = [
        SaleTerms(SaleState.OPEN, None, None),
        SaleTerms(SaleState.CLOSED, None, None),
        ConnectionRefusedError("database down"),
    ]
    clock = [100.0]
    # The directory's clock only (the event loop keeps its own).
    monkeypatch.setattr(events, "time", SimpleNamespace(monotonic=lambda: clock[0]))

    async def next_answer(self: EventDirectory, event_id: str) -> SaleTerms | None:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(EventDirectory, "_query", next_answer)
    directory = EventDirectory(cast(asyncpg.Pool, None), unknown_ttl_s=60, refresh_s=1)
    event_id = str(uuid.uuid4())
    assert (await directory.terms(event_id)) == SaleTerms(SaleState.OPEN, None, None)
    clock[0] += 0.5  # within the refresh: no query
    assert (await directory.terms(event_id)) == SaleTerms(SaleState.OPEN, None, None)
    clock[0] += 1.0
    closed = await directory.terms(event_id)
    assert closed == SaleTerms(SaleState.CLOSED, None, None)
    with pytest.raises(FailedPrecondition) as refused:
        closed.check(event_id, datetime.now(UTC))
    assert refused.value.reason == Reason.SALE_CLOSED
    clock[0] += 1.5  # the re-read fails: the terms known are used
    assert (await directory.terms(event_id)) == SaleTerms(SaleState.CLOSED, None, None)
    assert answers == []


def test_outside_the_sale_window_nothing_is_taken() -> None:
    now = datetime.now(UTC)
    later = SaleTerms(SaleState.OPEN, now + timedelta(hours=1), None)
    with pytest.raises(FailedPrecondition) as early:
        later.check("e", now)
    assert early.value.reason == Reason.SALE_NOT_STARTED
    over = SaleTerms(SaleState.OPEN, None, now - timedelta(seconds=1))
    with pytest.raises(FailedPrecondition) as late:
        over.check("e", now)
    assert late.value.reason == Reason.SALE_ENDED
    SaleTerms(SaleState.PAUSED, now - timedelta(1), now + timedelta(1)).check("e", now)


def test_a_position_counts_the_waitlist_and_the_numbers_not_decided_before_it() -> None:
    terms = SaleTerms(SaleState.OPEN, None, None, waitlisted=3, decided_sequence=10)
    assert [terms.position(n) for n in (11, 12, 15)] == [3, 4, 7]
    # Decided out of order (another gateway's earlier number came later): no
    # negative places.
    assert terms.position(9) == 3


def test_a_tier_is_refused_unless_standard_or_one_the_event_favours() -> None:
    terms = SaleTerms(SaleState.OPEN, None, None, priority_tiers=frozenset({"vip"}))
    assert terms.tier_refusal("e1", "standard") is None
    assert terms.tier_refusal("e1", "vip") is None
    refused = terms.tier_refusal("e1", "gold")
    assert refused is not None
    assert (refused.code, refused.reason, refused.metadata) == (
        grpc.StatusCode.PERMISSION_DENIED,
        Reason.TIER_NOT_OFFERED,
        {"event_id": "e1", "tier": "gold"},
    )
    assert SaleTerms(SaleState.OPEN, None, None).tier_refusal("e1", "vip") is not None
