"""The consume loop around ``BatchProcessor``: poll, process, commit, and what
happens when that fails.

- A transient failure (PostgreSQL, Redis or the broker unreachable, the lock
  not acquired in time, a stale fencing token) rewinds the batch and retries it
  with exponential backoff; the offset does not move.
- Repeated transient failures open the circuit breaker: the consumer pauses its
  partitions, reports NOT_SERVING, and probes its dependencies after the reset
  timeout (half-open) until they answer, then resumes.
- Any other failure cannot be expected to heal: the batch is re-read one record
  at a time to find the record at fault, which is given ``max_attempts`` tries
  and then dead-lettered (its user is told REJECTED/INTERNAL). The partition
  then flows again.
- A dead letter that cannot be stored (its buyer's REJECTED row or the
  dead-letter topic refuses) is retried with the same backoff: the record is
  never passed, its offset never committed, before both are stored.
- A rebalance waits for the batch in hand to finish and commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord
from aiolimiter import AsyncLimiter
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from ticketing_common.failures import is_transient

from . import metrics
from .worker import BatchProcessor

log = structlog.get_logger(__name__)

Batch = Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]
MAX_BACKOFF_S = 10.0
CIRCUIT = "dependencies"


class DependencyBreaker:
    """A circuit breaker (purgatory) over the consumer's dependencies; only
    transient failures count against it."""

    def __init__(
        self, *, threshold: int, reset_s: float, probe: Callable[[], Awaitable[None]]
    ) -> None:
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=threshold,
            default_ttl=reset_s,
            exclude=[(Exception, lambda exc: not is_transient(exc))],
        )
        self._probe = probe
        self.reset_s = reset_s

    async def guard(self) -> contextlib.AbstractAsyncContextManager[object]:
        return await self._factory.get_breaker(CIRCUIT)

    async def is_open(self) -> bool:
        breaker = await self._factory.get_breaker(CIRCUIT)
        return breaker.context.state == OpenedState.name

    async def probe(self) -> bool:
        """One half-open trial: True (and closed) if the dependencies answer."""
        try:
            async with await self.guard():
                await self._probe()
        except OpenedState:
            return False
        except Exception as exc:  # noqa: BLE001 - a failed probe is an answer, logged
            log.warning("breaker_probe_failed", error=f"{type(exc).__name__}: {exc}")
            return False
        return True


class Isolation:
    """Finding the record at fault after a batch failed for no transient
    reason: its partitions are re-read one record at a time up to where the
    batch ended, and each record re-read counts its attempts."""

    def __init__(self) -> None:
        # Per partition being re-read: the offset where the failed batch ended.
        self._until: dict[TopicPartition, int] = {}
        self._attempts: dict[tuple[TopicPartition, int], int] = {}

    @property
    def active(self) -> bool:
        return bool(self._until)

    def begin(self, batch: Batch) -> None:
        for tp, records in batch.items():
            if records:
                self._until[tp] = max(self._until.get(tp, 0), records[-1].offset + 1)

    def attempt(self, tp: TopicPartition, offset: int) -> int:
        """Counts one more failed try of the record at ``offset``; returns the count."""
        key = (tp, offset)
        self._attempts[key] = self._attempts.get(key, 0) + 1
        return self._attempts[key]

    def committed(self, tp: TopicPartition, offset: int) -> None:
        """Everything before ``offset`` is settled: isolation there may end."""
        if self._until.get(tp, 0) <= offset:
            self._until.pop(tp, None)
        for key in [k for k in self._attempts if k[0] == tp and k[1] < offset]:
            del self._attempts[key]

    def forget(self, partitions: Sequence[TopicPartition]) -> None:
        """Revoked partitions are someone else's to re-read."""
        for tp in partitions:
            self._until.pop(tp, None)
        self._attempts = {k: v for k, v in self._attempts.items() if k[0] not in partitions}


class ConsumeLoop(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        processor: BatchProcessor,
        *,
        breaker: DependencyBreaker,
        limiter: AsyncLimiter | None,
        set_serving: Callable[[bool], Awaitable[None]],
        max_batch: int,
        poll_timeout_ms: int,
        retry_backoff_s: float,
        max_attempts: int,
        fault_delay_s: float = 0.0,
        linger_s: float = 0.0,
    ) -> None:
        self._consumer = consumer
        self._processor = processor
        self._breaker = breaker
        self._limiter = limiter
        self._set_serving = set_serving
        self._max_batch = max_batch
        self._poll_timeout_ms = poll_timeout_ms
        self._retry_backoff_s = retry_backoff_s
        self._max_attempts = max_attempts
        self._fault_delay_s = fault_delay_s
        self._linger_s = linger_s
        self._in_batch = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._isolation = Isolation()
        # What this consumer last committed (or found committed), per partition.
        self._committed: dict[TopicPartition, int] = {}

    def committed(self, tp: TopicPartition) -> int | None:
        """This consumer's last commit for ``tp`` since it was assigned (None
        before its first: the lag metric starts with it)."""
        return self._committed.get(tp)

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._in_batch:
            self._isolation.forget(revoked)
            for tp in revoked:
                self._committed.pop(tp, None)
            log.info("partitions_revoked", partitions=sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions_assigned", partitions=sorted(tp.partition for tp in assigned))

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            if await self._breaker.is_open():
                await self._wait_for_recovery()
                continue
            batch = await self._consumer.getmany(
                timeout_ms=self._poll_timeout_ms,
                max_records=1 if self._isolation.active else self._max_batch,
            )
            if not batch:
                continue
            # Outside the batch lock, so a rebalance never waits on the limiter.
            await self._throttle(sum(len(r) for r in batch.values()))
            async with self._in_batch:
                done = await self._handle(batch)
            failures = 0 if done else failures + 1
            if failures:
                # Outside the batch lock: a rebalance need not wait for our backoff.
                await self._sleep(min(MAX_BACKOFF_S, self._retry_backoff_s * 2 ** (failures - 1)))
            elif self._linger_s and not self._isolation.active:
                # Let the next records gather (see KafkaSettings.fetch_linger_ms).
                await self._sleep(self._linger_s)

    async def _handle(self, batch: Batch) -> bool:
        """Processes and commits one batch; False if it must be retried."""
        # Partitions revoked while we waited (e.g. on the rate limiter) are
        # someone else's now.
        assigned = self._consumer.assignment()
        batch = {tp: records for tp, records in batch.items() if tp in assigned}
        if not batch:
            return True
        records = sum(len(r) for r in batch.values())
        try:
            async with await self._breaker.guard():
                offsets = await self._processor.process(batch)
        except OpenedState as exc:
            # purgatory raises one shared instance: do not let its traceback grow.
            exc.__traceback__ = None
            log.warning("breaker_open", records=records)
            self._rewind(batch)
            return False
        except Exception as exc:  # noqa: BLE001 - task boundary: classify, log, rewind
            self._rewind(batch)
            if is_transient(exc):
                log.warning("batch_retry", records=records, error=_describe(exc))
                return False
            return await self._on_persistent_failure(batch, exc)
        if self._fault_delay_s:
            await asyncio.sleep(self._fault_delay_s)  # decided and published, not committed
        await self._commit(offsets)
        return True

    async def _on_persistent_failure(self, batch: Batch, exc: Exception) -> bool:
        log.error("batch_failed", records=sum(len(r) for r in batch.values()), exc_info=exc)
        if not self._isolation.active or sum(len(r) for r in batch.values()) > 1:
            # Find the record at fault: re-read what this batch held one by one.
            self._isolation.begin(batch)
            return False
        (tp, (record,)), *_ = batch.items()
        attempts = self._isolation.attempt(tp, record.offset)
        if attempts < self._max_attempts:
            return False
        try:
            await self._processor.dead_letter_failed(record, _describe(exc), attempts)
        except Exception as dead_letter_exc:  # noqa: BLE001 - retried like the batch
            # A defect here holds the partition until it is fixed: said loudly.
            (log.warning if is_transient(dead_letter_exc) else log.error)(
                "dead_letter_failed", error=_describe(dead_letter_exc)
            )
            return False
        # The batch was rewound onto this record: move past it.
        self._consumer.seek(tp, record.offset + 1)
        await self._commit({tp: record.offset + 1})
        return True

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced under us: the new owner redelivers from the
            # last commit and recognises what we decided.
            log.warning("commit_failed", error=str(exc))
            return
        for tp, offset in offsets.items():
            self._isolation.committed(tp, offset)
            self._committed[tp] = offset

    async def _throttle(self, records: int) -> None:
        if self._limiter is None:
            return
        remaining = records
        while remaining > 0:
            chunk = min(remaining, int(self._limiter.max_rate))
            await self._limiter.acquire(chunk)
            remaining -= chunk

    async def _wait_for_recovery(self) -> None:
        """Breaker open: stop fetching, say so, and probe until healthy."""
        paused = list(self._consumer.assignment())
        self._consumer.pause(*paused)
        metrics.PAUSED.set(1)
        await self._set_serving(False)
        log.warning("consumer_paused", partitions=sorted(tp.partition for tp in paused))
        while not self._stopping.is_set():
            await self._sleep(self._breaker.reset_s)
            if await self._breaker.probe():
                break
        self._consumer.resume(*self._consumer.paused())
        metrics.PAUSED.set(0)
        await self._set_serving(True)
        log.info("consumer_resumed")

    async def _sleep(self, delay: float) -> None:
        """Sleeps about ``delay`` (jittered), returning early on stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay * (0.5 + random.random() / 2))

    def _rewind(self, batch: Batch) -> None:
        assigned = self._consumer.assignment()
        for tp, records in batch.items():
            if records and tp in assigned:
                self._consumer.seek(tp, records[0].offset)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"
