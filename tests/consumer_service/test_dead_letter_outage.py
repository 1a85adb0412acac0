"""A dead letter whose rejection PostgreSQL cannot store, against the real
stack: the record waits (its offset is not committed) until the outage ends,
and its buyer is then told, once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer

from ticketing.v1 import reservation_pb2 as pb
from ticketing_common.codecs import encode_request
from ticketing_common.deadletters import Kind
from ticketing_common.decisions import Request
from ticketing_tools.admin import dead_letters
from ticketing_tools.ledger import committed_offsets, end_offsets, reconcile
from ticketing_tools.stack import LocalStack

from ..helpers import (
    REJECTED,
    Notifier,
    Reservations,
    create_event,
    queue_drained,
    reservation_rows,
    watch_until,
)

# How a consumer logs a statement that names a column the schema lacks.
UNDEFINED_COLUMN = "UndefinedColumnError"
# The consumer retries with backoff: a few tries, seconds apart at most.
TRIES_SEEN = 2


async def test_a_schema_mid_migration_holds_a_dead_letter_until_its_rejection_is_stored(
    stack: LocalStack, notifier: Notifier, reservations: Reservations
) -> None:
    """A migration renames a column the REJECTED row needs while a bad record
    (signed by a gateway, quantity 0) waits: an outage of the schema, not the
    record's fault. The record is retried, not dead-lettered with its buyer
    untold; once the schema is whole its buyer hears REJECTED/INVALID."""
    event = await create_event(reservations, capacity=3, per_user_limit=3)
    rid = stack.reservation_id("mig", "mid-migration", event.event_id)
    value = encode_request(
        Request(
            reservation_id=rid,
            event_id=event.event_id,
            user_id="mig",
            quantity=0,
            idempotency_key="mid-migration",
            accepted_at=datetime.now(UTC),
            partition=0,
            offset=0,
        ),
        stack.record_keys,
    )
    topic = stack.kafka.requests_topic
    logs = [child.log for child in stack.services["consumer_service"]]
    refusals_before = sum(log.read_text().count(UNDEFINED_COLUMN) for log in logs)
    dead_before = await end_offsets(stack.kafka, stack.kafka.dead_letter_topic)

    owner = await asyncpg.connect(stack.owner_dsn)
    producer = AIOKafkaProducer(**stack.kafka.client_options(), acks="all")
    await producer.start()
    try:
        await owner.execute(
            "ALTER TABLE reservations RENAME COLUMN reject_reason TO reject_reason_migrating"
        )
        try:
            sent = await producer.send_and_wait(topic, value, key=event.event_id.encode())
            # The fault hit the window: the rejection was tried and refused,
            # and tried again (a record passed untold is tried once).
            async with asyncio.timeout(60):
                while (
                    sum(log.read_text().count(UNDEFINED_COLUMN) for log in logs)
                    < refusals_before + TRIES_SEEN
                ):
                    await asyncio.sleep(0.1)
            committed = await committed_offsets(
                stack.kafka, stack.kafka.consumer_group, topic, [sent.partition]
            )
            assert committed.get(sent.partition, 0) <= sent.offset
            assert await end_offsets(stack.kafka, stack.kafka.dead_letter_topic) == dead_before
        finally:
            await owner.execute(
                "ALTER TABLE reservations RENAME COLUMN reject_reason_migrating TO reject_reason"
            )
    finally:
        await producer.stop()
        await owner.close()

    told = (await watch_until(notifier, rid, lambda r: r.status == REJECTED, timeout=60))[-1]
    assert (told.status, told.reject_reason) == (REJECTED, pb.REJECT_REASON_INVALID)
    await queue_drained(stack, timeout_s=60)
    rows = await reservation_rows(stack.postgres_dsn, rid)
    assert [(r["status"], r["reject_reason"]) for r in rows] == [("REJECTED", "INVALID")]
    letters = [
        d
        for d in await dead_letters(stack.kafka)
        if (d.original_topic, d.original_partition, d.original_offset)
        == (topic, sent.partition, sent.offset)
    ]
    assert [(d.kind, d.reservation_id) for d in letters] == [(Kind.UNDECODABLE, rid)]
    async with asyncpg.create_pool(stack.postgres_dsn, min_size=1, max_size=2) as pool:
        ledger = await reconcile(stack.kafka, pool, event_id=event.event_id)
    assert ledger.balanced, ledger.missing
    assert ledger.dead_lettered == 1
