"""The gateway's publish path against a fake producer: how long a caller
waits when a partition stops being acknowledged, and when it is only slow;
and that a caller gone before the hand-over has nothing appended."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import RecordMetadata, TopicPartition

from gateway.broker import BrokerGate
from gateway.servicer import DEADLINE_MARGIN_S, caller_gone
from ticketing_common.errors import BrokerUnavailable, Cancelled, DeadlineExceeded

TOPIC = "requests"
PARTITIONS = [0, 1, 2, 3, 4, 5]
SILENCE_S = 1.0


def partition_of(key: bytes) -> int:
    partition: int = DefaultPartitioner()(key, PARTITIONS, PARTITIONS)
    return partition


def keys_on_two_partitions() -> tuple[bytes, bytes]:
    first = b"event-0"
    other = next(
        key
        for key in (f"event-{n}".encode() for n in range(1, 100))
        if partition_of(key) != partition_of(first)
    )
    return first, other


class FakeProducer:
    """Acknowledges each record after ``ack_after_s`` (None: never), or after
    the delay that ``slow`` names for its value; ``dead`` partitions never
    acknowledge."""

    def __init__(
        self,
        ack_after_s: float | None,
        slow: dict[bytes, float] | None = None,
        dead: set[int] | None = None,
    ) -> None:
        self.ack_after_s = ack_after_s
        self.slow = slow or {}
        self.dead = dead or set()
        self.sent: list[tuple[bytes, int]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(PARTITIONS)

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes,
        partition: int,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        delivery: asyncio.Future[Any] = loop.create_future()
        self.sent.append((key, partition))
        delay = None if partition in self.dead else self.slow.get(value, self.ack_after_s)
        if delay is not None:
            meta = RecordMetadata(
                TOPIC, partition, TopicPartition(TOPIC, partition), len(self.sent), -1, 0, 0
            )
            loop.call_later(delay, delivery.set_result, meta)
        return delivery


def gate(producer: FakeProducer, *, threshold: int = 3) -> BrokerGate:
    return BrokerGate(
        producer,
        TOPIC,
        publish_timeout_s=5.0,
        threshold=threshold,
        reset_s=2.0,
        silence_s=SILENCE_S,
    )


async def elapsed_of(call: Any) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await call
    return loop.time() - started


async def test_records_go_to_the_default_partitioners_choice_for_the_key() -> None:
    producer = FakeProducer(ack_after_s=0.01)
    reply = await gate(producer).publish(b"event-7", b"v", timeout_s=5.0)
    assert reply.partition == partition_of(b"event-7")
    assert producer.sent == [(b"event-7", partition_of(b"event-7"))]


async def test_a_silent_broker_is_given_up_on_after_the_silence_not_the_deadline() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(BrokerUnavailable) as raised:
        await gate(FakeProducer(ack_after_s=None)).publish(b"k", b"v", timeout_s=5.0)
    assert SILENCE_S <= loop.time() - started < SILENCE_S + 0.5
    assert "retry with the same idempotency_key" in raised.value.message
    assert raised.value.retry_after_s == 2.0


async def test_a_lone_publish_acknowledged_within_the_silence_succeeds() -> None:
    broker = gate(FakeProducer(ack_after_s=SILENCE_S * 0.7))
    assert await elapsed_of(broker.publish(b"k", b"v", timeout_s=5.0)) >= SILENCE_S * 0.7


async def test_a_slow_record_on_a_partition_that_still_acknowledges_is_waited_for() -> None:
    # One record takes 2.5 s, while others on its partition are acknowledged.
    broker = gate(FakeProducer(ack_after_s=0.1, slow={b"slow": 2.5}))
    slow = asyncio.create_task(elapsed_of(broker.publish(b"k", b"slow", timeout_s=5.0)))
    others = 0
    while not slow.done():
        await broker.publish(b"k", b"other", timeout_s=5.0)
        others += 1
    assert await slow >= 2.5  # acknowledged, not given up on
    assert others >= 10


async def test_a_dead_partition_leader_is_given_up_on_while_others_acknowledge() -> None:
    dead_key, live_key = keys_on_two_partitions()
    broker = gate(FakeProducer(ack_after_s=0.05, dead={partition_of(dead_key)}), threshold=100)
    waiting = asyncio.create_task(broker.publish(dead_key, b"v", timeout_s=5.0))
    while not waiting.done():
        await broker.publish(live_key, b"v", timeout_s=5.0)
    with pytest.raises(BrokerUnavailable):
        await waiting


async def test_silent_publishes_open_the_breaker_and_later_calls_fail_at_once() -> None:
    broker = gate(FakeProducer(ack_after_s=None), threshold=3)
    for _ in range(3):
        with pytest.raises(BrokerUnavailable):
            await broker.publish(b"k", b"v", timeout_s=5.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(BrokerUnavailable):
        await broker.publish(b"k", b"v", timeout_s=5.0)
    assert loop.time() - started < 0.1


class SlowMetadataProducer(FakeProducer):
    """Takes ``metadata_s`` to learn the topic's partitions, as a producer
    waiting for a leader does, before it can take a record."""

    def __init__(self, metadata_s: float) -> None:
        super().__init__(ack_after_s=0.01)
        self.metadata_s = metadata_s

    async def partitions_for(self, topic: str) -> set[int]:
        await asyncio.sleep(self.metadata_s)
        return set(PARTITIONS)


class CallerContext:
    """A servicer context's view of its caller: a deadline on the loop's
    clock, and whether the caller cancelled."""

    def __init__(self, deadline_s: float | None) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._deadline = None if deadline_s is None else loop.time() + deadline_s
        self.gone = False

    def cancelled(self) -> bool:
        return self.gone

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else self._deadline - self._loop.time()


async def publish_as_reserve_does(broker: BrokerGate, context: CallerContext) -> None:
    """What Reserve does: the publish timeout shortened by the deadline, and
    the caller asked about just before the hand-over."""
    timeout = 5.0
    remaining = context.time_remaining()
    if remaining is not None:
        timeout = min(timeout, remaining - DEADLINE_MARGIN_S)
    await broker.publish(b"k", b"v", timeout, caller_gone=lambda: caller_gone(cast(Any, context)))


async def test_a_call_whose_deadline_passes_before_the_append_is_not_appended() -> None:
    # The broker gives no partition within the caller's deadline: the queue
    # did not take the request, UNAVAILABLE as whenever it cannot.
    producer = SlowMetadataProducer(metadata_s=0.5)
    broker = gate(producer, threshold=1)
    with pytest.raises(BrokerUnavailable) as raised:
        await publish_as_reserve_does(broker, CallerContext(deadline_s=0.3))
    assert "nothing was queued" in raised.value.message
    await asyncio.sleep(0.3)  # the producer's metadata has come by now
    assert producer.sent == []
    # Not the broker's failure: the breaker stays closed.
    assert await broker.publish(b"k", b"v", timeout_s=5.0)


async def test_a_call_cancelled_before_the_append_is_not_appended() -> None:
    producer = SlowMetadataProducer(metadata_s=0.3)
    broker = gate(producer, threshold=1)
    context = CallerContext(deadline_s=None)
    publishing = asyncio.create_task(publish_as_reserve_does(broker, context))
    await asyncio.sleep(0.1)
    context.gone = True  # the client cancels while the append waits
    with pytest.raises(Cancelled):
        await publishing
    assert producer.sent == []
    assert await broker.publish(b"k", b"v", timeout_s=5.0)


async def test_a_call_with_too_little_deadline_left_is_refused_as_such() -> None:
    producer = FakeProducer(ack_after_s=0.01)
    with pytest.raises(DeadlineExceeded):
        await publish_as_reserve_does(gate(producer), CallerContext(deadline_s=0.05))
    assert producer.sent == []
