"""Redis scripts run for many callers at once: one round trip per batch.

On the hot path of every ``Reserve`` a few Redis writes are needed (the
accepted-request record, the rate-limit counters). Sent one call each, they
would cost a connection and a round trip per concurrent call, which at
1,000 Reserve/s exhausted redis-py's pool (BENCHMARKS.md, section 5). Here,
calls that arrive while a round trip is out go together in the next one, and
each kind of write is one script call for the whole batch.

A script written for this takes its keys as KEYS, ``per_key`` arguments per
key in order, then the shared arguments, and returns ``width`` values per key
as one flat list.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis

# Most writes per round trip: a script runs alone on Redis, so a spike's
# backlog goes in slices that each hold Redis for a few milliseconds at most.
MAX_BATCH = 500


@dataclass(frozen=True, slots=True)
class BatchScript:
    source: str
    per_key: int
    width: int


@dataclass(frozen=True, slots=True)
class _Call:
    script: BatchScript
    key: str
    args: tuple[str | int, ...]
    shared: tuple[str | int, ...]


class ScriptBatcher:
    """Runs ``BatchScript`` calls in batches; ``run`` must be going (the
    composition root owns that task)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._waiting: list[tuple[_Call, asyncio.Future[Any]]] = []
        self._sending: list[tuple[_Call, asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._running = False

    async def call(
        self,
        script: BatchScript,
        key: str,
        args: tuple[str | int, ...] = (),
        shared: tuple[str | int, ...] = (),
    ) -> list[Any]:
        """The script's ``width`` values for ``key``; ``shared`` must be the
        same for every call of a script that may share a batch."""
        if not self._running:
            raise RuntimeError("ScriptBatcher.run() is not running: nothing would be sent")
        if len(args) != script.per_key:
            raise ValueError(f"the script takes {script.per_key} arguments per key")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((_Call(script, key, args, shared), future))
        self._wake.set()
        result: list[Any] = await future
        return result

    async def run(self) -> None:
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

    async def _send(self, batch: list[tuple[_Call, asyncio.Future[Any]]]) -> None:
        groups: defaultdict[tuple[BatchScript, tuple[str | int, ...]], list[Any]] = defaultdict(
            list
        )
        for entry in batch:
            groups[entry[0].script, entry[0].shared].append(entry)
        pipe = self._client.pipeline(transaction=False)
        for (script, shared), entries in groups.items():
            keys = [call.key for call, _ in entries]
            args = [value for call, _ in entries for value in call.args]
            pipe.eval(script.source, len(keys), *keys, *args, *shared)
        try:
            results = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # noqa: BLE001 - the batch's callers get it and decide
            results = [exc] * len(groups)
        for ((script, _), entries), found in zip(groups.items(), results, strict=True):
            for i, (_, future) in enumerate(entries):
                if future.done():  # its caller gave up waiting
                    continue
                if isinstance(found, BaseException):
                    future.set_exception(found)
                else:
                    future.set_result(found[i * script.width : (i + 1) * script.width])
