"""``PaymentService``: starts payments for held seats and shows them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import structlog

from ticketing.v1 import payment_service_pb2 as pb
from ticketing.v1 import payment_service_pb2_grpc as pb_grpc
from ticketing_common import fields
from ticketing_common.auth import caller
from ticketing_common.codecs import MAX_TEXT
from ticketing_common.domain import Reservation, Status, parse_uuid
from ticketing_common.errors import (
    FailedPrecondition,
    IdempotencyKeyReused,
    NotFound,
    Reason,
    ResourceExhausted,
    Violations,
)
from ticketing_common.storage import seats
from ticketing_common.storage.db import Connection
from ticketing_common.storage.rate_limits import RateLimits

from . import metrics
from .provider import Provider
from .store import Payment, declined_attempts, fetch_payment, insert_payment, payment_by_key

log = structlog.get_logger(__name__)

MAX_METHOD = 100
MAX_KEY = MAX_TEXT  # as long as Reserve's

Context = grpc.aio.ServicerContext[Any, Any]


class PaymentServicer(pb_grpc.PaymentServiceServicer):
    def __init__(
        self,
        pool: asyncpg.Pool,
        provider: Provider,
        *,
        saga_timeout: timedelta,
        limits: RateLimits,
        max_declines: int,
    ) -> None:
        """``limits`` counts each subject's calls; past ``max_declines``
        declined attempts (0: no limit) a hold takes no more."""
        self._pool = pool
        self._provider = provider
        self._saga_timeout = saga_timeout
        self._limits = limits
        self._max_declines = max_declines

    async def Pay(self, request: pb.PayRequest, context: Context) -> pb.PayResponse:
        await self._limits.admit(subject=caller().subject)
        problems = Violations()
        reservation_id = problems.check(parse_uuid, "reservation_id", request.reservation_id)
        method = problems.check(
            fields.text, "payment_method", request.payment_method.strip(), MAX_METHOD
        )
        if method is not None and (why := self._provider.check_method(method)) is not None:
            problems.add("payment_method", why)
        # The same rule as Reserve's key: it is stored, and names the attempt.
        key = problems.check(fields.text, "idempotency_key", request.idempotency_key, MAX_KEY)
        problems.raise_if_any()
        assert reservation_id is not None and method is not None and key is not None

        async with self._pool.acquire() as conn, conn.transaction():
            reservation = await seats.lock_reservation(conn, reservation_id)
            if reservation is None or not caller().may_see(reservation.user_id):
                raise _reservation_not_found(reservation_id)
            first = await payment_by_key(conn, reservation_id, key)
            if first is not None:  # the same attempt again: the same answer
                if first.method != method:
                    raise IdempotencyKeyReused(
                        f"idempotency_key {key!r} was used for another payment_method on this "
                        "reservation; use a new key for another attempt",
                        metadata={"payment_id": first.payment_id},
                    )
                return pb.PayResponse(payment=_shown(first))
            _payable(reservation)
            if why := self._provider.check_amount(reservation.currency, reservation.amount_minor):
                raise FailedPrecondition(
                    f"reservation {reservation_id} cannot be paid for: {why}",
                    reason=Reason.AMOUNT_NOT_PAYABLE,
                    metadata={"currency": reservation.currency},
                )
            # Counted under the reservation's row lock, with no attempt open
            # (_payable): no two calls can both take the last try.
            await self._attempts_left(conn, reservation)
            payment = await insert_payment(
                conn,
                reservation,
                idempotency_key=key,
                method=method,
                saga_timeout=self._saga_timeout,
                provider=self._provider.name,
            )
        assert payment is not None  # the row lock rules out a concurrent insert
        log.info(
            "payment_started",
            payment_id=payment.payment_id,
            reservation_id=reservation_id,
            amount=payment.amount.amount_minor,
        )
        return pb.PayResponse(payment=_shown(payment))

    async def _attempts_left(self, conn: Connection, reservation: Reservation) -> None:
        """Refuses another attempt on a hold that has had ``max_declines``
        declined ones (card testing): it stays HELD until it runs out."""
        if not self._max_declines:
            return
        declined = await declined_attempts(conn, reservation.reservation_id)
        if declined < self._max_declines:
            return
        metrics.PAY_REFUSED.labels("declines").inc()
        expires = reservation.hold_expires_at
        left_s = 0.0 if expires is None else (expires - datetime.now(UTC)).total_seconds()
        raise ResourceExhausted(
            f"reservation {reservation.reservation_id} has had {declined} declined payment "
            f"attempts, the most one hold takes; it stays held until it runs out, and a new "
            "reservation may be paid for after",
            reason=Reason.PAYMENT_ATTEMPTS_EXHAUSTED,
            metadata={
                "reservation_id": reservation.reservation_id,
                "declined": str(declined),
                "limit": str(self._max_declines),
            },
            retry_after_s=max(0.001, left_s),
        )

    async def GetPayment(
        self, request: pb.GetPaymentRequest, context: Context
    ) -> pb.GetPaymentResponse:
        payment_id = parse_uuid("payment_id", request.payment_id)
        payment = await fetch_payment(self._pool, payment_id)
        if payment is None or not caller().may_see(payment.user_id):
            raise NotFound(
                f"payment {payment_id} not found",
                reason=Reason.PAYMENT_NOT_FOUND,
                metadata={"payment_id": payment_id},
            )
        return pb.GetPaymentResponse(payment=_shown(payment))


def _shown(payment: Payment) -> pb.Payment:
    """The payment as the caller may see it: the client secret of a 3-D
    Secure step (with which the payment can be completed) to its owner only,
    not to an administrator."""
    return payment.to_proto(client_secret=caller().subject == payment.user_id)


def _payable(reservation: Reservation) -> None:
    """Refuses a payment the reservation cannot take now."""
    now = datetime.now(UTC)
    if reservation.status is not Status.HELD or (
        reservation.hold_expires_at is not None and reservation.hold_expires_at <= now
    ):
        status = (
            "HELD past its deadline"
            if reservation.status is Status.HELD
            else (reservation.status.value)
        )
        raise FailedPrecondition(
            f"reservation {reservation.reservation_id} is {status}: only a HELD reservation "
            "can be paid for, before its hold expires",
            reason=Reason.RESERVATION_NOT_HELD,
            metadata={"status": reservation.status.value},
        )
    if reservation.payment_status is not None and reservation.payment_status.open:
        raise FailedPrecondition(
            f"payment {reservation.payment_id} for this reservation is under way "
            f"({reservation.payment_status.value}); wait for its outcome",
            reason=Reason.PAYMENT_IN_PROGRESS,
            metadata={"payment_id": reservation.payment_id or ""},
        )


def _reservation_not_found(reservation_id: str) -> NotFound:
    return NotFound(
        f"reservation {reservation_id} not found",
        reason=Reason.RESERVATION_NOT_FOUND,
        metadata={"reservation_id": reservation_id},
    )
