"""Kafka helpers: producer settings, topic creation, record codecs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    KafkaConnectionError,
    KafkaError,
    TopicAlreadyExistsError,
    for_code,
)
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
    """A producer that only reports success once every in-sync replica has the
    record, and whose retries never write a record twice or out of order
    (idempotent: the broker drops a batch it already has). Duplicates that a
    client's own retry creates are recognised downstream by reservation id."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
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


T = TypeVar("T")


class NotReady(Exception):
    """An admin step found the cluster not ready yet; the message says how."""


async def with_admin(
    bootstrap: str, step: Callable[[AIOKafkaAdminClient], Awaitable[T]], *, retry_for_s: float
) -> T:
    """Runs ``step`` with a fresh admin client until it succeeds, retrying
    retriable Kafka errors and ``NotReady`` for ``retry_for_s``."""
    deadline = asyncio.get_running_loop().time() + retry_for_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="ticketing-admin")
        try:
            await admin.start()
            return await step(admin)
        except (KafkaError, NotReady) as exc:
            retriable = isinstance(exc, NotReady) or exc.retriable
            if not retriable or asyncio.get_running_loop().time() > deadline:
                if isinstance(exc, NotReady):
                    raise TimeoutError(
                        f"Kafka at {bootstrap}: {exc} after {retry_for_s:.0f} s"
                    ) from None
                raise
            log.info("kafka_not_ready", error=repr(exc))
        finally:
            await admin.close()
        await asyncio.sleep(0.3)


async def ensure_topics(settings: KafkaSettings, *, retry_for_s: float = 60.0) -> None:
    """Creates the requests, results and dead-letter topics if they do not
    exist yet, and returns once every partition of each has a leader.

    It waits for the cluster first: a broker that has just started may accept
    connections before it (or enough of its peers, for the replication
    factor) has registered, and would refuse the topics.
    """
    names = (settings.requests_topic, settings.results_topic, settings.dead_letter_topic)

    async def step(admin: AIOKafkaAdminClient) -> None:
        brokers = (await admin.describe_cluster())["brokers"]
        if len(brokers) < settings.replication_factor:
            raise NotReady(
                f"{len(brokers)} brokers registered, replication factor "
                f"{settings.replication_factor}"
            )
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name, settings.partitions, settings.replication_factor)
            for name in names
            if name not in existing
        ]
        if wanted:
            response = await admin.create_topics(wanted)
            for topic, code, *_ in response.topic_errors:
                # Another process may have created it since we listed.
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise for_code(code)(f"cannot create topic {topic}")
            log.info("topics_created", topics=[t.name for t in wanted])
        if not _all_led(await admin.describe_topics(list(names)), len(names)):
            raise NotReady("topic partitions without a leader")

    await with_admin(settings.bootstrap, step, retry_for_s=retry_for_s)


def _all_led(topics: Sequence[dict[str, Any]], count: int) -> bool:
    """Every named topic exists and each of its partitions has a leader."""
    return len(topics) == count and all(
        topic["error_code"] == 0
        and topic["partitions"]
        and all(p["leader"] >= 0 for p in topic["partitions"])
        for topic in topics
    )


async def group_offsets(
    bootstrap: str, group: str, partitions: Sequence[TopicPartition], *, retry_for_s: float = 30.0
) -> dict[TopicPartition, int | None]:
    """The group's committed offset per partition (None: nothing committed).

    Retried while the answer is a retriable error: the group coordinator is
    not available until the offsets topic exists and has a leader (a new
    cluster creates it on first use), and it moves when its broker fails.
    """

    async def step(admin: AIOKafkaAdminClient) -> dict[TopicPartition, int | None]:
        found = await admin.list_consumer_group_offsets(group, partitions=list(partitions))
        if set(found) != set(partitions):
            # A group-level error (coordinator loading or moved) comes back
            # as an answer without partitions, not as an exception.
            raise GroupCoordinatorNotAvailableError(f"no offsets for {group} yet")
        return {tp: (meta.offset if meta.offset >= 0 else None) for tp, meta in found.items()}

    return await with_admin(bootstrap, step, retry_for_s=retry_for_s)


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
