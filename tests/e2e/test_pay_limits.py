"""Card testing, from outside through nginx: a hold takes a handful of
declined payments, then no more attempts (RESOURCE_EXHAUSTED with a
RetryInfo) while it stays HELD until it runs out; and one customer's Pay
calls are rate limited. Both limits are on in the local stack as anywhere."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest

from payment_service.settings import PaymentSettings
from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_common.status import reason, retry_delay_s

from ..helpers import (
    HELD,
    Gateway,
    Notifier,
    Payments,
    Reservations,
    as_user,
    create_priced_event,
    hold_for,
    pay,
    watch_until,
)

DECLINED = pb.PAYMENT_STATUS_DECLINED
HOLD_S = 120
# The defaults, which the local stack keeps.
MAX_DECLINES = PaymentSettings.model_fields["max_declines"].default
PAY_PER_SUBJECT = PaymentSettings.model_fields["rate_per_subject"].default
PAY_WINDOW_S = PaymentSettings.model_fields["rate_window_s"].default


async def test_a_burst_of_declined_payments_on_one_hold_is_refused_before_its_end(
    gateway: Gateway, notifier: Notifier, payments: Payments, reservations: Reservations
) -> None:
    event = await create_priced_event(reservations, capacity=1, hold_s=HOLD_S)
    hold = await hold_for(gateway, notifier, event.event_id, "carder")
    for attempt in range(MAX_DECLINES):
        payment = await pay(
            payments, hold.reservation_id, "carder", "test-declined", key=f"card-{attempt}"
        )

        def declined(r: pb.Reservation, payment_id: str = payment.payment_id) -> bool:
            return r.payment_id == payment_id and r.payment_status == DECLINED

        await watch_until(notifier, hold.reservation_id, declined)

    # The next attempt is refused, whatever the card: no more tries on this hold.
    for method in ("test-declined", "test-ok"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await pay(payments, hold.reservation_id, "carder", method, key=f"more-{method}")
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason(refused.value) == "PAYMENT_ATTEMPTS_EXHAUSTED"
        delay = retry_delay_s(refused.value)
        assert delay is not None and 0 < delay <= HOLD_S  # the rest of the hold

    # An attempt made before is still answered as before (the same payment).
    again = await pay(
        payments, hold.reservation_id, "carder", "test-declined", key=f"card-{MAX_DECLINES - 1}"
    )
    assert (again.payment_id, again.status) == (payment.payment_id, DECLINED)
    # The hold stays HELD until it runs out; nothing was charged.
    current = await reservations.GetReservation(
        rs.GetReservationRequest(reservation_id=hold.reservation_id),
        metadata=as_user("carder"),
        timeout=10,
    )
    assert current.reservation.status == HELD
    assert current.reservation.payment_status == DECLINED


async def test_a_customers_pay_calls_are_rate_limited(payments: Payments) -> None:
    # The window is aligned to wall-clock multiples: start the burst well
    # inside one.
    left_s = PAY_WINDOW_S - time.time() % PAY_WINDOW_S
    if left_s < 10:
        await asyncio.sleep(left_s + 0.01)
    answers = []
    for _ in range(PAY_PER_SUBJECT + 2):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            # An unknown reservation: each call is counted, none pays.
            await pay(payments, str(uuid.uuid4()), "hammer", "test-ok")
        answers.append(refused.value)
    assert [a.code() for a in answers[:PAY_PER_SUBJECT]] == [
        grpc.StatusCode.NOT_FOUND
    ] * PAY_PER_SUBJECT
    for refused_call in answers[PAY_PER_SUBJECT:]:
        assert refused_call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason(refused_call) == "RATE_LIMITED"
        delay = retry_delay_s(refused_call)
        assert delay is not None and 0 < delay <= PAY_WINDOW_S
    # Another customer is not held back.
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await pay(payments, str(uuid.uuid4()), "bystander", "test-ok")
    assert other.value.code() == grpc.StatusCode.NOT_FOUND
