"""Accepted requests: what each idempotency key was first used for (Redis).

The gateway records a request before it appends it to the queue, and marks it
queued once the broker acknowledged. This gives two things the queue alone
cannot (AIP-155):

* a key reused with other parameters is refused at once, instead of silently
  standing for the first request. The reservation id already binds the user,
  the key and the event, so the parameter left to compare is the quantity;
* ``GetReservation`` answers a request that is queued but not decided yet as
  QUEUED, so polling works.

The record lives ``ttl_s`` (``TICKETING_GATEWAY_IDEMPOTENCY_TTL_S``: longer
than a request can wait in the queue); the decided reservation in PostgreSQL
is the truth after that.
Redis being down must not stop a sale: the gateway then accepts without the
check (the consumer still never applies one reservation id twice).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import redis.asyncio as redis

from ..decisions import Request
from ..domain import Reservation

KEY_PREFIX = "ticketing:accepted:"


class State(StrEnum):
    PENDING = "pending"  # recorded, the broker has not acknowledged (yet)
    QUEUED = "queued"  # the broker acknowledged: the request is in the queue


@dataclass(frozen=True, slots=True)
class Accepted:
    """One recorded request, as first sent."""

    reservation_id: str
    event_id: str
    user_id: str
    quantity: int
    accepted_at: datetime
    state: State

    def as_queued(self) -> Reservation:
        return Reservation.queued(
            self.reservation_id, self.event_id, self.user_id, self.quantity, self.accepted_at
        )


FIELDS = ("event_id", "user_id", "quantity", "accept_us", "state")

# Most writes per round trip: a script runs alone on Redis, so a spike's
# backlog goes in slices that each hold Redis for a few milliseconds at most.
MAX_BATCH = 500

# For each key: records the request (four ARGV values each; the TTL is the
# last ARGV) unless the id is known, then returns what is recorded now, so
# the caller compares the first request's parameters with its own. One call
# for a whole batch of Reserve calls.
_CLAIM_MANY = """
local ttl = ARGV[#ARGV]
local out = {}
for i, key in ipairs(KEYS) do
  local a = (i - 1) * 4
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'event_id', ARGV[a + 1], 'user_id', ARGV[a + 2],
               'quantity', ARGV[a + 3], 'accept_us', ARGV[a + 4], 'state', 'pending')
    redis.call('PEXPIRE', key, ttl)
  end
  for _, value in ipairs(redis.call('HMGET', key, 'event_id', 'user_id', 'quantity',
                                    'accept_us', 'state')) do
    table.insert(out, value)
  end
end
return out
"""

# Marks recorded requests queued; a record that expired meanwhile stays gone.
_MARK_MANY = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'state', 'queued')
  end
end
return #KEYS
"""


class AcceptedRequests:
    """The gateway writes (with ``ttl_s``, and ``run`` going); the reservation
    service only reads.

    Writes are pipelined: calls that arrive while a round trip is out go
    together in the next one. On the hot path of every ``Reserve`` that is one
    Redis round trip per batch instead of two per call, on one connection
    instead of one per concurrent call (which, at 1,000 Reserve/s, ran out of
    connections and skipped the check for some calls; BENCHMARKS.md, section 5).
    """

    def __init__(self, client: redis.Redis, *, ttl_s: float | None = None) -> None:
        self._client = client
        self._ttl_ms = None if ttl_s is None else round(ttl_s * 1000)
        self._waiting: list[tuple[_Write, asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._running = False
        self._sending: list[tuple[_Write, asyncio.Future[Any]]] = []

    async def run(self) -> None:
        """Sends the pipelined writes until cancelled (the composition root
        owns this task)."""
        self._running = True
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                batch = self._waiting[:MAX_BATCH]
                del self._waiting[:MAX_BATCH]
                if self._waiting:
                    self._wake.set()
                if batch:
                    self._sending = batch
                    await self._send(batch)
                    self._sending = []
        finally:
            # Stopped: nobody is left to answer these callers.
            self._running = False
            for _, future in [*self._sending, *self._waiting]:
                future.cancel()

    async def _send(self, batch: list[tuple[_Write, asyncio.Future[Any]]]) -> None:
        claims = [(w, f) for w, f in batch if w.kind is _Kind.CLAIM]
        marks = [(w, f) for w, f in batch if w.kind is _Kind.MARK]
        pipe = self._client.pipeline(transaction=False)
        if claims and self._ttl_ms is not None:  # claim() refuses without a TTL
            args = [value for w, _ in claims for value in w.args]
            pipe.eval(_CLAIM_MANY, len(claims), *(w.key for w, _ in claims), *args, self._ttl_ms)
        if marks:
            pipe.eval(_MARK_MANY, len(marks), *(w.key for w, _ in marks))
        try:
            results = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # noqa: BLE001 - the batch's callers get it and decide
            results = [exc, exc]
        if claims:
            found = results.pop(0)
            width = len(FIELDS)
            for i, (_, future) in enumerate(claims):
                _settle(
                    future,
                    found
                    if isinstance(found, BaseException)
                    else found[i * width : (i + 1) * width],
                )
        if marks:
            for _, future in marks:
                _settle(future, results[0])

    async def _call(self, write: _Write) -> Any:
        if not self._running:
            raise RuntimeError("AcceptedRequests.run() is not running: nothing would be sent")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((write, future))
        self._wake.set()
        return await future

    async def claim(self, request: Request) -> Accepted:
        """Records ``request`` if its reservation id is new, and returns the
        request recorded under that id: this one, or the first one sent."""
        if self._ttl_ms is None:
            raise RuntimeError("a read-only AcceptedRequests records nothing")
        micros = round(request.accepted_at.timestamp() * 1_000_000)
        found = await self._call(
            _Write(
                _Kind.CLAIM,
                KEY_PREFIX + request.reservation_id,
                (request.event_id, request.user_id, request.quantity, micros),
            )
        )
        accepted = _parse(request.reservation_id, found)
        if accepted is None:  # pragma: no cover - the script always returns the fields
            raise RuntimeError(f"accepted request {request.reservation_id} vanished")
        return accepted

    async def mark_queued(self, reservation_id: str) -> None:
        await self._call(_Write(_Kind.MARK, KEY_PREFIX + reservation_id))

    async def get(self, reservation_id: str) -> Accepted | None:
        found = await self._client.hmget(KEY_PREFIX + reservation_id, list(FIELDS))
        return _parse(reservation_id, found)


class _Kind(StrEnum):
    CLAIM = "claim"
    MARK = "mark"


@dataclass(frozen=True, slots=True)
class _Write:
    kind: _Kind
    key: str
    args: tuple[str | int, ...] = ()


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if future.done():  # its caller gave up waiting
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def _parse(reservation_id: str, fields: list[bytes | str | None]) -> Accepted | None:
    event_id, user_id, quantity, accept_us, state = fields
    if event_id is None or user_id is None or quantity is None or accept_us is None:
        return None
    return Accepted(
        reservation_id=reservation_id,
        event_id=_text(event_id),
        user_id=_text(user_id),
        quantity=int(quantity),
        accepted_at=datetime.fromtimestamp(int(accept_us) / 1_000_000, UTC),
        state=State(_text(state or State.PENDING)),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
