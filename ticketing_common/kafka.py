"""Kafka helpers: producer settings, topic creation, record codecs.

Everything here works unchanged against Apache Kafka. Against the local
Tansu broker the idempotent producer is not available, so ``acks=all`` plus
our own idempotency (reservation id as primary key) carries exactly-once
effects.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError
from aiokafka.structs import ConsumerRecord
from google.protobuf.message import DecodeError

from ticketing.v1 import queue_pb2

from .config import KafkaSettings
from .decisions import Request
from .domain import from_timestamp, timestamp

log = structlog.get_logger(__name__)

# Longest user_id / idempotency_key the gateway accepts.
MAX_TEXT = 128


def new_producer(
    bootstrap: str, *, client_id: str, linger_ms: int = 1, request_timeout_ms: int = 5_000
) -> AIOKafkaProducer:
    """A producer that only reports success once every in-sync replica has the record."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        linger_ms=linger_ms,
        request_timeout_ms=request_timeout_ms,
        max_batch_size=256 * 1024,
    )


class Startable(Protocol):
    async def start(self) -> None: ...


async def start_with_retry(client: Startable, *, retry_for_s: float = 30.0) -> None:
    """Starts an aiokafka client, retrying while the broker is still coming up."""
    deadline = asyncio.get_running_loop().time() + retry_for_s
    while True:
        try:
            await client.start()
            return
        except KafkaConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("kafka_not_ready_retrying")
            await asyncio.sleep(0.5)


async def ensure_topics(settings: KafkaSettings, *, retry_for_s: float = 30.0) -> None:
    """Creates the requests and results topics if they do not exist yet."""
    deadline = asyncio.get_running_loop().time() + retry_for_s
    while True:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.bootstrap, client_id="ticketing-admin"
        )
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            wanted = [
                NewTopic(name, settings.partitions, settings.replication_factor)
                for name in (
                    settings.requests_topic,
                    settings.results_topic,
                    settings.dead_letter_topic,
                )
                if name not in existing
            ]
            if wanted:
                # Another process may have created them since we listed.
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(wanted)
                log.info("topics_created", topics=[t.name for t in wanted])
            return
        except KafkaConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


def encode_request(request: Request) -> bytes:
    return queue_pb2.ReservationRequested(
        reservation_id=request.reservation_id,
        event_id=request.event_id,
        user_id=request.user_id,
        quantity=request.quantity,
        idempotency_key=request.idempotency_key,
        accept_time=timestamp(request.accepted_at),
    ).SerializeToString()


class UndecodableRecord(ValueError):
    pass


def decode_request(value: bytes | None, *, partition: int, offset: int) -> Request:
    """Decodes and sanity-checks one requests-topic record."""
    if value is None:
        raise UndecodableRecord("empty record")
    message = queue_pb2.ReservationRequested()
    try:
        message.ParseFromString(value)
    except DecodeError as exc:
        raise UndecodableRecord(f"not a ReservationRequested: {exc}") from None
    if not (
        message.reservation_id
        and message.event_id
        and message.user_id
        and message.quantity >= 1
        and message.HasField("accept_time")
    ):
        raise UndecodableRecord("ReservationRequested misses required fields")
    try:
        reservation_id = str(uuid.UUID(message.reservation_id))
        event_id = str(uuid.UUID(message.event_id))
    except ValueError:
        raise UndecodableRecord("reservation_id and event_id must be UUIDs") from None
    for name, text in (("user_id", message.user_id), ("idempotency_key", message.idempotency_key)):
        if len(text) > MAX_TEXT or "\x00" in text:
            raise UndecodableRecord(f"{name} is longer than {MAX_TEXT} or holds NUL")
    try:
        accepted_at: datetime = from_timestamp(message.accept_time)
    except (ValueError, OverflowError):
        raise UndecodableRecord("accept_time is out of range") from None
    return Request(
        reservation_id=reservation_id,
        event_id=event_id,
        user_id=message.user_id,
        quantity=message.quantity,
        idempotency_key=message.idempotency_key,
        accepted_at=accepted_at,
        partition=partition,
        offset=offset,
    )


def _storable(text: str) -> str:
    """What PostgreSQL can store of a field we only keep for the record."""
    return text.replace("\x00", "")[:MAX_TEXT]


NIL_EVENT = str(uuid.UUID(int=0))


def salvage(
    value: bytes | None, *, partition: int, offset: int, timestamp_ms: int
) -> Request | None:
    """What can be recovered from a record ``decode_request`` refused: enough
    to record and tell its user the outcome, if it names a reservation id."""
    message = queue_pb2.ReservationRequested()
    try:
        message.ParseFromString(value or b"")
        reservation_id = str(uuid.UUID(message.reservation_id))
    except (DecodeError, ValueError):
        return None
    try:
        event_id = str(uuid.UUID(message.event_id))
    except ValueError:
        event_id = NIL_EVENT
    try:
        accepted_at = from_timestamp(message.accept_time)
    except (ValueError, OverflowError):
        accepted_at = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    if not message.HasField("accept_time"):
        accepted_at = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return Request(
        reservation_id=reservation_id,
        event_id=event_id,
        user_id=_storable(message.user_id),
        quantity=message.quantity,
        idempotency_key=_storable(message.idempotency_key),
        accepted_at=accepted_at,
        partition=partition,
        offset=offset,
    )


class OffsetGuard:
    """The next offset each partition must deliver, and the cut at a gap.

    Offsets of a non-compacted, non-transactional topic are contiguous, so a
    gap means the broker showed a later record batch before an earlier one
    (the local Kafka-API broker can, under concurrent appends; the Kafka
    client then drops the earlier records as already read). ``cut`` keeps the
    contiguous part of a fetch and names the first missing offset to re-read
    from. A gap that persists for ``patience_s`` is accepted and logged as an
    error (nothing can be done about it but say so).
    """

    def __init__(self, *, patience_s: float = 5.0) -> None:
        self.expected: dict[TopicPartition, int] = {}
        self._patience_s = patience_s
        self._gap_since: dict[TopicPartition, float] = {}

    def forget(self, tp: TopicPartition) -> None:
        self.expected.pop(tp, None)
        self._gap_since.pop(tp, None)

    def cut(
        self, tp: TopicPartition, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> tuple[Sequence[ConsumerRecord[bytes, bytes]], int | None]:
        """(records up to the first gap, the offset to re-read from or None)."""
        if not records:
            return records, None
        expected = self.expected.get(tp, records[0].offset)
        for index, record in enumerate(records):
            if record.offset != expected:
                since = self._gap_since.setdefault(tp, time.monotonic())
                if time.monotonic() - since <= self._patience_s:
                    log.warning(
                        "offset_gap",
                        topic=tp.topic,
                        partition=tp.partition,
                        missing_from=expected,
                        next_seen=record.offset,
                    )
                    return records[:index], expected
                log.error(
                    "offset_gap_accepted",
                    topic=tp.topic,
                    partition=tp.partition,
                    missing_from=expected,
                    next_seen=record.offset,
                )
                break
            expected += 1
        self._gap_since.pop(tp, None)
        return records, None
