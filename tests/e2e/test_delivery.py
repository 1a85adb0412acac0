"""Delivery guarantees against the real stack: dead letters, queue TTL, the ledger."""

from __future__ import annotations

import asyncio
import secrets
import urllib.request
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import grpc
import pytest
from aiokafka import AIOKafkaProducer
from google.protobuf.duration_pb2 import Duration
from prometheus_client.parser import text_string_to_metric_families

from ticketing.queue.v1 import queue_pb2
from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_common.config import ReservationIdSecret, variable
from ticketing_common.deadletters import Kind
from ticketing_common.domain import timestamp
from ticketing_common.record_keys import RecordKeys
from ticketing_tools.admin import dead_letters, replay
from ticketing_tools.ledger import reconcile
from ticketing_tools.stack import LocalStack

from ..helpers import (
    CONFIRMED,
    REJECTED,
    Gateway,
    Notifier,
    Reservations,
    as_user,
    consumers_paused,
    create_event,
    gateway_of_its_own,
    gateway_stub,
    get_event,
    queue_drained,
    reserve,
    watch,
)


def forged_records(stack: LocalStack, reason: str) -> float:
    """``ticketing_forged_records_total{reason}`` over the stack's consumers."""
    total = 0.0
    for child in stack.services["consumer_service"]:
        if child.alive() and child.metrics_port:
            url = f"http://127.0.0.1:{child.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=10) as reply:
                text = reply.read().decode()
            for family in text_string_to_metric_families(text):
                total += sum(
                    sample.value
                    for sample in family.samples
                    if sample.name == "ticketing_forged_records_total"
                    and sample.labels.get("reason") == reason
                )
    return total


@pytest.fixture
async def pool(stack: LocalStack) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(stack.postgres_dsn, min_size=1, max_size=2) as p:
        yield p


async def test_poison_records_are_dead_lettered_and_the_partition_keeps_flowing(
    stack: LocalStack,
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    gateway: Gateway,
    notifier: Notifier,
    reservations: Reservations,
) -> None:
    event = await create_event(reservations, capacity=5, per_user_limit=5)
    key = event.event_id.encode()  # same partition as the event's real requests
    topic = stack.kafka.requests_topic
    # An id a gateway derived: the record is bad, but its user is real.
    invalid_id = stack.reservation_id("mallory", "k", event.event_id)
    poison = [
        b"\xff\x00 definitely not protobuf",
        queue_pb2.ReservationRequested(reservation_id="nope").SerializeToString(),
        # Names a reservation, so its user can be told; quantity 0 is invalid.
        queue_pb2.ReservationRequested(
            reservation_id=invalid_id,
            event_id=event.event_id,
            user_id="mallory",
            quantity=0,
            idempotency_key="k",
            accept_time=timestamp(datetime.now(UTC)),
        ).SerializeToString(),
    ]
    sent = [await producer.send_and_wait(topic, value, key=key) for value in poison]
    after = await reserve(gateway, event.event_id, "nina", quantity=2)

    # The partition kept flowing: the valid request behind the poison is decided.
    assert (await watch(notifier, after.reservation_id))[-1].status == CONFIRMED
    # The user the bad record named is told.
    told = (await watch(notifier, invalid_id))[-1]
    assert (told.status, told.reject_reason) == (REJECTED, pb.REJECT_REASON_INVALID)
    await queue_drained(stack)

    letters = {
        (d.original_partition, d.original_offset): d
        for d in await dead_letters(stack.kafka)
        if d.original_topic == topic
    }
    for meta, value in zip(sent, poison, strict=True):
        letter = letters[(meta.partition, meta.offset)]
        assert letter.kind is Kind.UNDECODABLE
        assert letter.value == value
        assert letter.key == key
        assert letter.attempts == 1
        assert letter.error
    assert letters[(sent[2].partition, sent[2].offset)].reservation_id == invalid_id
    assert (await get_event(reservations, event.event_id)).available == 3

    ledger = await reconcile(stack.kafka, pool, event_id=event.event_id)
    assert ledger.balanced, ledger.missing
    assert ledger.seats_ok
    assert ledger.dead_lettered == 1  # the one record that names this event
    assert ledger.decided == 1

    whole = await reconcile(stack.kafka, pool)
    assert whole.balanced, whole.missing
    assert whole.seats_ok


async def test_replaying_dead_letters_applies_nothing_twice(
    stack: LocalStack, pool: asyncpg.Pool, producer: AIOKafkaProducer, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=2, per_user_limit=2)
    rid = stack.reservation_id("oscar", "", event.event_id)
    bad = queue_pb2.ReservationRequested(
        reservation_id=rid, event_id=event.event_id, user_id="oscar", quantity=-1
    ).SerializeToString()
    await producer.send_and_wait(stack.kafka.requests_topic, bad, key=event.event_id.encode())
    await queue_drained(stack)
    mine = [d for d in await dead_letters(stack.kafka) if d.reservation_id == rid]
    assert len(mine) == 1

    assert await replay(stack.kafka, mine) == 1
    await queue_drained(stack)

    rows = await pool.fetch(
        "SELECT status, reject_reason FROM reservations WHERE reservation_id = $1", uuid.UUID(rid)
    )
    assert [tuple(r) for r in rows] == [("REJECTED", "INVALID")]
    assert len([d for d in await dead_letters(stack.kafka) if d.reservation_id == rid]) == 2
    assert (await get_event(reservations, event.event_id)).available == 2
    ledger = await reconcile(stack.kafka, pool, event_id=event.event_id)
    assert ledger.balanced, ledger.missing
    assert (ledger.accepted, ledger.dead_lettered) == (2, 2)


async def test_a_request_older_than_the_queue_ttl_expires_without_taking_seats(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    reply = await reservations.CreateEvent(
        rs.CreateEventRequest(
            name="short queue", capacity=3, per_user_limit=3, queue_ttl=Duration(seconds=1)
        ),
        timeout=10,
    )
    event = reply.event
    assert event.queue_ttl.seconds == 1
    with consumers_paused(stack):
        late = await reserve(gateway, event.event_id, "paula", quantity=2)
        await asyncio.sleep(1.5)
    outcome = (await watch(notifier, late.reservation_id))[-1]
    assert (outcome.status, outcome.reject_reason) == (REJECTED, pb.REJECT_REASON_EXPIRED_IN_QUEUE)
    on_time = await reserve(gateway, event.event_id, "quinn", quantity=3)
    assert (await watch(notifier, on_time.reservation_id))[-1].status == CONFIRMED
    after = await get_event(reservations, event.event_id)
    assert (after.available, after.confirmed) == (0, 3)


@pytest.mark.parametrize("seconds", [0, 86_401])
async def test_queue_ttl_out_of_range_is_invalid(reservations: Reservations, seconds: int) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await reservations.CreateEvent(
            rs.CreateEventRequest(
                name="x", capacity=1, per_user_limit=1, queue_ttl=Duration(seconds=seconds)
            ),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("queue_ttl: ")


async def test_a_forged_record_takes_nobodys_reservation(
    stack: LocalStack,
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    gateway: Gateway,
    notifier: Notifier,
    reservations: Reservations,
) -> None:
    """Someone who can reach the broker appends records a gateway never
    would: one with the id of another user's request-to-be, and, once that
    request is decided, a copy of it for more seats with the MAC it cannot
    compute. Both are dead-lettered as forged and counted; nothing is recorded
    under the id the first names, the second changes nothing of the real
    owner's decided reservation."""
    event = await create_event(reservations, capacity=5, per_user_limit=5)
    unsigned = await asyncio.to_thread(forged_records, stack, "unsigned")
    bad_mac = await asyncio.to_thread(forged_records, stack, "bad_mac")
    victim_id = stack.reservation_id("rita", "order-9", event.event_id)
    squat = queue_pb2.ReservationRequested(
        reservation_id=victim_id,
        event_id=event.event_id,
        user_id="sam",  # not rita: the id is not this caller's
        quantity=5,
        idempotency_key="order-9",
        accept_time=timestamp(datetime.now(UTC)),
    ).SerializeToString()
    key = event.event_id.encode()
    sent = [await producer.send_and_wait(stack.kafka.requests_topic, squat, key=key)]
    real = await reserve(gateway, event.event_id, "rita", quantity=2, key="order-9")
    assert real.reservation_id == victim_id
    outcome = (await watch(notifier, victim_id))[-1]
    assert (outcome.user_id, outcome.quantity, outcome.status) == ("rita", 2, CONFIRMED)

    tampered = queue_pb2.ReservationRequested(
        reservation_id=victim_id,
        event_id=event.event_id,
        user_id="rita",
        quantity=5,
        idempotency_key="order-9",
        accept_time=timestamp(datetime.now(UTC)),
        key_id=stack.record_keys.key_id,
        mac=b"\x00" * 32,
    ).SerializeToString()
    sent.append(await producer.send_and_wait(stack.kafka.requests_topic, tampered, key=key))
    await queue_drained(stack)

    letters = {
        (d.original_partition, d.original_offset): d
        for d in await dead_letters(stack.kafka)
        if d.original_topic == stack.kafka.requests_topic
    }
    squatted, copied = (letters[(m.partition, m.offset)] for m in sent)
    assert (squatted.kind, copied.kind) == (Kind.FORGED, Kind.FORGED)
    assert squatted.reservation_id is None  # nobody told: the id is not sam's
    assert squatted.error == "the record carries no key id or no MAC"
    assert "MAC does not verify" in copied.error
    rows = await pool.fetch(
        "SELECT user_id, quantity, status FROM reservations WHERE reservation_id = $1",
        uuid.UUID(victim_id),
    )
    assert [tuple(r) for r in rows] == [("rita", 2, "CONFIRMED")]
    after = await get_event(reservations, event.event_id)
    assert (after.available, after.confirmed) == (3, 2)
    # At least: other tests' records may be counted meanwhile.
    assert await asyncio.to_thread(forged_records, stack, "unsigned") >= unsigned + 1
    assert await asyncio.to_thread(forged_records, stack, "bad_mac") >= bad_mac + 1
    ledger = await reconcile(stack.kafka, pool, event_id=event.event_id)
    assert ledger.balanced, ledger.missing
    assert ledger.dead_lettered == 2


async def test_a_record_no_consumer_can_verify_is_rejected_for_its_buyer(
    stack: LocalStack,
    pool: asyncpg.Pool,
    notifier: Notifier,
    reservations: Reservations,
) -> None:
    """A gateway signs with a key no consumer accepts (a rotation done out of
    order): its buyer's record fails verification, is dead-lettered as forged
    and counted, and the buyer is told REJECTED/INVALID on the stream and by
    GetReservation instead of seeing QUEUED until the record expires."""
    event = await create_event(reservations, capacity=5, per_user_limit=5)
    unknown = await asyncio.to_thread(forged_records, stack, "unknown_key")
    rogue = RecordKeys.single("rogue", secrets.token_hex(32).encode())
    on_rogue_key = {
        variable(ReservationIdSecret, "reservation_id_secret"): rogue.secret.decode(),
        variable(ReservationIdSecret, "reservation_key_id"): rogue.key_id,
    }
    async with gateway_of_its_own(stack, on_rogue_key) as channel:
        queued = await reserve(gateway_stub(channel), event.event_id, "vera", 2, key="v-1")
    assert queued.reservation_id == rogue.reservation_id("vera", "v-1", event.event_id)

    told = await watch(notifier, queued.reservation_id)
    assert (told[-1].user_id, told[-1].status, told[-1].reject_reason) == (
        "vera",
        REJECTED,
        pb.REJECT_REASON_INVALID,
    )
    got = await reservations.GetReservation(
        rs.GetReservationRequest(reservation_id=queued.reservation_id),
        timeout=10,
        metadata=as_user("vera"),
    )
    assert (got.reservation.status, got.reservation.reject_reason) == (
        REJECTED,
        pb.REJECT_REASON_INVALID,
    )
    await queue_drained(stack)
    [letter] = [
        d for d in await dead_letters(stack.kafka) if d.reservation_id == queued.reservation_id
    ]
    assert letter.kind is Kind.FORGED
    assert "'rogue'" in letter.error
    assert await asyncio.to_thread(forged_records, stack, "unknown_key") >= unknown + 1
    assert (await get_event(reservations, event.event_id)).available == 5
    ledger = await reconcile(stack.kafka, pool, event_id=event.event_id)
    assert ledger.balanced, ledger.missing
    assert ledger.dead_lettered == 1
