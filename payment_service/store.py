"""Payments in PostgreSQL: each a row whose status is the saga's state.

Every status change is one transaction that also updates the reservation's
view of its payment (a new reservation version) and puts both announcements
in the outbox: the reservation's new state for the results topic, and, when
a step remains, a command for the saga. A failed attempt at a step changes
only the payment's retry state (``record_failure``): what the reservation
shows does not change.

Payments are ordered by ``seq``, a sequence PostgreSQL hands out, never by
``created_at``: that is stamped by whichever host took the payment, and two
hosts' clocks may disagree.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from google.protobuf.timestamp_pb2 import Timestamp

from ticketing.v1 import payment_service_pb2 as pb
from ticketing_common.domain import Money, PaymentStatus, Reservation, timestamp
from ticketing_common.storage import outbox, seats
from ticketing_common.storage.db import Connection

from .provider import Authorization, Charge
from .retries import RetryBudget

PAYMENT_COLUMNS = (
    "payment_id, reservation_id, user_id, idempotency_key, method, amount_minor, currency,"
    " status, detail, provider_ref, created_at, updated_at, deadline, seq, attempts,"
    " last_error, retry_at, attention_since, provider, event_id, decline_code, action_type,"
    " client_secret, redirect_url, refund_ref, authorize_sent_at"
)

# What a transition may set besides the status and detail (None: unchanged).
CHANGEABLE = (
    "provider_ref",
    "refund_ref",
    "decline_code",
    "action_type",
    "client_secret",
    "redirect_url",
    "deadline",
)
# Cleared once the payment leaves PENDING: the buyer has nothing left to do.
ACTION_COLUMNS = ("action_type", "client_secret", "redirect_url")


@dataclass(frozen=True, slots=True)
class Payment:
    payment_id: str
    reservation_id: str
    user_id: str
    idempotency_key: str
    method: str
    amount: Money
    status: PaymentStatus
    detail: str
    provider_ref: str | None
    created_at: datetime
    # When the current step began (a failed attempt does not move it).
    updated_at: datetime
    # Past it, an authorization not settled is voided.
    deadline: datetime
    # The order payments were made in (PostgreSQL's sequence).
    seq: int = 0
    # Failed attempts at the current step, and what the last one was.
    attempts: int = 0
    last_error: str | None = None
    # Not tried again before (a backoff after a failure, or a sweeper's claim).
    retry_at: datetime | None = None
    # Set once the retry budget is spent: the saga leaves the payment to an
    # operator (``ticketing-admin payments``).
    attention_since: datetime | None = None
    # Who took it: "local" or "stripe".
    provider: str = "local"
    event_id: str = ""
    # The issuer's code for a decline.
    decline_code: str | None = None
    # While the buyer must act (3-D Secure): what to do (the provider's
    # action type), the secret the provider's SDK confirms with, where to go.
    action_type: str | None = None
    client_secret: str | None = None
    redirect_url: str | None = None
    # The provider's reference of the refund.
    refund_ref: str | None = None
    # When the authorization was first sent to the provider.
    authorize_sent_at: datetime | None = None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Payment:
        return cls(
            payment_id=str(row["payment_id"]),
            reservation_id=str(row["reservation_id"]),
            user_id=row["user_id"],
            idempotency_key=row["idempotency_key"],
            method=row["method"],
            amount=Money(row["currency"], row["amount_minor"]),
            status=PaymentStatus(row["status"]),
            detail=row["detail"],
            provider_ref=row["provider_ref"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            deadline=row["deadline"],
            seq=row["seq"],
            attempts=row["attempts"],
            last_error=row["last_error"],
            retry_at=row["retry_at"],
            attention_since=row["attention_since"],
            provider=row["provider"],
            event_id=str(row["event_id"]),
            decline_code=row["decline_code"],
            action_type=row["action_type"],
            client_secret=row["client_secret"],
            redirect_url=row["redirect_url"],
            refund_ref=row["refund_ref"],
            authorize_sent_at=row["authorize_sent_at"],
        )

    @property
    def needs_attention(self) -> bool:
        return self.attention_since is not None

    @property
    def awaiting_buyer(self) -> bool:
        """PENDING with an authorization the provider has not decided: the
        buyer's action (3-D Secure) or the provider's processing."""
        return self.status is PaymentStatus.PENDING and self.provider_ref is not None

    def charge(self) -> Charge:
        return Charge(
            payment_id=self.payment_id,
            reservation_id=self.reservation_id,
            event_id=self.event_id,
            method=self.method,
            amount_minor=self.amount.amount_minor,
            currency=self.amount.currency,
        )

    def to_proto(self, *, client_secret: bool = False) -> pb.Payment:
        """The payment as the API shows it; the buyer's ``client_secret``
        only when asked (for its owner)."""
        created: Timestamp = timestamp(self.created_at)
        action = None
        if self.action_type is not None and self.status is PaymentStatus.PENDING:
            action = pb.PaymentAction(
                type=self.action_type,
                client_secret=(self.client_secret or "") if client_secret else "",
                # A redirect may carry the secret too.
                redirect_url=(self.redirect_url or "") if client_secret else "",
            )
        return pb.Payment(
            payment_id=self.payment_id,
            reservation_id=self.reservation_id,
            user_id=self.user_id,
            payment_method=self.method,
            amount=self.amount.to_proto(),
            status=self.status.to_proto(),
            detail=self.detail,
            create_time=created,
            update_time=timestamp(self.updated_at),
            provider=self.provider,
            provider_reference=self.provider_ref or "",
            decline_code=self.decline_code or "",
            next_action=action,
            refund_reference=self.refund_ref or "",
        )


async def fetch_payment(db: Connection | asyncpg.Pool, payment_id: str) -> Payment | None:
    row = await db.fetchrow(
        f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE payment_id = $1", uuid.UUID(payment_id)
    )
    return None if row is None else Payment.from_row(row)


async def lock_payment(conn: Connection, payment_id: str) -> Payment | None:
    """The payment, its row locked until the transaction ends."""
    row = await conn.fetchrow(
        f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE payment_id = $1 FOR UPDATE",
        uuid.UUID(payment_id),
    )
    return None if row is None else Payment.from_row(row)


async def insert_payment(
    conn: Connection,
    reservation: Reservation,
    *,
    idempotency_key: str,
    method: str,
    saga_timeout: timedelta,
    provider: str,
) -> Payment | None:
    """A new PENDING payment for ``reservation`` (None if the key was used
    for it already), shown on the reservation, with its first command."""
    now = datetime.now(UTC)
    row = await conn.fetchrow(
        f"""INSERT INTO payments (payment_id, reservation_id, user_id, idempotency_key, method,
                                  amount_minor, currency, status, created_at, updated_at,
                                  deadline, provider, event_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, 'PENDING', $8, $8, $9, $10, $11)
            ON CONFLICT (reservation_id, idempotency_key) DO NOTHING
            RETURNING {PAYMENT_COLUMNS}""",
        uuid.uuid4(),
        uuid.UUID(reservation.reservation_id),
        reservation.user_id,
        idempotency_key,
        method,
        reservation.amount_minor,
        reservation.currency,
        now,
        now + saga_timeout,
        provider,
        uuid.UUID(reservation.event_id),
    )
    if row is None:
        return None
    payment = Payment.from_row(row)
    await show_on_reservation(conn, payment, now)
    await outbox.command(conn, payment.payment_id, payment.reservation_id)
    return payment


async def transition(
    conn: Connection,
    payment: Payment,
    status: PaymentStatus,
    *,
    detail: str | None = None,
    command: bool = True,
    **changes: object,
) -> Payment | None:
    """Moves ``payment`` from the status it was read in to ``status``; None
    if it is not in that status any more (another worker moved it).
    ``changes`` sets columns of ``CHANGEABLE`` (None leaves one as it is);
    leaving PENDING clears the buyer's action. A status with a step still to
    come gets a command for the saga (unless ``command`` is False: a payment
    that waits for the provider's webhook). The new step starts with the
    whole retry budget."""
    unknown = set(changes) - set(CHANGEABLE)
    assert not unknown, unknown
    now = datetime.now(UTC)
    values: list[object] = [
        uuid.UUID(payment.payment_id),
        payment.status.value,
        status.value,
        detail,
        now,
    ]
    sets = []
    for column in CHANGEABLE:
        if status is not PaymentStatus.PENDING and column in ACTION_COLUMNS:
            sets.append(f"{column} = NULL")
            continue
        values.append(changes.get(column))
        sets.append(f"{column} = coalesce(${len(values)}, {column})")
    row = await conn.fetchrow(
        f"""UPDATE payments SET status = $3, detail = coalesce($4, detail), updated_at = $5,
                   {", ".join(sets)},
                   attempts = 0, last_error = NULL, retry_at = NULL, attention_since = NULL
            WHERE payment_id = $1 AND status = $2
            RETURNING {PAYMENT_COLUMNS}""",
        *values,
    )
    if row is None:
        return None
    moved = Payment.from_row(row)
    await show_on_reservation(conn, moved, now)
    if status.open and command:
        await outbox.command(conn, moved.payment_id, moved.reservation_id)
    return moved


async def apply_authorization(
    conn: Connection, payment: Payment, answer: Authorization
) -> Payment | None:
    """The provider's answer to ``payment``'s authorization, from the saga's
    call or a webhook, applied from PENDING (None: the payment moved on).
    Undecided (the buyer's 3-D Secure, or processing), the payment stays
    PENDING with the buyer's action, its deadline the hold's expiry, and no
    command: the webhook brings the result. The same undecided answer again
    changes nothing and returns ``payment`` itself."""
    if answer.approved:
        return await transition(
            conn,
            payment,
            PaymentStatus.AUTHORIZED,
            detail="authorized",
            provider_ref=answer.reference,
        )
    if not answer.undecided:
        return await transition(
            conn,
            payment,
            PaymentStatus.DECLINED,
            detail=answer.reason,
            provider_ref=answer.reference or None,
            decline_code=answer.decline_code or None,
        )
    action = answer.action
    if (
        payment.awaiting_buyer
        and payment.provider_ref == answer.reference
        and payment.action_type == (action.type if action else None)
    ):
        return payment
    expires: datetime | None = await conn.fetchval(
        "SELECT hold_expires_at FROM reservations WHERE reservation_id = $1",
        uuid.UUID(payment.reservation_id),
    )
    return await transition(
        conn,
        payment,
        PaymentStatus.PENDING,
        detail=(
            "waiting for the buyer to complete the payment (3-D Secure)"
            if action is not None
            else "the provider is processing the payment"
        ),
        command=False,
        provider_ref=answer.reference,
        deadline=max(payment.deadline, expires) if expires else None,
        action_type=action.type if action else None,
        client_secret=action.client_secret if action else None,
        redirect_url=(action.redirect_url or None) if action else None,
    )


async def record_failure(
    conn: Connection,
    payment: Payment,
    error: str,
    budget: RetryBudget,
    *,
    retriable: bool = True,
) -> Payment | None:
    """Counts a failed attempt at the step ``payment`` was read in: the
    payment is tried again after the budget's backoff, or, the budget spent,
    needs an operator. None if it moved on meanwhile, or already waits for
    an operator."""
    current = await lock_payment(conn, payment.payment_id)
    if current is None or current.status is not payment.status or current.needs_attention:
        return None
    now = datetime.now(UTC)
    failures = current.attempts + 1
    retry_at = budget.next_attempt(failures, current.updated_at, now, retriable=retriable)
    row = await conn.fetchrow(
        f"""UPDATE payments SET attempts = $2, last_error = $3, retry_at = $4,
                   attention_since = $5
            WHERE payment_id = $1
            RETURNING {PAYMENT_COLUMNS}""",
        uuid.UUID(payment.payment_id),
        failures,
        error,
        retry_at,
        None if retry_at is not None else now,
    )
    assert row is not None  # locked above
    return Payment.from_row(row)


async def show_on_reservation(conn: Connection, payment: Payment, now: datetime) -> None:
    """The reservation shows its latest payment attempt, announced."""
    shown = await seats.show_payment(
        conn,
        payment.reservation_id,
        payment_id=payment.payment_id,
        payment_status=payment.status.value,
        payment_seq=payment.seq,
        now=now,
    )
    if shown is not None:
        await outbox.announce(conn, [shown])


async def payment_by_key(
    conn: Connection, reservation_id: str, idempotency_key: str
) -> Payment | None:
    """The attempt ``idempotency_key`` names on the reservation, if any."""
    row = await conn.fetchrow(
        f"SELECT {PAYMENT_COLUMNS} FROM payments "
        "WHERE reservation_id = $1 AND idempotency_key = $2",
        uuid.UUID(reservation_id),
        idempotency_key,
    )
    return None if row is None else Payment.from_row(row)


async def declined_attempts(conn: Connection, reservation_id: str) -> int:
    declined: int = await conn.fetchval(
        "SELECT count(*) FROM payments WHERE reservation_id = $1 AND status = 'DECLINED'",
        uuid.UUID(reservation_id),
    )
    return declined


async def mark_sent(db: Connection | asyncpg.Pool, payment_id: str, at: datetime) -> None:
    """The authorization is about to be sent to the provider (committed
    first: a payment voided before it has nothing to release there)."""
    await db.execute(
        "UPDATE payments SET authorize_sent_at = $2 WHERE payment_id = $1",
        uuid.UUID(payment_id),
        at,
    )


async def look_again_at(db: Connection | asyncpg.Pool, payment_id: str, at: datetime) -> None:
    """A payment waiting on the buyer is looked up at the provider no sooner than ``at``."""
    await db.execute(
        "UPDATE payments SET retry_at = $2 WHERE payment_id = $1 AND status = 'PENDING'",
        uuid.UUID(payment_id),
        at,
    )
