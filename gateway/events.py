"""Which events exist, without a database round trip per call.

Events are never deleted, so a known event is cached for the life of the
process (only administrators create events). An unknown id is remembered
briefly, so a flood of calls for a bad id costs one query per TTL, and
concurrent misses for one id share one query. Unknown ids are bounded too
(``MAX_UNKNOWN``, oldest forgotten first): a flood of random ids cannot grow
the gateway without bound.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

import asyncpg

from ticketing_common.storage.queries import event_exists

# Unknown event ids remembered at most (a few MB).
MAX_UNKNOWN = 10_000


class EventDirectory:
    def __init__(self, pool: asyncpg.Pool, *, unknown_ttl_s: float) -> None:
        self._pool = pool
        self._unknown_ttl_s = unknown_ttl_s
        self._known: set[str] = set()
        self._unknown_until: OrderedDict[str, float] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[bool]] = {}

    async def exists(self, event_id: str) -> bool:
        if event_id in self._known:
            return True
        until = self._unknown_until.get(event_id)
        if until is not None and until > time.monotonic():
            return False
        lookup = self._inflight.get(event_id)
        if lookup is None:
            # Its own task, shared by every caller that misses meanwhile: a
            # caller that gives up (deadline, disconnect) cancels only its wait.
            lookup = asyncio.create_task(self._lookup(event_id))
            # Retrieved here in case every caller gave up before it finished.
            lookup.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._inflight[event_id] = lookup
        return await asyncio.shield(lookup)

    async def _lookup(self, event_id: str) -> bool:
        try:
            found = await self._query(event_id)
        finally:
            del self._inflight[event_id]
        if found:
            self._known.add(event_id)
            self._unknown_until.pop(event_id, None)
        else:
            self._unknown_until[event_id] = time.monotonic() + self._unknown_ttl_s
            self._unknown_until.move_to_end(event_id)
            while len(self._unknown_until) > MAX_UNKNOWN:
                self._unknown_until.popitem(last=False)
        return found

    async def _query(self, event_id: str) -> bool:
        async with self._pool.acquire(timeout=5) as conn:
            return await event_exists(conn, event_id, timeout_s=5)
