"""Publishing to the requests topic behind a circuit breaker (purgatory).

Only the broker's own failures count against it: a publish cut short by a
caller's tight deadline (under a second), or a call the caller cancelled,
says nothing about the broker. When the breaker is open, calls fail
at once; when its reset time has passed, exactly one call goes through as the
probe (half-open) while the others keep failing fast.

A broker that dies does not say so: the producer keeps the record and
retries, and the caller would wait for its whole deadline. So a publish stops
waiting once its partition has had no acknowledgement for ``silence_s`` (a
slow leader that still acknowledges other records is waited for). The callers
in flight when a partition's leader dies hear UNAVAILABLE after ``silence_s``,
long before their deadlines, and those failures open the breaker. The
partition is the one Kafka's default partitioner picks for the key, chosen
here so that each partition's acknowledgements can be told apart.

A record is handed to the producer only while its caller still waits: the
last thing before ``send`` asks ``caller_gone``, and a caller that cancelled
or whose deadline is (all but) over gets that error, with nothing appended.
A deadline that runs out while the broker gives no partition is the queue
not taking the request: UNAVAILABLE, nothing appended.
Once handed over, the record goes out with the producer's next batch, whoever
still waits for it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import cast

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import RecordMetadata
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from ticketing_common import tracing
from ticketing_common.errors import (
    BrokerUnavailable,
    Cancelled,
    DeadlineExceeded,
    Reason,
    TicketingError,
)

from . import metrics

CIRCUIT = "broker"
CLOSED = "closed"
# The breaker's state as the metric shows it.
STATE_VALUES = {CLOSED: 0, "half-opened": 1, "opened": 2}


class CallerDeadline(Exception):
    """The caller's deadline, not the broker, cut the wait short."""


class BrokerSilent(Exception):
    """The record's partition has had no acknowledgement for ``silence_s``."""


class BrokerGate:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        *,
        publish_timeout_s: float,
        threshold: int,
        reset_s: float,
        silence_s: float = 2.0,
    ) -> None:
        self._producer = producer
        self._silence_s = silence_s
        self._partitioner = DefaultPartitioner()
        self._topic = topic
        self._publish_timeout_s = publish_timeout_s
        self.retry_after_s = reset_s
        self._breakers = AsyncCircuitBreakerFactory(
            default_threshold=threshold,
            default_ttl=reset_s,
            # A caller gone before its append says nothing about the broker.
            exclude=[CallerDeadline, asyncio.CancelledError, DeadlineExceeded, Cancelled],
        )
        self._probe_in_flight = False
        # Per partition, when the broker last acknowledged a record of ours.
        self._last_ack: dict[int, float] = {}
        self._state = CLOSED
        metrics.BREAKER_STATE.set_function(lambda: STATE_VALUES.get(self._state, 0))

    def _unavailable(
        self, why: str, reason: Reason = Reason.BROKER_UNAVAILABLE
    ) -> BrokerUnavailable:
        return BrokerUnavailable(
            f"{why}; retry with the same idempotency_key",
            retry_after_s=self.retry_after_s,
            reason=reason,
        )

    async def publish(
        self,
        key: bytes,
        value: bytes,
        timeout_s: float,
        *,
        caller_gone: Callable[[], TicketingError | None] = lambda: None,
    ) -> RecordMetadata:
        """Appends one record and waits for acks=all, at most ``timeout_s``
        (already shortened by the caller's deadline). ``caller_gone`` says
        why the record must not be appended any more (raised), or None."""
        if (gone := caller_gone()) is not None:
            raise gone
        if timeout_s <= 0:
            raise self._unavailable("too little of the deadline left to wait for the queue")
        breaker = await self._breakers.get_breaker(CIRCUIT)
        probing = breaker.context.state != CLOSED
        if probing:
            if self._probe_in_flight:
                raise self._unavailable("the queue is unavailable", Reason.BROKER_BREAKER_OPEN)
            self._probe_in_flight = True
        partition: int | None = None
        try:
            async with breaker:
                try:
                    # asyncio.timeout, not wait_for: no extra task per call.
                    begun = time.perf_counter()
                    async with asyncio.timeout(timeout_s):
                        partition = await self._partition_for(key)
                        # The last moment the caller can still be let go
                        # with nothing queued.
                        if (gone := caller_gone()) is not None:
                            raise gone
                        acknowledged = await self._acknowledged(partition, key, value)
                    # Acknowledgements only: a timeout is not an append time.
                    metrics.PUBLISH_SECONDS.observe(time.perf_counter() - begun)
                    return acknowledged
                except TimeoutError:
                    # Out of time before the hand-over, nothing was queued: a
                    # caller that cancelled hears so; one whose deadline ran
                    # out while the broker gave no partition hears what any
                    # caller does when the queue cannot take a request,
                    # UNAVAILABLE (below).
                    if partition is None and isinstance(gone := caller_gone(), Cancelled):
                        raise gone from None
                    # A broker that could not acknowledge within the silence
                    # (or the whole publish timeout, if shorter) is failing;
                    # one that merely outlasted a caller's tight deadline is not.
                    if timeout_s < min(self._publish_timeout_s, self._silence_s):
                        raise CallerDeadline from None
                    raise
        except OpenedState as exc:
            # purgatory raises one shared instance: drop the traceback it
            # would otherwise grow by a few frames per fast-failed call.
            exc.__traceback__ = None
            raise self._unavailable(
                "the queue is unavailable", Reason.BROKER_BREAKER_OPEN
            ) from None
        except (TimeoutError, CallerDeadline, BrokerSilent, KafkaError) as exc:
            raise self._unavailable(
                "the queue did not take the request in time; nothing was queued"
                if partition is None
                else "the queue did not acknowledge the request in time (it may still be applied)"
            ) from exc
        finally:
            if probing:
                self._probe_in_flight = False
            self._state = breaker.context.state

    async def _partition_for(self, key: bytes) -> int:
        """The partition Kafka's default partitioner picks for ``key`` (waits
        for the topic's metadata if the producer has none)."""
        partitions = sorted(await self._producer.partitions_for(self._topic))
        partition: int = self._partitioner(key, partitions, partitions)
        return partition

    async def _acknowledged(self, partition: int, key: bytes, value: bytes) -> RecordMetadata:
        """Appends and waits for the ack while the partition shows signs of
        life. The record stays with the producer if we stop waiting: it may
        still be appended, which a retry with the same key makes harmless."""
        loop = asyncio.get_running_loop()
        with tracing.producing(self._topic) as headers:
            delivery = await self._producer.send(
                self._topic, value, key=key, partition=partition, headers=headers
            )
            delivery.add_done_callback(functools.partial(self._delivered, partition))
            started = loop.time()
            while True:
                quiet_s = loop.time() - max(self._last_ack.get(partition, 0.0), started)
                if quiet_s >= self._silence_s:
                    raise BrokerSilent
                done, _ = await asyncio.wait((delivery,), timeout=self._silence_s - quiet_s)
                if done:
                    return cast(RecordMetadata, delivery.result())

    def _delivered(self, partition: int, delivery: asyncio.Future[RecordMetadata]) -> None:
        # Also for records nobody waits for any more: their outcome is
        # retrieved here, and an ack is a sign of life all the same.
        if not delivery.cancelled() and delivery.exception() is None:
            self._last_ack[partition] = asyncio.get_running_loop().time()
