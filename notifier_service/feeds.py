"""The notifier's two Kafka feeds, read without a consumer group (every
notifier sees every partition):

- results: each decision, fanned out to watchers; read from the end as of
  start-up (older decisions are in PostgreSQL);
- requests: what was accepted and not decided yet, so a watcher of a queued
  request gets QUEUED rather than NOT_FOUND; read from the consumer group's
  committed offsets, which is where undecided requests begin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from google.protobuf.message import DecodeError

from ticketing.queue.v1 import queue_pb2
from ticketing_common import tracing
from ticketing_common.codecs import UndecodableRecord, decode_request
from ticketing_common.config import KafkaSettings
from ticketing_common.domain import DECIDED_VERSION, Reservation, is_settled
from ticketing_common.kafka import group_offsets, start_with_retry

from . import metrics
from .hub import PendingRequests, WatchHub
from .positions import QueuePositions

log = structlog.get_logger(__name__)

ASSIGNMENT_TIMEOUT_S = 30.0
# How often an idle feed's loop wakes (records wake it at once).
IDLE_WAKE_MS = 5_000

Seek = Callable[[AIOKafkaConsumer, list[TopicPartition]], Awaitable[None]]


class Feed:
    """One topic, all partitions, handled record by record in order."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        *,
        client_id: str,
        seek: Seek,
        handle: Callable[[ConsumerRecord[bytes, bytes]], None],
        fetch_max_wait_ms: int,
        linger_s: float,
    ) -> None:
        self._linger_s = linger_s
        self._topic = topic
        self._seek = seek
        self._handle = handle
        self._consumer = AIOKafkaConsumer(
            topic,
            **kafka.client_options(),
            client_id=client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # A long-poll: the broker answers as soon as a record arrives, and
            # an idle feed costs one fetch per partition leader this often.
            fetch_max_wait_ms=fetch_max_wait_ms,
        )
        # The next offset of each partition: what we have handled so far.
        self._handled: dict[TopicPartition, int] = {}
        self._progress = asyncio.Condition()

    async def start(self) -> None:
        """Connects and positions the feed; returns once it is positioned, so
        nothing published afterwards can be missed."""
        await start_with_retry(self._consumer)
        # Without a group, aiokafka assigns every partition once metadata is in;
        # it offers no event for that moment.
        async with asyncio.timeout(ASSIGNMENT_TIMEOUT_S):
            while not self._consumer.assignment():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        partitions = sorted(self._consumer.assignment())
        await self._seek(self._consumer, partitions)
        for tp in partitions:
            self._handled[tp] = await self._consumer.position(tp)
        log.info(
            "feed_positioned",
            topic=self._topic,
            positions={tp.partition: o for tp, o in self._handled.items()},
        )

    async def stop(self) -> None:
        await self._consumer.stop()

    @property
    def partitions(self) -> list[TopicPartition]:
        return list(self._handled)

    def lag(self) -> int:
        """Records behind the partitions' ends, as of the last fetch."""
        behind = 0
        for tp, handled in list(self._handled.items()):
            end = self._consumer.highwater(tp)
            if end is not None:
                behind += max(0, end - handled)
        return behind

    async def run(self) -> None:
        """Reads for ever. The broker going away is absorbed by aiokafka; any
        other failure is logged and the read retried, so watchers keep their
        streams (PostgreSQL re-reads cover what a feed could not deliver)."""
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=IDLE_WAKE_MS, max_records=2_000)
            except KafkaError as exc:
                log.error("feed_read_failed", topic=self._topic, error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            for tp, records in batch.items():
                for record in records:
                    try:
                        self._handle(record)
                    except Exception:  # one bad record must not stop the feed
                        log.exception(
                            "feed_record_failed", partition=record.partition, offset=record.offset
                        )
                if records:
                    self._handled[tp] = records[-1].offset + 1
            if batch:
                async with self._progress:
                    self._progress.notify_all()
                # Let the next records gather (see KafkaSettings.fetch_linger_ms).
                await asyncio.sleep(self._linger_s)

    async def catch_up(self, timeout_s: float) -> bool:
        """Waits until everything the broker held when called has been handled;
        False if that could not be confirmed in time."""
        try:
            async with asyncio.timeout(timeout_s):
                ends = await self._consumer.end_offsets(list(self._handled))
                async with self._progress:
                    await self._progress.wait_for(
                        lambda: all(self._handled.get(tp, 0) >= end for tp, end in ends.items())
                    )
        except (TimeoutError, KafkaError):
            return False
        return True


async def seek_to_end(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
    await consumer.seek_to_end(*partitions)


def seek_to_group_commits(kafka: KafkaSettings, group: str) -> Seek:
    async def seek(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        committed = await group_offsets(kafka, group, partitions)
        missing: list[TopicPartition] = []
        for tp in partitions:
            offset = committed.get(tp)
            if offset is not None:
                consumer.seek(tp, offset)
            else:
                missing.append(tp)
        if missing:
            await consumer.seek_to_beginning(*missing)

    return seek


def on_result(
    hub: WatchHub,
    pending: PendingRequests,
    positions: QueuePositions,
    touched: Callable[[str], None] = lambda _: None,
) -> Callable[[ConsumerRecord[bytes, bytes]], None]:
    def handle(record: ConsumerRecord[bytes, bytes]) -> None:
        message = queue_pb2.ReservationDecided()
        try:
            message.ParseFromString(record.value or b"")
        except DecodeError:
            log.error("undecodable_result", partition=record.partition, offset=record.offset)
            return
        if message.reservation.version == 0:
            # Decided by a consumer older than versions (a rollout, a replay).
            message.reservation.version = DECIDED_VERSION
        # Older writers leave `settled` out; watch streams end on it.
        message.reservation.settled = is_settled(message.reservation)
        pending.discard(message.reservation.reservation_id)
        positions.on_result(message.reservation)  # before watchers look
        with tracing.handing_over(record.headers, message.reservation.reservation_id) as span:
            watchers = hub.publish(message.reservation)
            span.set_attribute("ticketing.watchers", watchers)
        if watchers and message.reservation.HasField("update_time"):
            changed = message.reservation.update_time.ToDatetime(tzinfo=UTC)
            metrics.DECIDE_TO_STREAM.observe(
                max(0.0, (datetime.now(UTC) - changed).total_seconds())
            )
        touched(message.reservation.event_id)

    return handle


def on_request(
    hub: WatchHub, pending: PendingRequests, positions: QueuePositions
) -> Callable[[ConsumerRecord[bytes, bytes]], None]:
    def handle(record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            request = decode_request(record.value, partition=record.partition, offset=record.offset)
        except UndecodableRecord:
            return  # the consumer reports it; nobody can watch it
        queued = Reservation.queued(
            request.reservation_id,
            request.event_id,
            request.user_id,
            request.quantity,
            request.accepted_at,
        ).to_proto()
        pending.add(queued)
        positions.queued(
            request.reservation_id, request.event_id, record.partition, record.offset, request.tier
        )
        # A watcher that called a moment after Reserve is usually waiting for this.
        hub.publish(queued)

    return handle
