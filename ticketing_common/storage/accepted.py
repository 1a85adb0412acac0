"""Accepted requests: what each idempotency key was first used for (Redis).

The gateway records a request before it appends it to the queue, and marks it
queued once the broker acknowledged. This gives two things the queue alone
cannot (AIP-155):

* a key reused with other parameters is refused at once, instead of silently
  standing for the first request. The reservation id already binds the user,
  the key and the event, so the parameters left to compare are the quantity
  and, for a seated event, the section or seats (``Request.shape``);
* ``GetReservation`` answers a request that is queued but not decided yet as
  QUEUED, so polling works.

The record lives ``ttl_s`` (``TICKETING_GATEWAY_IDEMPOTENCY_TTL_S``: longer
than a request can wait in the queue); the decided reservation in PostgreSQL
is the truth after that.
Redis being down must not stop a sale: the gateway then accepts without the
check (the consumer still never applies one reservation id twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import redis.asyncio as redis

from ..decisions import Request
from ..domain import Reservation
from .batched import BatchScript, ScriptBatcher

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
    # Its number in the event's line (0: recorded before numbering).
    sequence: int = 0
    # What it asked for (``Request.shape``).
    shape: str = ""

    def as_queued(self) -> Reservation:
        return Reservation.queued(
            self.reservation_id, self.event_id, self.user_id, self.quantity, self.accepted_at
        )


FIELDS = ("event_id", "user_id", "quantity", "accept_us", "state", "seq")
LINE_PREFIX = "ticketing:line:"

# For each key: records the request (five arguments each; the TTL is the last
# ARGV) unless the id is known, then returns what is recorded now, so the
# caller compares the first request's parameters with its own. A new request
# also gets the next number in its event's line. The fifth argument is the
# highest number the consumers have decided for the event: a line that Redis
# lost (a restart without persistence) starts again above it, so numbers
# never fall behind what was decided.
CLAIM = BatchScript(
    """
local ttl = ARGV[#ARGV]
local out = {}
for i, key in ipairs(KEYS) do
  local a = (i - 1) * 5
  if redis.call('EXISTS', key) == 0 then
    local line = '"""
    + LINE_PREFIX
    + """' .. ARGV[a + 1]
    local seq = redis.call('INCR', line)
    local floor = tonumber(ARGV[a + 5])
    if seq <= floor then
      seq = floor + 1
      redis.call('SET', line, seq)
    end
    redis.call('HSET', key, 'event_id', ARGV[a + 1], 'user_id', ARGV[a + 2],
               'quantity', ARGV[a + 3], 'accept_us', ARGV[a + 4], 'state', 'pending',
               'seq', seq)
    redis.call('PEXPIRE', key, ttl)
  end
  for _, value in ipairs(redis.call('HMGET', key, 'event_id', 'user_id', 'quantity',
                                    'accept_us', 'state', 'seq')) do
    table.insert(out, value)
  end
end
return out
""",
    per_key=5,
    width=len(FIELDS),
)

# Whether each key is recorded (1) or not (0).
KNOWN = BatchScript(
    """
local out = {}
for _, key in ipairs(KEYS) do
  table.insert(out, redis.call('EXISTS', key))
end
return out
""",
    per_key=0,
    width=1,
)

# Marks recorded requests queued; a record that expired meanwhile stays gone.
MARK_QUEUED = BatchScript(
    """
local out = {}
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'state', 'queued')
  end
  table.insert(out, 1)
end
return out
""",
    per_key=0,
    width=1,
)


class AcceptedRequests:
    """The gateway writes (through a ``ScriptBatcher``, with ``ttl_s``); the
    reservation service only reads."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        batcher: ScriptBatcher | None = None,
        ttl_s: float | None = None,
    ) -> None:
        self._client = client
        self._batcher = batcher
        self._ttl_ms = None if ttl_s is None else round(ttl_s * 1000)

    def _writer(self) -> tuple[ScriptBatcher, int]:
        if self._batcher is None or self._ttl_ms is None:
            raise RuntimeError("a read-only AcceptedRequests records nothing")
        return self._batcher, self._ttl_ms

    async def claim(self, request: Request, *, decided_sequence: int = 0) -> Accepted:
        """Records ``request`` if its reservation id is new, and returns the
        request recorded under that id: this one, or the first one sent.
        ``decided_sequence``: the highest number decided for the event, as
        far as the caller knows (see CLAIM)."""
        batcher, ttl_ms = self._writer()
        micros = round(request.accepted_at.timestamp() * 1_000_000)
        found = await batcher.call(
            CLAIM,
            KEY_PREFIX + request.reservation_id,
            (request.event_id, request.user_id, request.shape, micros, decided_sequence),
            (ttl_ms,),
        )
        accepted = _parse(request.reservation_id, found)
        if accepted is None:  # pragma: no cover - the script always returns the fields
            raise RuntimeError(f"accepted request {request.reservation_id} vanished")
        return accepted

    async def known(self, reservation_id: str) -> bool:
        """Whether a request was recorded under this id (a retry)."""
        batcher, _ = self._writer()
        (found,) = await batcher.call(KNOWN, KEY_PREFIX + reservation_id)
        return bool(int(found))

    async def mark_queued(self, reservation_id: str) -> None:
        batcher, _ = self._writer()
        await batcher.call(MARK_QUEUED, KEY_PREFIX + reservation_id)

    async def get(self, reservation_id: str) -> Accepted | None:
        found = await self._client.hmget(KEY_PREFIX + reservation_id, list(FIELDS))
        return _parse(reservation_id, found)


def _parse(reservation_id: str, fields: list[bytes | str | None]) -> Accepted | None:
    event_id, user_id, quantity, accept_us, state, *rest = fields
    if event_id is None or user_id is None or quantity is None or accept_us is None:
        return None
    return Accepted(
        reservation_id=reservation_id,
        event_id=_text(event_id),
        user_id=_text(user_id),
        # The quantity, then for a seated request where (Request.shape).
        quantity=int(_text(quantity).partition("|")[0]),
        accepted_at=datetime.fromtimestamp(int(accept_us) / 1_000_000, UTC),
        state=State(_text(state or State.PENDING)),
        sequence=int(rest[0]) if rest and rest[0] is not None else 0,
        shape=_text(quantity),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
