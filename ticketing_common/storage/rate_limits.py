"""Per-caller rate limits counted in Redis, so a limit holds across every
process of a service: how many calls a subject, or a client address, may
make per window. The gateway limits ``Reserve`` with them, the payment
service ``Pay``.

A fixed window (``window_s``, aligned to wall-clock multiples) keeps each
check one counter increment, batched with the process's other Redis writes
(``ScriptBatcher``). A refusal is RESOURCE_EXHAUSTED with a ``RetryInfo`` for
the rest of the window.

The limits fail closed: when Redis does not answer within ``timeout_s`` (or
answers with an error) the call is refused UNAVAILABLE with a ``RetryInfo``,
never let through uncounted. A limit that a slow Redis switches off would
switch off exactly when a flood makes Redis slow.

A flood costs the process as little as it can: once Redis has counted a key
past its limit, this process refuses it for the rest of that window without
asking again (a window's count only grows, so the answer could not change).
At most one entry per flooding key, dropped when the window ends.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping

import structlog
from prometheus_client import Counter

from ..errors import DependencyUnavailable, Reason, ResourceExhausted
from ..failures import is_transient
from .batched import BatchScript, ScriptBatcher

log = structlog.get_logger(__name__)

KEY_PREFIX = "ticketing:rate:"
# Advised to a caller refused because Redis did not answer.
UNCOUNTED_RETRY_AFTER_S = 1.0

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
        scope: str,
        limits: Mapping[str, int],
        window_s: float,
        timeout_s: float,
        refused: Counter,
    ) -> None:
        """``limits`` per kind of caller (``subject``, ``address``): calls per
        window, 0 is no limit. ``scope`` names the limited calls in the Redis
        keys; ``refused`` counts refusals by kind (one label)."""
        self._batcher = batcher
        self._scope = scope
        self._limits = {kind: limit for kind, limit in limits.items() if limit > 0}
        self._window_ms = max(1, round(window_s * 1000))
        self._timeout_s = timeout_s
        self._refused = refused
        # Keys Redis counted past their limit in window ``_over_window``.
        self._over_window = -1
        self._over: set[tuple[str, str]] = set()

    async def admit(self, **callers: str) -> None:
        """Counts one call of each caller named by its kind (``subject=...``);
        raises ResourceExhausted past a limit, DependencyUnavailable when
        Redis could not count it."""
        checks = [
            (kind, key, limit)
            for kind, key in callers.items()
            if (limit := self._limits.get(kind, 0)) > 0
        ]
        if not checks:
            return
        window = int(time.time() * 1000) // self._window_ms
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
                            COUNT,
                            f"{KEY_PREFIX}{self._scope}:{kind}:{key}:{window}",
                            (),
                            (self._window_ms,),
                        )
                        for kind, key, _ in checks
                    )
                )
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning(
                "rate_limit_unavailable", scope=self._scope, error=f"{type(exc).__name__}: {exc}"
            )
            raise DependencyUnavailable(
                "the rate limits could not be checked (Redis did not answer in time); retry later",
                retry_after_s=UNCOUNTED_RETRY_AFTER_S,
                metadata={"dependency": "redis"},
            ) from None
        for (kind, key, limit), (count,) in zip(checks, counts, strict=True):
            if int(count) > limit:
                if window == self._over_window:
                    self._over.add((kind, key))
                raise self._refusal(kind, limit, window)

    def _refusal(self, kind: str, limit: int, window: int) -> ResourceExhausted:
        self._refused.labels(kind).inc()
        ends_ms = (window + 1) * self._window_ms - time.time() * 1000
        return ResourceExhausted(
            f"too many calls from this {kind}: at most {limit} per "
            f"{self._window_ms / 1000:g} s; retry later",
            reason=Reason.RATE_LIMITED,
            metadata={"limit": kind},
            retry_after_s=max(0.001, math.ceil(ends_ms) / 1000),
        )
