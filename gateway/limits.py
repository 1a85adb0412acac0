"""Abuse limits at the door: how many ``Reserve`` calls a subject, and a
client address, may make per window, counted in Redis so the limits hold
across every gateway.

A fixed window per second (``window_s``) keeps each check one counter
increment, batched with the other writes of the call (``ScriptBatcher``). A
refusal is RESOURCE_EXHAUSTED with a ``RetryInfo`` for the rest of the window.
When Redis does not answer in time the call goes on unlimited rather than stop
the sale (and says so in the log).

A flood costs the gateway as little as it can: once Redis has counted a
subject or address past its limit, this gateway refuses it for the rest of
that window without asking again (a window's count only grows, so the answer
could not change). At most one entry per flooding key, dropped when the
window ends.
"""

from __future__ import annotations

import asyncio
import math
import time

import structlog

from ticketing_common.errors import Reason, ResourceExhausted
from ticketing_common.failures import is_transient
from ticketing_common.storage.batched import BatchScript, ScriptBatcher

from . import metrics

log = structlog.get_logger(__name__)

KEY_PREFIX = "ticketing:rate:"

# For each key: one more call in its window; returns the count. The window
# length (ms) is the shared argument: the counter outlives its window by one.
COUNT = BatchScript(
    """
local out = {}
for _, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then
    redis.call('PEXPIRE', key, 2 * ARGV[1])
  end
  table.insert(out, count)
end
return out
""",
    per_key=0,
    width=1,
)


class RateLimits:
    def __init__(
        self,
        batcher: ScriptBatcher,
        *,
        per_subject: int,
        per_address: int,
        window_s: float,
        timeout_s: float,
    ) -> None:
        """``per_subject`` and ``per_address`` calls per window; 0 is no limit."""
        self._batcher = batcher
        self._per_subject = per_subject
        self._per_address = per_address
        self._window_ms = max(1, round(window_s * 1000))
        self._timeout_s = timeout_s
        # Keys Redis counted past their limit in window ``_over_window``.
        self._over_window = -1
        self._over: set[tuple[str, str]] = set()

    async def admit(self, subject: str, address: str) -> None:
        """Counts one call; raises ResourceExhausted past a limit."""
        window = int(time.time() * 1000) // self._window_ms
        checks = [
            (kind, key, limit)
            for kind, key, limit in (
                ("subject", subject, self._per_subject),
                ("address", address, self._per_address),
            )
            if limit > 0
        ]
        if not checks:
            return
        if window != self._over_window:
            self._over_window, self._over = window, set()
        for kind, key, limit in checks:
            if (kind, key) in self._over:
                raise self._refusal(kind, limit, window)
        try:
            async with asyncio.timeout(self._timeout_s):
                counts = await asyncio.gather(
                    *(
                        self._batcher.call(
                            COUNT, f"{KEY_PREFIX}{kind}:{key}:{window}", (), (self._window_ms,)
                        )
                        for kind, key, _ in checks
                    )
                )
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("rate_limit_skipped", error=f"{type(exc).__name__}: {exc}")
            return
        for (kind, key, limit), (count,) in zip(checks, counts, strict=True):
            if int(count) > limit:
                if window == self._over_window:
                    self._over.add((kind, key))
                raise self._refusal(kind, limit, window)

    def _refusal(self, kind: str, limit: int, window: int) -> ResourceExhausted:
        metrics.RATE_LIMITED.labels(kind).inc()
        ends_ms = (window + 1) * self._window_ms - time.time() * 1000
        return ResourceExhausted(
            f"too many calls from this {kind}: at most {limit} per "
            f"{self._window_ms / 1000:g} s; retry later",
            reason=Reason.RATE_LIMITED,
            metadata={"limit": kind},
            retry_after_s=max(0.001, math.ceil(ends_ms) / 1000),
        )
