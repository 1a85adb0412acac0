"""The payment saga: authorize, confirm the hold, capture; or give back.

Each payment's state is its row in ``payments``; each step is one
transaction that moves it on and announces it (``store.transition``). The
steps, from each state:

- PENDING: ask the provider to authorize, for at most what is left of the
  saga's timeout. Approved: AUTHORIZED. Declined: DECLINED (the hold stays
  until it expires; the buyer may try another method). No answer in time:
  VOIDING, so whatever the provider did is released. The buyer must act
  first (3-D Secure): still PENDING, with the action to take, until the
  provider's webhook (``webhooks``) decides it; the deadline is then the
  hold's expiry, and the sweeper asks the provider now and then in case a
  webhook is lost.
- AUTHORIZED: under the event's fenced lock, if the reservation is still
  HELD and its hold has not run out: the reservation becomes CONFIRMED (held
  seats become sold ones) and the payment CAPTURING. Otherwise (expired,
  cancelled): VOIDING. A late payment never revives a hold.
- CAPTURING: capture at the provider, then CAPTURED (settled: "confirmed").
- VOIDING: void at the provider, then VOIDED (settled: "refunded"; nothing
  was ever taken).
- REFUNDING (a cancelled paid reservation): refund at the provider, then,
  under the lock, the seats are released (CANCELLED) and the payment is
  REFUNDED.

A step that fails (the provider does not answer, or refuses) is tried
again after a backoff, within the retry budget (``retries``); once that is
spent, the payment needs an operator: it stays where it stands, flagged,
and no worker takes it further until ``ticketing-admin payments retry``.

Provider calls carry the payment id as idempotency key, so a step repeated
after a crash is harmless; every transition only applies from the state the
step started in, so two workers on one payment cannot both move it. Crash
anywhere: the command is redelivered, or the sweeper finds the payment
unsettled and takes it on. The end is always one of two: seats CONFIRMED and
money CAPTURED, or seats released and the money never captured (VOIDED) or
paid back (REFUNDED).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from aiolimiter import AsyncLimiter

from ticketing_common.domain import PaymentStatus, Reservation, Status
from ticketing_common.failures import is_transient
from ticketing_common.storage import outbox, seats
from ticketing_common.storage.applier import under_event_lock
from ticketing_common.storage.db import Connection
from ticketing_common.storage.locks import EventLocks
from ticketing_common.storage.queries import RESERVATION_COLUMNS
from ticketing_common.storage.seats import EventState

from . import metrics
from .provider import Provider, ProviderError
from .retries import RetryBudget
from .store import (
    Payment,
    apply_authorization,
    fetch_payment,
    lock_payment,
    look_again_at,
    mark_sent,
    record_failure,
    transition,
)

log = structlog.get_logger(__name__)

# Steps one advance() takes at most (the longest path has four).
MAX_STEPS = 8
# Payments one sweep claims, and takes forward at once.
SWEEP_BATCH = 200
SWEEP_CONCURRENCY = 16


class Saga:
    def __init__(
        self,
        pool: asyncpg.Pool,
        locks: EventLocks,
        provider: Provider,
        *,
        budget: RetryBudget,
        lock_wait_s: float,
        provider_timeout_s: float,
        action_poll: timedelta = timedelta(minutes=2),
        pace: AsyncLimiter | None = None,
        fault_delay_s: float = 0.0,
    ) -> None:
        """``pace``: how many provider calls a second this process makes at
        most (None: no limit)."""
        self._pool = pool
        self._locks = locks
        self._provider = provider
        self._budget = budget
        self._lock_wait_s = lock_wait_s
        self._provider_timeout_s = provider_timeout_s
        self._action_poll = action_poll
        self._pace = pace
        self._fault_delay_s = fault_delay_s
        self._steps: dict[PaymentStatus, Callable[[Payment], Awaitable[Payment | None]]] = {
            PaymentStatus.PENDING: self._authorize,
            PaymentStatus.AUTHORIZED: self._confirm,
            PaymentStatus.CAPTURING: self._capture,
            PaymentStatus.VOIDING: self._void,
            PaymentStatus.REFUNDING: self._refund,
        }

    async def try_advance(self, payment_id: str) -> None:
        """``advance``, a failure logged rather than raised: the payment is
        left where it stands, and the sweeper takes it on again."""
        try:
            await self.advance(payment_id)
        except Exception as exc:
            if is_transient(exc) or isinstance(exc, ProviderError | TimeoutError):
                log.warning("payment_step_failed", payment_id=payment_id, error=repr(exc))
            else:
                log.exception("payment_step_failed", payment_id=payment_id)

    async def advance(self, payment_id: str) -> PaymentStatus | None:
        """Takes the payment as far as it goes now; returns where it stands.
        A step that fails is counted against the retry budget, then raised."""
        with structlog.contextvars.bound_contextvars(payment_id=payment_id):
            payment = await fetch_payment(self._pool, payment_id)
            for _ in range(MAX_STEPS):
                if payment is None or not payment.status.open or payment.needs_attention:
                    break
                try:
                    moved = await self._steps[payment.status](payment)
                except Exception as exc:
                    await self._failed(payment, exc)
                    raise
                if moved is None:  # moved on by someone else: read again
                    payment = await fetch_payment(self._pool, payment_id)
                    continue
                if moved is payment:  # waits for the provider (the buyer's 3-D Secure)
                    break
                log.info("payment_step", status=moved.status.value, detail=moved.detail)
                metrics.SAGA_STEPS.labels(
                    payment.status.value.lower(), moved.status.value.lower()
                ).inc()
                waiting = moved.status is payment.status  # now on the buyer's action
                payment = moved
                if waiting:
                    break
                if self._fault_delay_s and moved.status.open:
                    await asyncio.sleep(self._fault_delay_s)
            return None if payment is None else payment.status

    async def _failed(self, payment: Payment, exc: Exception) -> None:
        """Counts a failed attempt at ``payment``'s step; once the budget is
        spent, flags the payment for an operator. A failure to record it (the
        database is down too) leaves the payment to the sweeper, as before."""
        step = payment.status.value.lower()
        metrics.STEP_FAILURES.labels(step).inc()
        if isinstance(exc, TimeoutError):
            error = f"no answer within {self._provider_timeout_s:g} s"
        else:
            error = f"{type(exc).__name__}: {exc}"[:500]
        retriable = not isinstance(exc, ProviderError) or exc.retriable
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                counted = await record_failure(
                    conn, payment, error, self._budget, retriable=retriable
                )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as failure:
            log.warning("payment_failure_not_recorded", step=step, error=repr(failure))
            return
        if counted is not None and counted.needs_attention:
            log.error(
                "payment_needs_attention",
                reservation_id=counted.reservation_id,
                status=counted.status.value,
                attempts=counted.attempts,
                error=error,
            )

    async def _move(
        self,
        payment: Payment,
        status: PaymentStatus,
        *,
        detail: str | None = None,
    ) -> Payment | None:
        async with self._pool.acquire() as conn, conn.transaction():
            return await transition(conn, payment, status, detail=detail)

    async def _authorize(self, payment: Payment) -> Payment | None:
        """Asks the provider to authorize, or, for an authorization the buyer
        still has to complete, where it stands (when no webhook said so)."""
        if payment.awaiting_buyer:
            return await self._look_up(payment)
        remaining = (payment.deadline - datetime.now(UTC)).total_seconds()
        if remaining > 0:
            # Our turn at the provider first: a rush waits here, and what it
            # waited is not the provider's time.
            await self._paced()
            remaining = (payment.deadline - datetime.now(UTC)).total_seconds()
        if remaining <= 0:
            return await self._move(
                payment, PaymentStatus.VOIDING, detail="timed out waiting for the provider"
            )
        if payment.authorize_sent_at is None:
            # Committed before the request leaves: a payment voided before it
            # has nothing to release at the provider.
            await mark_sent(self._pool, payment.payment_id, datetime.now(UTC))
        try:
            async with self._timed("authorize"), asyncio.timeout(remaining):
                answer = await self._provider.authorize(payment.charge())
        except TimeoutError:
            return await self._move(
                payment, PaymentStatus.VOIDING, detail="timed out waiting for the provider"
            )
        async with self._pool.acquire() as conn, conn.transaction():
            moved = await apply_authorization(conn, payment, answer)
        if moved is not None and moved.awaiting_buyer:
            await self._poll_later(moved)
        return moved

    async def _look_up(self, payment: Payment) -> Payment | None:
        """A payment waiting on the buyer (3-D Secure): voided once the hold
        is gone (run out, or the reservation cancelled: the buyer must not be
        able to complete it then), else looked up at the provider."""
        assert payment.provider_ref is not None
        row = await self._pool.fetchrow(
            "SELECT status, hold_expires_at FROM reservations WHERE reservation_id = $1",
            uuid.UUID(payment.reservation_id),
        )
        assert row is not None  # a payment references its reservation
        now = datetime.now(UTC)
        if payment.deadline <= now or row["status"] != Status.HELD.value:
            why = (
                "the buyer did not complete the payment before the hold ran out"
                if row["status"] in (Status.HELD.value, Status.EXPIRED.value)
                else f"the reservation is {row['status']}"
            )
            return await self._move(payment, PaymentStatus.VOIDING, detail=why)
        await self._paced()
        try:
            async with (
                self._timed("status"),
                asyncio.timeout(
                    min((payment.deadline - now).total_seconds(), self._provider_timeout_s)
                ),
            ):
                answer = await self._provider.status(payment.charge(), payment.provider_ref)
        except (TimeoutError, ProviderError) as exc:
            if isinstance(exc, ProviderError) and not exc.retriable:
                raise
            log.warning("payment_status_unknown", error=repr(exc))
            return await self._poll_later(payment)  # no news
        async with self._pool.acquire() as conn, conn.transaction():
            found = await apply_authorization(conn, payment, answer)
        if found is not None and found.awaiting_buyer:
            await self._poll_later(found)
        return found

    async def _poll_later(self, payment: Payment) -> Payment:
        """A payment waiting on the buyer is looked up at the provider again
        only after ``action_poll``: the webhook is the way its result comes,
        this the safety net, and thousands of buyers in 3-D Secure at once
        must not become thousands of lookups every sweep."""
        await look_again_at(self._pool, payment.payment_id, datetime.now(UTC) + self._action_poll)
        return payment

    async def _paced(self) -> None:
        """Waits for a turn at the provider (``TICKETING_STRIPE_MAX_REQUESTS_PER_S``)."""
        if self._pace is not None:
            await self._pace.acquire()

    @contextlib.asynccontextmanager
    async def _timed(self, operation: str) -> AsyncIterator[None]:
        """Counts and times one call to the provider, by how it ended."""
        started = time.perf_counter()
        outcome = "ok"
        try:
            yield
        except TimeoutError:
            outcome = "timeout"
            raise
        except ProviderError as exc:
            outcome = "failed" if exc.retriable else "refused"
            raise
        except BaseException:
            outcome = "error"
            raise
        finally:
            metrics.PROVIDER_CALLS.labels(self._provider.name, operation, outcome).observe(
                time.perf_counter() - started
            )

    async def _confirm(self, payment: Payment) -> Payment | None:
        reservation = await self._reservation(payment)

        async def work(conn: Connection, token: int, event: EventState | None) -> Payment | None:
            locked = await _lock_both(conn, payment, PaymentStatus.AUTHORIZED)
            if locked is None:
                return None
            current, held = locked
            now = datetime.now(UTC)
            if (
                event is None
                or held.status is not Status.HELD
                or held.hold_expires_at is None
                or held.hold_expires_at <= now
            ):
                why = (
                    "the hold expired before the payment"
                    if held.status in (Status.HELD, Status.EXPIRED)
                    else f"the reservation is {held.status.value}"
                )
                return await transition(conn, current, PaymentStatus.VOIDING, detail=why)
            _, changed = await seats.confirm(conn, event, held, token, now)
            moved = await transition(
                conn, current, PaymentStatus.CAPTURING, detail="seats confirmed"
            )
            await outbox.announce(conn, changed)
            return moved

        return await under_event_lock(
            self._locks, self._pool, reservation.event_id, work, lock_wait_s=self._lock_wait_s
        )

    async def _capture(self, payment: Payment) -> Payment | None:
        await self._paced()
        async with self._timed("capture"), asyncio.timeout(self._provider_timeout_s):
            await self._provider.capture(
                payment.charge(), payment.provider_ref or "", attempt=payment.attempts
            )
        return await self._move(payment, PaymentStatus.CAPTURED, detail="captured")

    async def _void(self, payment: Payment) -> Payment | None:
        if payment.provider_ref is None and payment.authorize_sent_at is None:
            # Never sent: nothing to release at the provider.
            return await self._move(payment, PaymentStatus.VOIDED)
        await self._paced()
        async with self._timed("void"), asyncio.timeout(self._provider_timeout_s):
            await self._provider.void(
                payment.charge(), payment.provider_ref, attempt=payment.attempts
            )
        return await self._move(payment, PaymentStatus.VOIDED)

    async def _refund(self, payment: Payment) -> Payment | None:
        await self._paced()
        async with self._timed("refund"), asyncio.timeout(self._provider_timeout_s):
            refund_ref = await self._provider.refund(
                payment.charge(), payment.provider_ref or "", attempt=payment.attempts
            )
        reservation = await self._reservation(payment)

        async def work(conn: Connection, token: int, event: EventState | None) -> Payment | None:
            locked = await _lock_both(conn, payment, PaymentStatus.REFUNDING)
            if locked is None:
                return None
            current, confirmed = locked
            if event is not None and confirmed.status is Status.CONFIRMED:
                _, changed = await seats.release(
                    conn,
                    event,
                    [confirmed],
                    status=Status.CANCELLED,
                    token=token,
                    now=datetime.now(UTC),
                )
                await outbox.announce(conn, changed)
            return await transition(
                conn, current, PaymentStatus.REFUNDED, detail="refunded", refund_ref=refund_ref
            )

        return await under_event_lock(
            self._locks, self._pool, reservation.event_id, work, lock_wait_s=self._lock_wait_s
        )

    async def _reservation(self, payment: Payment) -> Reservation:
        row = await self._pool.fetchrow(
            f"SELECT {RESERVATION_COLUMNS} FROM reservations WHERE reservation_id = $1",
            uuid.UUID(payment.reservation_id),
        )
        assert row is not None  # a payment references its reservation
        return Reservation.from_row(row)


async def _lock_both(
    conn: Connection, payment: Payment, expected: PaymentStatus
) -> tuple[Payment, Reservation] | None:
    """The payment and its reservation, both rows locked, if the payment is
    still ``expected`` (else another worker moved it on: None)."""
    current = await lock_payment(conn, payment.payment_id)
    if current is None or current.status is not expected:
        return None
    reservation = await seats.lock_reservation(conn, payment.reservation_id)
    assert reservation is not None  # a payment references its reservation
    return current, reservation


class Sweeper:
    """Takes on payments whose saga stopped mid-way: a process killed
    between two steps, a provider that did not answer, a command that was
    consumed but not acted on. A payment is taken on once it has not moved
    for ``stale_after`` and its backoff after a failed attempt (if any) has
    passed; one that needs an operator is left alone. Each sweep also counts
    the payments needing an operator (the gauge every payment service shows)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        saga: Saga,
        *,
        interval_s: float,
        stale_after: timedelta,
        running: set[str],
    ) -> None:
        self._pool = pool
        self._saga = saga
        self._interval_s = interval_s
        self._stale_after = stale_after
        self._running = running

    async def run(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception as exc:
                if not is_transient(exc):
                    log.exception("payment_sweep_failed")
                else:
                    log.warning("payment_sweep_retrying", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self._interval_s)

    async def sweep_once(self) -> int:
        now = datetime.now(UTC)
        # Claimed for stale_after (retry_at), so that other payment services'
        # sweepers do not take the same payments on at the same time.
        rows = await self._pool.fetch(
            """UPDATE payments SET retry_at = $3
               WHERE payment_id IN (
                   SELECT payment_id FROM payments
                   WHERE status IN ('PENDING', 'AUTHORIZED', 'CAPTURING', 'VOIDING', 'REFUNDING')
                     AND attention_since IS NULL
                     AND (retry_at IS NULL OR retry_at <= $2)
                     AND (updated_at <= $1 OR (status = 'PENDING' AND deadline <= $2))
                   -- Steps first, then the look-ups of payments that wait
                   -- on the buyer (their webhook is the way).
                   ORDER BY (status = 'PENDING' AND provider_ref IS NOT NULL), updated_at
                   LIMIT $4
                   FOR UPDATE SKIP LOCKED)
               RETURNING payment_id""",
            now - self._stale_after,
            now,
            now + self._stale_after,
            SWEEP_BATCH,
        )
        metrics.NEEDING_ATTENTION.set(
            await self._pool.fetchval(
                "SELECT count(*) FROM payments WHERE attention_since IS NOT NULL"
            )
        )
        stale = [
            str(row["payment_id"]) for row in rows if str(row["payment_id"]) not in self._running
        ]
        # A few at once: each mostly waits on the provider, and the batch
        # must be done well within its claim.
        slots = asyncio.Semaphore(SWEEP_CONCURRENCY)

        async def advance(payment_id: str) -> None:
            async with slots:
                try:
                    await self._saga.try_advance(payment_id)
                finally:
                    self._running.discard(payment_id)

        self._running.update(stale)
        async with asyncio.TaskGroup() as group:
            for payment_id in stale:
                group.create_task(advance(payment_id))
        if stale:
            log.info("payments_swept", payments=len(stale))
        return len(stale)
