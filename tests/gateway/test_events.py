"""The gateway's event directory: unknown ids are remembered, but boundedly."""

from __future__ import annotations

import uuid
from typing import cast

import asyncpg
import pytest

from gateway import events
from gateway.events import EventDirectory


async def test_a_flood_of_unknown_ids_is_remembered_boundedly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []

    async def nothing_exists(self: EventDirectory, event_id: str) -> bool:
        asked.append(event_id)
        return False

    monkeypatch.setattr(events, "MAX_UNKNOWN", 100)
    monkeypatch.setattr(EventDirectory, "_query", nothing_exists)
    directory = EventDirectory(cast(asyncpg.Pool, None), unknown_ttl_s=60)
    ids = [str(uuid.uuid4()) for _ in range(250)]
    for event_id in ids:
        assert not await directory.exists(event_id)
    assert len(directory._unknown_until) == 100
    # The newest are still remembered (no query); the oldest are asked again.
    assert not await directory.exists(ids[-1])
    assert not await directory.exists(ids[0])
    assert asked == [*ids, ids[0]]
