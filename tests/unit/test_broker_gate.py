"""The gateway's publish path against a fake producer: how long a caller
waits when the broker stops acknowledging, and when it is only slow."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.structs import RecordMetadata, TopicPartition

from gateway.broker import BROKER_SLOW_S, BrokerGate
from ticketing_common.errors import BrokerUnavailable

TOPIC = "requests"


def metadata(offset: int) -> RecordMetadata:
    return RecordMetadata(TOPIC, 0, TopicPartition(TOPIC, 0), offset, -1, 0, 0)


class FakeProducer:
    """Acknowledges each record after ``ack_after_s`` (None: never), or
    after the delay ``slow`` names for its value."""

    def __init__(self, ack_after_s: float | None, slow: dict[bytes, float] | None = None) -> None:
        self.ack_after_s = ack_after_s
        self.slow = slow or {}
        self.sent = 0

    async def send(self, topic: str, value: bytes, *, key: bytes) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        delivery: asyncio.Future[Any] = loop.create_future()
        offset = self.sent
        self.sent += 1
        delay = self.slow.get(value, self.ack_after_s)
        if delay is not None:
            loop.call_later(delay, delivery.set_result, metadata(offset))
        return delivery


def gate(producer: FakeProducer, *, threshold: int = 3) -> BrokerGate:
    return BrokerGate(
        producer,
        TOPIC,
        publish_timeout_s=5.0,
        threshold=threshold,
        reset_s=2.0,
    )


async def test_an_acknowledged_record_is_returned() -> None:
    reply = await gate(FakeProducer(ack_after_s=0.01)).publish(b"k", b"v", timeout_s=5.0)
    assert reply.offset == 0


async def test_a_silent_broker_is_given_up_on_after_a_second_not_the_deadline() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(BrokerUnavailable) as raised:
        await gate(FakeProducer(ack_after_s=None)).publish(b"k", b"v", timeout_s=5.0)
    elapsed = loop.time() - started
    assert BROKER_SLOW_S <= elapsed < BROKER_SLOW_S + 0.5
    assert "retry with the same idempotency_key" in raised.value.message
    assert raised.value.retry_after_s == 2.0


async def test_a_slow_broker_that_acknowledges_others_is_waited_for() -> None:
    # One record takes 2.5 s, while others are acknowledged all along.
    broker = gate(FakeProducer(ack_after_s=0.1, slow={b"slow": 2.5}))
    await broker.publish(b"k", b"first", timeout_s=5.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    slow = asyncio.create_task(broker.publish(b"k", b"slow", timeout_s=5.0))
    others = 0
    while not slow.done():
        await broker.publish(b"k", b"other", timeout_s=5.0)
        others += 1
    await slow  # acknowledged, not given up on
    assert loop.time() - started >= 2.5
    assert others >= 10


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
