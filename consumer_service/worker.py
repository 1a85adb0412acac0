"""The consume loop: poll a batch, decide it per event, publish, then commit.

Order of effects for one polled batch, which is what makes a crash at any
point safe:

1. per event: one Redis lock acquisition, one fenced PostgreSQL transaction;
2. every outcome published to the results topic (acks=all);
3. offsets committed.

A crash before 3 redelivers the batch; its ids are already in PostgreSQL, so
their stored outcomes are re-published and nothing is applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.structs import ConsumerRecord

from ticketing.v1 import queue_pb2
from ticketing_common.decisions import Request
from ticketing_common.domain import Reservation
from ticketing_common.errors import StaleFencingToken
from ticketing_common.kafka import UndecodableRecord, decode_request
from ticketing_common.locks import EventLocks

from .applier import Applier
from .failures import is_transient

log = structlog.get_logger(__name__)

MAX_BACKOFF_S = 10.0

Batch = Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]


class BatchProcessor:
    def __init__(
        self,
        *,
        applier: Applier,
        locks: EventLocks,
        producer: AIOKafkaProducer,
        results_topic: str,
        lock_wait_s: float,
        concurrency: int,
    ) -> None:
        self._applier = applier
        self._locks = locks
        self._producer = producer
        self._results_topic = results_topic
        self._lock_wait_s = lock_wait_s
        # Events of one batch are decided concurrently, but no more at once
        # than there are database connections: a lock must not be held while
        # its transaction waits for a connection.
        self._slots = asyncio.Semaphore(concurrency)

    async def process(self, batch: Batch) -> dict[TopicPartition, int]:
        """Decides and publishes ``batch``; returns the offsets to commit."""
        by_event: dict[str, list[Request]] = defaultdict(list)
        offsets: dict[TopicPartition, int] = {}
        for tp, records in batch.items():
            for record in records:
                try:
                    request = decode_request(
                        record.value, partition=tp.partition, offset=record.offset
                    )
                except UndecodableRecord as exc:
                    # Dead-lettering comes with the retry/DLQ work; until then a
                    # record we cannot read is logged and passed over.
                    log.error(
                        "undecodable_record",
                        topic=tp.topic,
                        partition=tp.partition,
                        offset=record.offset,
                        error=str(exc),
                    )
                    continue
                by_event[request.event_id].append(request)
            if records:
                offsets[tp] = records[-1].offset + 1

        results: list[Reservation] = []
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._decide_event(event_id, requests))
                for event_id, requests in by_event.items()
            ]
        for task in tasks:
            results.extend(task.result())
        await self._publish(results)
        return offsets

    async def _decide_event(self, event_id: str, requests: list[Request]) -> list[Reservation]:
        async with self._slots:
            return await self._decide_event_locked(event_id, requests)

    async def _decide_event_locked(
        self, event_id: str, requests: list[Request]
    ) -> list[Reservation]:
        with structlog.contextvars.bound_contextvars(event_id=event_id):
            lease = await self._locks.acquire(event_id, wait_s=self._lock_wait_s)
            try:
                try:
                    decided = await self._applier.apply(event_id, lease.token, requests)
                except StaleFencingToken as exc:
                    # Still ours in Redis but refused by PostgreSQL: Redis lost its
                    # counter (restart without persistence). Lift it past what
                    # PostgreSQL has seen and take a fresh token.
                    if not await self._locks.raise_floor(event_id, lease, exc.stored):
                        log.warning("fencing_refused", token=exc.token, stored=exc.stored)
                        raise
                    log.warning("fencing_counter_reset", token=exc.token, stored=exc.stored)
                    await self._locks.release(lease)
                    lease = await self._locks.acquire(event_id, wait_s=self._lock_wait_s)
                    decided = await self._applier.apply(event_id, lease.token, requests)
            finally:
                await self._locks.release(lease)
            log.info("batch_decided", requests=len(requests), token=lease.token)
            return decided

    async def _publish(self, results: Sequence[Reservation]) -> None:
        futures = [
            await self._producer.send(
                self._results_topic,
                queue_pb2.ReservationDecided(reservation=r.to_proto()).SerializeToString(),
                key=r.reservation_id.encode(),
            )
            for r in results
        ]
        if futures:
            await asyncio.gather(*futures)


def _describe(exc: BaseException) -> list[str] | str:
    if isinstance(exc, BaseExceptionGroup):
        return [f"{type(e).__name__}: {e}" for e in exc.exceptions]
    return f"{type(exc).__name__}: {exc}"


class ConsumeLoop(ConsumerRebalanceListener):  # type: ignore[misc]
    """Polls and processes batches; on a rebalance it lets the batch in hand
    finish and commit before the partitions go."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        processor: BatchProcessor,
        *,
        max_batch: int,
        poll_timeout_ms: int,
        retry_backoff_s: float,
    ) -> None:
        self._consumer = consumer
        self._processor = processor
        self._max_batch = max_batch
        self._poll_timeout_ms = poll_timeout_ms
        self._retry_backoff_s = retry_backoff_s
        self._in_batch = asyncio.Lock()
        self._stopping = asyncio.Event()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._in_batch:
            log.info("partitions_revoked", partitions=sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions_assigned", partitions=sorted(tp.partition for tp in assigned))

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            batch = await self._consumer.getmany(
                timeout_ms=self._poll_timeout_ms, max_records=self._max_batch
            )
            if not batch:
                continue
            async with self._in_batch:
                done = await self._handle(batch)
            failures = 0 if done else failures + 1
            if failures:
                # Outside the batch lock: a rebalance need not wait for our backoff.
                await self._backoff(failures)

    async def _backoff(self, failures: int) -> None:
        delay = min(MAX_BACKOFF_S, self._retry_backoff_s * 2 ** (failures - 1))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay * (0.5 + random.random() / 2))

    async def _handle(self, batch: Batch) -> bool:
        """Processes and commits one batch; on failure rewinds it for a retry."""
        try:
            offsets = await self._processor.process(batch)
        except Exception as exc:  # task boundary: log, rewind, retry
            records = sum(len(r) for r in batch.values())
            if is_transient(exc):
                log.warning("batch_retry", records=records, error=_describe(exc))
            else:
                # Not expected to heal by itself; retried all the same, since
                # skipping would lose the requests.
                log.error("batch_failed", records=records, exc_info=exc)
            self._rewind(batch)
            return False
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced under us: the new owner redelivers from the
            # last commit and recognises what we decided.
            log.warning("commit_failed", error=str(exc))
        return True

    def _rewind(self, batch: Batch) -> None:
        assigned = self._consumer.assignment()
        for tp, records in batch.items():
            if records and tp in assigned:
                self._consumer.seek(tp, records[0].offset)
