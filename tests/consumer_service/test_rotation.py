"""A key rotation and a skewed clock drop no buyer, against the real stack:
a record signed with the accepted previous key is decided, so is one a
gateway accepted ahead of the consumers' clock, and a retry across the key
switch keeps its reservation id."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer

from ticketing_common.codecs import encode_request
from ticketing_common.config import ReservationIdSecret, variable
from ticketing_common.decisions import Request
from ticketing_common.record_keys import RecordKeys
from ticketing_tools.stack import LocalStack

from ..helpers import (
    CONFIRMED,
    PREVIOUS_RECORD_KEYS,
    Gateway,
    Notifier,
    Reservations,
    create_event,
    gateway_of_its_own,
    gateway_stub,
    get_event,
    queue_drained,
    reservation_rows,
    reserve,
    watch,
)


def request_on(
    keys: RecordKeys, event_id: str, user: str, *, accepted_at: datetime | None = None
) -> Request:
    """The request a gateway on ``keys`` appends for ``user``."""
    key = uuid.uuid4().hex
    return Request(
        reservation_id=keys.reservation_id(user, key, event_id),
        event_id=event_id,
        user_id=user,
        quantity=1,
        idempotency_key=key,
        accepted_at=accepted_at or datetime.now(UTC),
    )


async def test_a_record_signed_with_the_previous_key_is_decided(
    stack: LocalStack,
    producer: AIOKafkaProducer,
    notifier: Notifier,
    reservations: Reservations,
) -> None:
    """Mid-rotation a gateway still on the previous key appends: the
    consumers, which accept that key besides their own, decide its record."""
    event = await create_event(reservations, capacity=2, per_user_limit=2)
    request = request_on(PREVIOUS_RECORD_KEYS, event.event_id, "petra")
    await producer.send_and_wait(
        stack.kafka.requests_topic,
        encode_request(request, PREVIOUS_RECORD_KEYS),
        key=event.event_id.encode(),
    )
    outcome = (await watch(notifier, request.reservation_id))[-1]
    assert (outcome.user_id, outcome.status) == ("petra", CONFIRMED)
    assert (await get_event(reservations, event.event_id)).confirmed == 1


async def test_a_record_accepted_ahead_of_the_consumers_clock_is_decided(
    stack: LocalStack,
    producer: AIOKafkaProducer,
    notifier: Notifier,
    reservations: Reservations,
) -> None:
    """A gateway whose clock runs an hour fast signed the record: it is
    genuine and decided, and stored as accepted no later than decided."""
    event = await create_event(reservations, capacity=2, per_user_limit=2)
    ahead = datetime.now(UTC) + timedelta(hours=1)
    request = request_on(stack.record_keys, event.event_id, "felix", accepted_at=ahead)
    await producer.send_and_wait(
        stack.kafka.requests_topic,
        encode_request(request, stack.record_keys),
        key=event.event_id.encode(),
    )
    outcome = (await watch(notifier, request.reservation_id))[-1]
    assert (outcome.user_id, outcome.status) == ("felix", CONFIRMED)
    [row] = await reservation_rows(stack.postgres_dsn, request.reservation_id)
    assert row["accepted_at"] <= row["decided_at"] < ahead


async def test_a_retry_across_the_key_switch_keeps_its_id_and_is_decided_once(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    """Rotation step 2 under way: one gateway signs with the previous key
    (the stack's own accepted), the others with the stack's. A request
    accepted by the first is decided, and its retry through the others gets
    the same id instead of becoming a second request."""
    event = await create_event(reservations, capacity=3, per_user_limit=3)
    on_previous = {
        variable(ReservationIdSecret, "reservation_id_secret"): (
            PREVIOUS_RECORD_KEYS.secret.decode()
        ),
        variable(ReservationIdSecret, "reservation_key_id"): PREVIOUS_RECORD_KEYS.key_id,
        variable(ReservationIdSecret, "reservation_verify_keys"): json.dumps(
            {stack.record_keys.key_id: stack.record_keys.secret.decode()}
        ),
    }
    async with gateway_of_its_own(stack, on_previous) as channel:
        first = await reserve(gateway_stub(channel), event.event_id, "rosa", 2, key="order-7")
    assert first.reservation_id == PREVIOUS_RECORD_KEYS.reservation_id(
        "rosa", "order-7", event.event_id
    )
    retry = await reserve(gateway, event.event_id, "rosa", 2, key="order-7")
    assert retry.reservation_id == first.reservation_id
    outcome = (await watch(notifier, first.reservation_id))[-1]
    assert (outcome.user_id, outcome.quantity, outcome.status) == ("rosa", 2, CONFIRMED)
    await queue_drained(stack)
    after = await get_event(reservations, event.event_id)
    assert (after.available, after.confirmed) == (1, 2)
