"""Kafka clients: the producer's settings, topic creation, committed offsets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
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

from .config import KafkaSettings

log = structlog.get_logger(__name__)


def new_producer(
    kafka: KafkaSettings, *, client_id: str, linger_ms: int = 1, request_timeout_ms: int = 5_000
) -> AIOKafkaProducer:
    """A producer that only reports success once every in-sync replica has the
    record, and whose retries never write a record twice or out of order
    (idempotent: the broker drops a batch it already has). Duplicates that a
    client's own retry creates are recognised downstream by reservation id."""
    return AIOKafkaProducer(
        **kafka.client_options(),
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
    kafka: KafkaSettings, step: Callable[[AIOKafkaAdminClient], Awaitable[T]], *, retry_for_s: float
) -> T:
    """Runs ``step`` with a fresh admin client until it succeeds, retrying
    retriable Kafka errors and ``NotReady`` for ``retry_for_s``."""
    deadline = asyncio.get_running_loop().time() + retry_for_s
    while True:
        admin = AIOKafkaAdminClient(**kafka.client_options(), client_id="ticketing-admin")
        try:
            await admin.start()
            return await step(admin)
        except (KafkaError, NotReady) as exc:
            retriable = isinstance(exc, NotReady) or exc.retriable
            if not retriable or asyncio.get_running_loop().time() > deadline:
                if isinstance(exc, NotReady):
                    raise TimeoutError(
                        f"Kafka at {kafka.bootstrap}: {exc} after {retry_for_s:.0f} s"
                    ) from None
                raise
            log.info("kafka_not_ready", error=repr(exc))
        finally:
            await admin.close()
        await asyncio.sleep(0.3)


async def ensure_topics(settings: KafkaSettings, *, retry_for_s: float = 60.0) -> None:
    """Creates the requests, results, dead-letter and payments topics if they do not
    exist yet, and returns once every partition of each has a leader.

    It waits for the cluster first: a broker that has just started may accept
    connections before it (or enough of its peers, for the replication
    factor) has registered, and would refuse the topics.
    """
    names = (
        settings.requests_topic,
        settings.results_topic,
        settings.dead_letter_topic,
        settings.payments_topic,
    )

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

    await with_admin(settings, step, retry_for_s=retry_for_s)


def _all_led(topics: Sequence[dict[str, Any]], count: int) -> bool:
    """Every named topic exists and each of its partitions has a leader."""
    return len(topics) == count and all(
        topic["error_code"] == 0
        and topic["partitions"]
        and all(p["leader"] >= 0 for p in topic["partitions"])
        for topic in topics
    )


async def group_offsets(
    kafka: KafkaSettings,
    group: str,
    partitions: Sequence[TopicPartition],
    *,
    retry_for_s: float = 30.0,
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

    return await with_admin(kafka, step, retry_for_s=retry_for_s)
