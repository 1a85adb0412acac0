"""``WatchEvent``'s live availability: one re-read per watched event, not one
query per watcher.

The results feed marks an event touched whenever one of its reservations
changes; every ``coalesce_s`` the touched events that somebody watches are
re-read in one query, and each watcher gets the new state. Every watched
event is also re-read every ``refresh_s`` (one query for all), which brings
changes no reservation announces (a paused sale, added capacity). A watcher
holds at most one pending update, the newest: a spike of decisions costs a
watcher one message per ``coalesce_s`` at most.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import structlog

from ticketing.v1 import reservation_pb2 as pb
from ticketing_common.domain import Event
from ticketing_common.failures import is_transient
from ticketing_common.storage.queries import EVENT_COLUMNS

log = structlog.get_logger(__name__)


class EventWatch:
    def __init__(self, pool: asyncpg.Pool, *, coalesce_s: float, refresh_s: float) -> None:
        self._pool = pool
        self._coalesce_s = coalesce_s
        self._refresh_s = refresh_s
        self._watchers: defaultdict[str, set[asyncio.Queue[pb.Event]]] = defaultdict(set)
        self._touched: set[str] = set()

    def touched(self, event_id: str) -> None:
        if event_id in self._watchers:
            self._touched.add(event_id)

    @contextmanager
    def subscribe(self, event_id: str) -> Iterator[asyncio.Queue[pb.Event]]:
        queue: asyncio.Queue[pb.Event] = asyncio.Queue(maxsize=1)
        self._watchers[event_id].add(queue)
        try:
            yield queue
        finally:
            watchers = self._watchers[event_id]
            watchers.discard(queue)
            if not watchers:
                del self._watchers[event_id]

    @property
    def watching(self) -> int:
        return sum(len(w) for w in self._watchers.values())

    async def run(self) -> None:
        refreshed = time.monotonic()
        while True:
            await asyncio.sleep(self._coalesce_s)
            due = time.monotonic() - refreshed >= self._refresh_s
            wanted = set(self._watchers) if due else self._touched & set(self._watchers)
            self._touched.clear()
            if due:
                refreshed = time.monotonic()
            if not wanted:
                continue
            try:
                events = await self.read(sorted(wanted))
            except Exception as exc:
                if is_transient(exc):
                    log.warning("event_watch_read_failed", error=repr(exc))
                else:
                    log.exception("event_watch_read_failed")
                self._touched |= wanted  # try again next round
                continue
            for event in events:
                self._publish(event.to_proto())

    async def read(self, event_ids: list[str]) -> list[Event]:
        rows = await self._pool.fetch(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ANY($1::uuid[])",
            [uuid.UUID(e) for e in event_ids],
        )
        return [Event.from_row(row) for row in rows]

    def _publish(self, event: pb.Event) -> None:
        for queue in self._watchers.get(event.event_id, ()):
            if queue.full():
                queue.get_nowait()  # only the newest state matters
            queue.put_nowait(event)
