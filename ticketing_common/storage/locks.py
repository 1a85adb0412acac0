"""Per-event Redis lock with a fencing token.

Acquiring the lock increments the event's token counter atomically with the
``SET NX PX``, so every acquisition gets a strictly larger token. The token is
written with the batch into PostgreSQL, which refuses a token lower than the
last one it stored: a holder that paused past its lock's expiry (GC, SIGSTOP,
network) cannot write over the newer holder's decisions.

If Redis loses its data (restart without persistence), the counter starts
again from 1 and PostgreSQL would refuse every new token. ``raise_floor`` lets
the current, verified holder lift the counter strictly past what PostgreSQL
has stored, so every token PostgreSQL accepts is larger than every one it
accepted before: tokens are unique, and the check is a strict ``<``.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import redis.asyncio as redis

# KEYS[1] lock key, KEYS[2] token counter; ARGV[1] owner, ARGV[2] ttl ms.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
return token
"""

# Deletes the lock only if it still holds our value.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS[1] lock, KEYS[2] counter; ARGV[1] our lock value, ARGV[2] floor.
# Only the current holder may lift the counter, and only upwards.
_RAISE_FLOOR = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if current <= tonumber(ARGV[2]) then redis.call('SET', KEYS[2], tonumber(ARGV[2]) + 1) end
return 1
"""


class LockNotAcquired(TimeoutError):
    retriable = True


@dataclass(frozen=True, slots=True)
class Lease:
    """A held lock: the key, our stored value and the fencing token."""

    key: str
    value: str
    token: int


class EventLocks:
    def __init__(
        self, client: redis.Redis, owner: str, *, ttl_ms: int = 10_000, prefix: str = "ticketing"
    ) -> None:
        self._owner = owner
        self._ttl_ms = ttl_ms
        self._prefix = prefix
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._raise_floor = client.register_script(_RAISE_FLOOR)

    # The event id in braces is a Redis Cluster hash tag: an event's lock and
    # counter share a slot, as the scripts that touch both require.
    def lock_key(self, event_id: str) -> str:
        return f"{self._prefix}:lock:event:{{{event_id}}}"

    def token_key(self, event_id: str) -> str:
        return f"{self._prefix}:fence:event:{{{event_id}}}"

    async def acquire(self, event_id: str, *, wait_s: float) -> Lease:
        """Takes the lock, polling with jittered backoff for up to ``wait_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        delay = 0.005
        key, counter = self.lock_key(event_id), self.token_key(event_id)
        while True:
            token = int(await self._acquire(keys=[key, counter], args=[self._owner, self._ttl_ms]))
            if token:
                return Lease(key, f"{self._owner}:{token}", token)
            if loop.time() + delay > deadline:
                raise LockNotAcquired(f"lock for event {event_id} not acquired in {wait_s}s")
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.2)

    async def release(self, lease: Lease) -> bool:
        return bool(await self._release(keys=[lease.key], args=[lease.value]))

    async def raise_floor(self, event_id: str, lease: Lease, floor: int) -> bool:
        """Lifts the token counter to ``floor`` if we still hold ``lease``."""
        return bool(
            await self._raise_floor(
                keys=[lease.key, self.token_key(event_id)], args=[lease.value, floor]
            )
        )
