"""In-process fan-out of reservation updates to watchers, and the set of
requests accepted but not decided yet.

Fan-out is a dict lookup and a ``put_nowait`` per watcher of that id: no task
per message, no task per watcher beyond the RPC's own.

A watcher's queue holds at most ``WATCH_QUEUE`` updates: a client that does
not read loses the oldest ones, never the newest (each update is the whole
state, with a version, so the latest is what matters), and a stalled
stream cannot hold memory without bound.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from ticketing.v1 import reservation_pb2 as pb

WATCH_QUEUE = 16


class WatchHub:
    def __init__(self) -> None:
        self._watchers: defaultdict[str, set[asyncio.Queue[pb.Reservation]]] = defaultdict(set)

    @contextmanager
    def subscribe(self, reservation_id: str) -> Iterator[asyncio.Queue[pb.Reservation]]:
        queue: asyncio.Queue[pb.Reservation] = asyncio.Queue(maxsize=WATCH_QUEUE)
        self._watchers[reservation_id].add(queue)
        try:
            yield queue
        finally:
            watchers = self._watchers[reservation_id]
            watchers.discard(queue)
            if not watchers:
                del self._watchers[reservation_id]

    def publish(self, reservation: pb.Reservation) -> int:
        """Hands ``reservation`` to its watchers; returns how many there are."""
        watchers = self._watchers.get(reservation.reservation_id, ())
        for queue in watchers:
            if queue.full():
                queue.get_nowait()  # the oldest goes; the newest is kept
            queue.put_nowait(reservation)
        return len(watchers)

    @property
    def watching(self) -> int:
        return sum(len(w) for w in self._watchers.values())


class PendingRequests:
    """Accepted requests not decided yet, oldest first, forgotten after a TTL
    or, past ``max_entries``, oldest first (a watcher of a forgotten one is
    answered from PostgreSQL once it is decided)."""

    def __init__(self, ttl_s: float, max_entries: int = 1_000_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, pb.Reservation]] = OrderedDict()

    def add(self, reservation: pb.Reservation) -> None:
        self._entries[reservation.reservation_id] = (time.monotonic(), reservation)
        self._entries.move_to_end(reservation.reservation_id)
        self._expire()

    def discard(self, reservation_id: str) -> None:
        self._entries.pop(reservation_id, None)

    def get(self, reservation_id: str) -> pb.Reservation | None:
        entry = self._entries.get(reservation_id)
        if entry is None or entry[0] < time.monotonic() - self._ttl_s:
            return None
        return entry[1]

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self) -> None:
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        horizon = time.monotonic() - self._ttl_s
        while self._entries:
            added, _ = next(iter(self._entries.values()))
            if added >= horizon:
                break
            self._entries.popitem(last=False)
