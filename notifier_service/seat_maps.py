"""``WatchSeatMap``: a seated event's map, then every change, read once per
event however many watch it.

Every seat change comes with a change of a reservation (a hold, a sale, a
release), and the results feed marks the reservation's event touched; every
``coalesce_s`` the touched events somebody watches have their new changes
read (``seat_changes``, one query per event), kept in a short window in
memory and handed to every watcher. Every watched event is also read every
``refresh_s``, in case a result record was missed. A watcher that falls
behind the window (a slow client, one resuming from an old version) reads
what it missed from PostgreSQL, or the whole map again when those changes
are no longer kept.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import asyncpg
import structlog

from ticketing.v1 import notifier_service_pb2 as pb
from ticketing.v1 import reservation_pb2
from ticketing_common.failures import is_transient
from ticketing_common.storage.seat_maps import changes_after, read_map

log = structlog.get_logger(__name__)

# Changes kept in memory per watched event, and read at most at once.
WINDOW = 1_000
CHANGES_PER_READ = 500


@dataclass
class _Feed:
    head: int  # the newest version read
    recent: deque[reservation_pb2.SeatMapChange] = field(
        default_factory=lambda: deque(maxlen=WINDOW)
    )
    wakers: set[asyncio.Event] = field(default_factory=set)


class SeatMapWatch:
    def __init__(self, pool: asyncpg.Pool, *, coalesce_s: float, refresh_s: float) -> None:
        self._pool = pool
        self._coalesce_s = coalesce_s
        self._refresh_s = refresh_s
        self._feeds: dict[uuid.UUID, _Feed] = {}
        self._touched: set[uuid.UUID] = set()

    def touched(self, event_id: str) -> None:
        key = uuid.UUID(event_id)
        if key in self._feeds:
            self._touched.add(key)

    @property
    def watching(self) -> int:
        return sum(len(f.wakers) for f in self._feeds.values())

    @contextmanager
    def _subscribe(
        self, event_id: uuid.UUID, version: int
    ) -> Iterator[tuple[_Feed, asyncio.Event]]:
        feed = self._feeds.get(event_id)
        if feed is None:
            feed = self._feeds[event_id] = _Feed(head=version)
            # What committed since ``version`` was read may have been
            # announced before there was a feed to tell: read it next round.
            self._touched.add(event_id)
        waker = asyncio.Event()
        feed.wakers.add(waker)
        try:
            yield feed, waker
        finally:
            feed.wakers.discard(waker)
            if not feed.wakers:
                del self._feeds[event_id]

    async def start(
        self, event_id: uuid.UUID, from_version: int
    ) -> tuple[int, reservation_pb2.SeatMap | None, int] | None:
        """Where a watch starts: ``from_version`` if the changes after it are
        kept (no map then), else the whole map; and the event's latest
        version. None if the event is not seated (or does not exist)."""
        async with self._pool.acquire() as conn:
            latest = await conn.fetchval(
                "SELECT seat_version FROM events WHERE event_id = $1 AND seated", event_id
            )
            if latest is None:
                return None
            if (
                0 < from_version <= latest
                and await changes_after(conn, event_id, from_version, limit=1) is not None
            ):
                return from_version, None, latest
            whole = await read_map(conn, event_id)
        return (0, whole, whole.version) if whole is not None else None

    async def watch(
        self,
        event_id: uuid.UUID,
        from_version: int,
        first: reservation_pb2.SeatMap | None,
        latest: int,
    ) -> AsyncIterator[pb.WatchSeatMapResponse]:
        """The stream for one watcher: ``first`` (the map, when the watcher
        does not resume), then every change after it, in version order. A
        new feed starts at ``latest``, not at a resuming watcher's version
        (which reads what it missed from PostgreSQL)."""
        version = from_version
        if first is not None:
            yield pb.WatchSeatMapResponse(seat_map=first)
            version = first.version
        with self._subscribe(event_id, max(version, latest)) as (feed, waker):
            while True:
                behind = feed.recent[0].version if feed.recent else feed.head + 1
                if version + 1 < behind:
                    # Behind the window: from PostgreSQL, or all over again.
                    missed = await self._missed(event_id, version)
                    if missed is None:
                        whole = await self._whole(event_id)
                        version = whole.version
                        yield pb.WatchSeatMapResponse(seat_map=whole)
                        continue
                    changes = missed
                else:
                    changes = [c for c in feed.recent if c.version > version]
                for change in changes:
                    version = change.version
                    yield pb.WatchSeatMapResponse(change=change)
                if changes and version < feed.head:
                    continue
                waker.clear()
                await waker.wait()

    async def _missed(
        self, event_id: uuid.UUID, version: int
    ) -> list[reservation_pb2.SeatMapChange] | None:
        async with self._pool.acquire() as conn:
            return await changes_after(conn, event_id, version)

    async def _whole(self, event_id: uuid.UUID) -> reservation_pb2.SeatMap:
        async with self._pool.acquire() as conn:
            whole = await read_map(conn, event_id)
        assert whole is not None  # it was seated; events are never deleted
        return whole

    async def run(self) -> None:
        refreshed = time.monotonic()
        while True:
            await asyncio.sleep(self._coalesce_s)
            due = time.monotonic() - refreshed >= self._refresh_s
            wanted = set(self._feeds) if due else self._touched & set(self._feeds)
            self._touched.clear()
            if due:
                refreshed = time.monotonic()
            for event_id in wanted:
                try:
                    await self._advance(event_id)
                except Exception as exc:
                    if is_transient(exc):
                        log.warning("seat_map_read_failed", error=repr(exc))
                    else:
                        log.exception("seat_map_read_failed")
                    self._touched.add(event_id)  # again next round

    async def _advance(self, event_id: uuid.UUID) -> None:
        feed = self._feeds.get(event_id)
        if feed is None:
            return
        async with self._pool.acquire() as conn:
            changes = await changes_after(conn, event_id, feed.head, limit=CHANGES_PER_READ)
        if changes is None:
            # The window's start is gone from PostgreSQL too: watchers
            # behind it get the whole map; the feed starts again at the top.
            async with self._pool.acquire() as conn:
                latest = await conn.fetchval(
                    "SELECT seat_version FROM events WHERE event_id = $1", event_id
                )
            feed.recent.clear()
            feed.head = latest
        else:
            feed.recent.extend(changes)
            if changes:
                feed.head = changes[-1].version
            if len(changes) == CHANGES_PER_READ:
                self._touched.add(event_id)  # more to read next round
        for waker in feed.wakers:
            waker.set()
