"""The consume loop's failure handling, with a scripted consumer and processor
(pure logic: no broker, no database)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from aiolimiter import AsyncLimiter

from consumer_service.loop import ConsumeLoop, DependencyBreaker

TP = TopicPartition("requests", 0)


def record(offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=TP.topic,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=b"v%d" % offset,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=2,
        headers=(),
    )


class Log:
    def __init__(self) -> None:
        self.records = [record(n) for n in range(5)]
        self.position = 0
        self.committed: list[int] = []
        self.seeks: list[int] = []
        self.paused = False
        self.serving: list[bool] = []


class FakeConsumer:
    """Serves the log from its position; honours max_records, seek, pause."""

    def __init__(self, log: Log, loop: ConsumeLoop | None = None) -> None:
        self.log = log
        self.loop = loop

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[Any, Any]:
        await asyncio.sleep(0)
        if self.log.paused or self.log.position >= len(self.log.records):
            if self.log.position >= len(self.log.records) and self.loop is not None:
                self.loop.stop()
            return {}
        batch = self.log.records[self.log.position : self.log.position + max_records]
        self.log.position += len(batch)
        return {TP: batch}

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.log.committed.append(offsets[TP])

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.log.seeks.append(offset)
        self.log.position = offset

    def pause(self, *tps: TopicPartition) -> None:
        self.log.paused = True

    def paused(self) -> set[TopicPartition]:
        return {TP} if self.log.paused else set()

    def resume(self, *tps: TopicPartition) -> None:
        self.log.paused = False


class Poisoned(Exception):
    pass


class FakeProcessor:
    """Fails every batch holding offset ``poison`` with a non-transient error,
    and the first ``transient`` calls with a connection error."""

    def __init__(self, poison: int | None = None, transient: int = 0) -> None:
        self.poison = poison
        self.transient = transient
        self.calls = 0
        self.dead: list[tuple[int, int]] = []

    async def process(
        self, batch: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]
    ) -> dict[TopicPartition, int]:
        self.calls += 1
        if self.calls <= self.transient:
            raise ConnectionRefusedError("database down")
        offsets = [r.offset for r in batch[TP]]
        if self.poison in offsets:
            raise Poisoned(f"cannot process {self.poison}")
        return {TP: offsets[-1] + 1}

    async def dead_letter_failed(
        self, rec: ConsumerRecord[bytes, bytes], error: str, attempts: int
    ) -> None:
        self.dead.append((rec.offset, attempts))


def build(
    log: Log,
    processor: FakeProcessor,
    *,
    threshold: int = 100,
    probe_ok: bool = True,
    limiter: AsyncLimiter | None = None,
) -> ConsumeLoop:
    async def probe() -> None:
        if not probe_ok:
            raise ConnectionRefusedError

    async def set_serving(serving: bool) -> None:
        log.serving.append(serving)

    loop = ConsumeLoop(
        None,  # replaced below
        processor,  # type: ignore[arg-type]
        breaker=DependencyBreaker(threshold=threshold, reset_s=0.01, probe=probe),
        limiter=limiter,
        set_serving=set_serving,
        max_batch=10,
        poll_timeout_ms=1,
        retry_backoff_s=0.001,
        max_attempts=3,
    )
    loop._consumer = FakeConsumer(log, loop)
    return loop


async def test_a_clean_log_is_processed_and_committed_once() -> None:
    log, processor = Log(), FakeProcessor()
    await asyncio.wait_for(build(log, processor).run(), 5)
    assert log.committed == [5]
    assert processor.dead == []


async def test_a_poison_record_is_isolated_retried_and_dead_lettered() -> None:
    log, processor = Log(), FakeProcessor(poison=2)
    await asyncio.wait_for(build(log, processor).run(), 5)
    # The batch failed, was re-read one record at a time; offsets 0 and 1
    # went through, 2 failed three times and was dead-lettered, 3 and 4 flowed.
    assert processor.dead == [(2, 3)]
    assert log.committed == [1, 2, 3, 4, 5]


async def test_transient_failures_rewind_without_advancing_the_offset() -> None:
    log, processor = Log(), FakeProcessor(transient=2)
    await asyncio.wait_for(build(log, processor).run(), 5)
    assert log.seeks == [0, 0]  # rewound twice to the batch start
    assert log.committed == [5]
    assert processor.dead == []


async def test_the_breaker_pauses_reports_not_serving_and_resumes() -> None:
    log, processor = Log(), FakeProcessor(transient=3)
    await asyncio.wait_for(build(log, processor, threshold=3).run(), 5)
    assert log.serving == [False, True]
    assert log.committed == [5]
    assert not log.paused


async def test_the_rate_limit_spreads_decisions_over_time() -> None:
    """4 decisions per second: after the first 4, the other 8 of 12 records
    need at least 2 s (a lower bound, which a slow machine cannot break)."""
    log, processor = Log(), FakeProcessor()
    log.records = [record(n) for n in range(12)]
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(build(log, processor, limiter=AsyncLimiter(4, 1)).run(), 10)
    assert asyncio.get_running_loop().time() - started >= 1.9
    assert log.committed == [10, 12]
