"""The ledger: every accepted request accounted for.

For each record of the requests topic (what the gateways were acknowledged
for), exactly one of:

- **queued**: at or after the consumer group's committed offset of its
  partition (not decided yet, or decided and not committed yet);
- **dead-lettered**: the dead-letter topic holds it (by original partition
  and offset);
- **decided**: it names a reservation that PostgreSQL holds.

Anything else is a break of the promise and is listed. Balanced means
``accepted = decided + dead_lettered + queued``. The seat invariant
``capacity = available + held + confirmed`` (with ``held`` and ``confirmed``
equal to the held and confirmed reservations' seats) is checked per event
alongside, and, for priced events, the money:

- what was captured and kept equals the confirmed seats times the price, and
  every confirmed seat of a priced event is paid;
- a captured payment belongs to a CONFIRMED reservation, a refunded one to a
  CANCELLED reservation, a voided one to an EXPIRED or CANCELLED reservation
  or to an attempt the provider did not answer in time;
- no payment is stuck (``ticketing_tools.payments``): none needs an
  operator (its retry budget spent), none is still authorizing more than
  ``OPEN_GRACE`` past its saga deadline (no authorization is left hanging),
  none has been capturing, voiding or refunding for longer than the step
  bound;
- the local provider's books agree: as much captured and refunded there
  (``provider_operations``) as here, for the payments it took.

Every captured and refunded payment is named with its provider's reference
(the PaymentIntent id of a capture, the refund id of a refund: what to look
for in the provider's dashboard); a Stripe payment without one is a problem.
The payments Stripe took are counted here like any other, but their
provider's books are at Stripe, not in this database: the ledger does not
call them missing at the provider, and shows their sums apart.
``ticketing-admin payments reconcile`` compares those with Stripe's.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from ticketing_common.codecs import UndecodableRecord, decode_request, salvage
from ticketing_common.config import KafkaSettings
from ticketing_common.deadletters import DeadLetter
from ticketing_common.kafka import group_offsets
from ticketing_common.storage.db import Connection

from .payments import STEP_BOUND, why_stuck


@dataclass(frozen=True, slots=True)
class Entry:
    partition: int
    offset: int
    reservation_id: str | None
    event_id: str | None
    state: str  # queued | dead_lettered | decided | missing


@dataclass(frozen=True, slots=True)
class SeatCheck:
    event_id: str
    capacity: int
    available: int
    held: int
    confirmed: int
    confirmed_rows: int
    held_rows: int = 0
    # A seated event: every seat that is not as its reservation says.
    seat_problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return (
            self.capacity == self.available + self.held + self.confirmed
            and self.confirmed == self.confirmed_rows
            and self.held == self.held_rows
            and not self.seat_problems
        )


@dataclass(frozen=True, slots=True)
class ProviderReference:
    """Where a captured or refunded payment is in its provider's books:
    ``reference`` is the capture's PaymentIntent (``provider_ref``) or the
    refund's id (``refund_ref``), None if none was recorded."""

    payment_id: str
    status: str
    amount_minor: int
    provider: str
    reference: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "payment_id": self.payment_id,
            "status": self.status,
            "amount_minor": self.amount_minor,
            "provider": self.provider,
            "reference": self.reference,
        }


@dataclass(frozen=True, slots=True)
class MoneyCheck:
    """One priced event's money, in minor units of ``currency``.
    ``provider_*`` are the local provider's books, compared with the
    payments it took; ``stripe_*`` the part of ours Stripe took, whose books
    ``ticketing-admin payments reconcile`` compares."""

    event_id: str
    currency: str
    price_minor: int
    confirmed_seats: int
    captured_minor: int
    provider_captured_minor: int
    provider_refunded_minor: int
    refunded_minor: int
    problems: tuple[str, ...]
    # Payments between a capture or refund and its record (the sums are
    # compared only at a quiet point, when there are none).
    in_flight: int = 0
    stripe_captured_minor: int = 0
    stripe_refunded_minor: int = 0
    references: tuple[ProviderReference, ...] = ()

    @property
    def ok(self) -> bool:
        local_captured = self.captured_minor - self.stripe_captured_minor
        local_refunded = self.refunded_minor - self.stripe_refunded_minor
        return not self.problems and (
            self.in_flight > 0
            or (
                self.captured_minor == self.confirmed_seats * self.price_minor
                and self.provider_captured_minor == local_captured + local_refunded
                and self.provider_refunded_minor == local_refunded
            )
        )


@dataclass
class Ledger:
    accepted: int = 0
    decided: int = 0
    dead_lettered: int = 0
    queued: int = 0
    unique_reservations: int = 0
    missing: list[Entry] = field(default_factory=list)
    seats: list[SeatCheck] = field(default_factory=list)
    money: list[MoneyCheck] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return not self.missing and self.accepted == (
            self.decided + self.dead_lettered + self.queued
        )

    @property
    def seats_ok(self) -> bool:
        return all(check.ok for check in self.seats)

    @property
    def money_ok(self) -> bool:
        return all(check.ok for check in self.money)

    def as_dict(self) -> dict[str, object]:
        return {
            "accepted": self.accepted,
            "decided": self.decided,
            "dead_lettered": self.dead_lettered,
            "queued": self.queued,
            "unique_reservations": self.unique_reservations,
            "balanced": self.balanced,
            "missing": [_entry(e) for e in self.missing],
            "seats_ok": self.seats_ok,
            "seats": [_seat(c) for c in self.seats],
            "money_ok": self.money_ok,
            "money": [_money(c) for c in self.money],
        }


def _entry(e: Entry) -> dict[str, object]:
    return {
        "partition": e.partition,
        "offset": e.offset,
        "reservation_id": e.reservation_id,
        "event_id": e.event_id,
        "state": e.state,
    }


def _seat(c: SeatCheck) -> dict[str, object]:
    return {
        "event_id": c.event_id,
        "capacity": c.capacity,
        "available": c.available,
        "held": c.held,
        "confirmed": c.confirmed,
        "confirmed_reservation_seats": c.confirmed_rows,
        "held_reservation_seats": c.held_rows,
        "seat_problems": list(c.seat_problems),
        "ok": c.ok,
    }


def _money(c: MoneyCheck) -> dict[str, object]:
    return {
        "event_id": c.event_id,
        "currency": c.currency,
        "price_minor": c.price_minor,
        "confirmed_seats": c.confirmed_seats,
        "captured_minor": c.captured_minor,
        "refunded_minor": c.refunded_minor,
        "provider_captured_minor": c.provider_captured_minor,
        "provider_refunded_minor": c.provider_refunded_minor,
        "stripe_captured_minor": c.stripe_captured_minor,
        "stripe_refunded_minor": c.stripe_refunded_minor,
        "references": [r.as_dict() for r in c.references],
        "problems": list(c.problems),
        "in_flight": c.in_flight,
        "ok": c.ok,
    }


Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


async def read_topic(kafka: KafkaSettings, topic: str) -> list[Record]:
    """Every record of ``topic``, from the beginning to the end offsets the
    broker reports when called."""
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic)
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Record] = []
        while not all([await consumer.position(tp) >= ends[tp] for tp in tps]):
            batch = await consumer.getmany(timeout_ms=1_000, max_records=10_000)
            for recs in batch.values():
                records.extend(
                    r for r in recs if r.offset < ends[TopicPartition(topic, r.partition)]
                )
        return records
    finally:
        await consumer.stop()


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions, from fresh metadata if the client has none yet."""
    partitions = consumer.partitions_for_topic(topic)
    if partitions is None:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def end_offsets(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    """The topic's end offset per partition, as the broker reports them."""
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(await topic_partitions(consumer, topic))
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def committed_offsets(
    kafka: KafkaSettings, group: str, topic: str, partitions: Iterable[int]
) -> dict[int, int]:
    found = await group_offsets(kafka, group, [TopicPartition(topic, p) for p in partitions])
    return {tp.partition: offset or 0 for tp, offset in found.items()}


@dataclass(frozen=True, slots=True)
class Attributed:
    """A requests-topic record and the reservation and event it names, if any."""

    partition: int
    offset: int
    reservation_id: str | None
    event_id: str | None


async def reconcile(
    kafka: KafkaSettings,
    pool: asyncpg.Pool,
    *,
    event_id: str | None = None,
    step_bound: timedelta = STEP_BOUND,
) -> Ledger:
    """Accounts for every record of the requests topic (optionally of one
    event): decided, dead-lettered, queued, or missing. ``step_bound``: how
    long a capture, void or refund may be in flight before it is stuck."""
    if event_id is not None:
        event_id = str(uuid.UUID(event_id))  # canonical form, as stored and sent
    # Committed offsets before the dead letters and the database: a record
    # dead-lettered and committed after this read is then still "queued" here,
    # never wrongly "decided" or "missing".
    requests = await read_topic(kafka, kafka.requests_topic)
    partitions = {r.partition for r in requests}
    committed = (
        await committed_offsets(kafka, kafka.consumer_group, kafka.requests_topic, partitions)
        if partitions
        else {}
    )
    dead = await _dead_lettered(kafka)
    records = [attribute(record) for record in requests]
    if event_id is not None:
        records = [r for r in records if r.event_id == event_id]
    ids = sorted({r.reservation_id for r in records if r.reservation_id})
    stored = await _stored(pool, ids)

    ledger = Ledger(accepted=len(records), unique_reservations=len(ids))
    states: Counter[str] = Counter()
    for r in records:
        state = _state(r, committed, dead, stored)
        if state == "missing":
            ledger.missing.append(Entry(r.partition, r.offset, r.reservation_id, r.event_id, state))
        states[state] += 1
    ledger.decided = states["decided"]
    ledger.dead_lettered = states["dead_lettered"]
    ledger.queued = states["queued"]
    ledger.seats = await seat_checks(pool, event_id)
    ledger.money = await money_checks(pool, event_id, step_bound=step_bound)
    return ledger


def attribute(record: Record) -> Attributed:
    """What a record names; a record the consumer could not decode is
    attributed to whatever it salvages."""
    try:
        request = decode_request(record.value, partition=record.partition, offset=record.offset)
        return Attributed(record.partition, record.offset, request.reservation_id, request.event_id)
    except UndecodableRecord:
        salvaged = salvage(
            record.value,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp,
        )
    if salvaged is None:
        return Attributed(record.partition, record.offset, None, None)
    return Attributed(record.partition, record.offset, salvaged.reservation_id, salvaged.event_id)


def _state(
    record: Attributed,
    committed: dict[int, int],
    dead: set[tuple[int, int]],
    stored: set[str],
) -> str:
    if record.offset >= committed.get(record.partition, 0):
        return "queued"
    if (record.partition, record.offset) in dead:
        return "dead_lettered"
    if record.reservation_id is not None and record.reservation_id in stored:
        return "decided"
    return "missing"


async def _dead_lettered(kafka: KafkaSettings) -> set[tuple[int, int]]:
    """Where in the requests topic each dead letter came from."""
    letters = [DeadLetter.from_record(r) for r in await read_topic(kafka, kafka.dead_letter_topic)]
    return {
        (d.original_partition, d.original_offset)
        for d in letters
        if d.original_topic == kafka.requests_topic
    }


async def _stored(pool: asyncpg.Pool, ids: list[str], chunk_size: int = 10_000) -> set[str]:
    """Which of ``ids`` have a reservation row."""
    stored: set[str] = set()
    for start in range(0, len(ids), chunk_size):
        chunk = [uuid.UUID(i) for i in ids[start : start + chunk_size]]
        rows = await pool.fetch(
            "SELECT reservation_id FROM reservations WHERE reservation_id = ANY($1::uuid[])", chunk
        )
        stored.update(str(r["reservation_id"]) for r in rows)
    return stored


async def seat_checks(pool: asyncpg.Pool, event_id: str | None = None) -> list[SeatCheck]:
    rows = await pool.fetch(
        """SELECT e.event_id, e.capacity, e.available, e.held, e.confirmed,
                  coalesce(sum(r.quantity) FILTER (WHERE r.status = 'CONFIRMED'), 0)::int
                      AS confirmed_rows,
                  coalesce(sum(r.quantity) FILTER (WHERE r.status = 'HELD'), 0)::int
                      AS held_rows
           FROM events e LEFT JOIN reservations r ON r.event_id = e.event_id
           WHERE $1::uuid IS NULL OR e.event_id = $1::uuid
           GROUP BY e.event_id ORDER BY e.created_at""",
        uuid.UUID(event_id) if event_id else None,
    )
    problems = await seat_problems(pool, event_id)
    return [
        SeatCheck(
            str(r["event_id"]),
            r["capacity"],
            r["available"],
            r["held"],
            r["confirmed"],
            r["confirmed_rows"],
            r["held_rows"],
            tuple(problems.get(str(r["event_id"]), ())),
        )
        for r in rows
    ]


async def seat_problems(pool: asyncpg.Pool, event_id: str | None = None) -> dict[str, list[str]]:
    """Seated events, seat by seat: each is available, blocked, held by one
    HELD reservation or sold to one CONFIRMED one, which lists it among its
    seats (as many as its quantity); each section's and the event's counts
    are its seats' states. Returns what is not, by event."""
    only = uuid.UUID(event_id) if event_id else None
    found: dict[str, list[str]] = {}
    for row in await pool.fetch(
        """SELECT s.event_id, s.seat_id, s.state, r.status, r.event_id AS owner_event
           FROM event_seats s LEFT JOIN reservations r USING (reservation_id)
           WHERE s.reservation_id IS NOT NULL AND ($1::uuid IS NULL OR s.event_id = $1)
             AND NOT (r.event_id = s.event_id
                      AND ((s.state = 'HELD' AND r.status = 'HELD')
                           OR (s.state = 'SOLD' AND r.status = 'CONFIRMED')))""",
        only,
    ):
        found.setdefault(str(row["event_id"]), []).append(
            f"seat {row['seat_id']} is {row['state']} for a reservation {row['status']}"
        )
    for row in await pool.fetch(
        """SELECT r.event_id, r.reservation_id, r.quantity,
                  coalesce(jsonb_array_length(r.seats), 0) AS listed,
                  (SELECT count(*) FROM event_seats s
                   WHERE s.reservation_id = r.reservation_id) AS pointing,
                  (SELECT count(*) FROM jsonb_array_elements(coalesce(r.seats, '[]')) j
                   JOIN event_seats s ON s.event_id = r.event_id AND s.seat_id = j ->> 2
                                     AND s.reservation_id = r.reservation_id) AS matching
           FROM reservations r JOIN events e USING (event_id)
           WHERE e.seated AND r.status IN ('HELD', 'CONFIRMED')
             AND ($1::uuid IS NULL OR r.event_id = $1)""",
        only,
    ):
        if not row["quantity"] == row["listed"] == row["pointing"] == row["matching"]:
            found.setdefault(str(row["event_id"]), []).append(
                f"reservation {row['reservation_id']} of {row['quantity']} seats lists "
                f"{row['listed']}, has {row['pointing']}, {row['matching']} of them its own"
            )
    for row in await pool.fetch(
        """SELECT c.event_id, c.section_id, c.available, c.held, c.sold,
                  count(*) FILTER (WHERE s.state = 'AVAILABLE') AS free_seats,
                  count(*) FILTER (WHERE s.state = 'HELD') AS held_seats,
                  count(*) FILTER (WHERE s.state = 'SOLD') AS sold_seats
           FROM event_sections c JOIN event_seats s USING (event_id, section_id)
           WHERE $1::uuid IS NULL OR c.event_id = $1
           GROUP BY c.event_id, c.section_id""",
        only,
    ):
        counted = (row["free_seats"], row["held_seats"], row["sold_seats"])
        if (row["available"], row["held"], row["sold"]) != counted:
            found.setdefault(str(row["event_id"]), []).append(
                f"section {row['section_id']} counts {row['available']} available, "
                f"{row['held']} held, {row['sold']} sold; its seats {counted}"
            )
    for row in await pool.fetch(
        """SELECT e.event_id, e.available, e.held, e.confirmed,
                  sum(c.available)::int AS available_seats, sum(c.held)::int AS held_seats,
                  sum(c.sold)::int AS sold_seats
           FROM events e JOIN event_sections c USING (event_id)
           WHERE e.seated AND ($1::uuid IS NULL OR e.event_id = $1)
           GROUP BY e.event_id""",
        only,
    ):
        counted = (row["available_seats"], row["held_seats"], row["sold_seats"])
        if (row["available"], row["held"], row["confirmed"]) != counted:
            found.setdefault(str(row["event_id"]), []).append(
                f"the event counts {row['available']} available, {row['held']} held, "
                f"{row['confirmed']} confirmed; its sections {counted}"
            )
    return found


async def money_checks(
    pool: asyncpg.Pool, event_id: str | None = None, *, step_bound: timedelta = STEP_BOUND
) -> list[MoneyCheck]:
    """The money of every priced event (or of one), from one snapshot."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        return await _money_checks(conn, event_id, step_bound)


async def _money_checks(
    conn: Connection, event_id: str | None, step_bound: timedelta
) -> list[MoneyCheck]:
    events = await conn.fetch(
        """SELECT event_id, currency, price_minor, confirmed FROM events
           WHERE price_minor > 0 AND ($1::uuid IS NULL OR event_id = $1::uuid)
           ORDER BY created_at""",
        uuid.UUID(event_id) if event_id else None,
    )
    checks = []
    for event in events:
        payments = await conn.fetch(
            """SELECT p.payment_id, p.status, p.amount_minor, p.detail, p.deadline,
                      p.updated_at, p.attempts, p.last_error, p.attention_since,
                      p.provider, p.provider_ref, p.refund_ref,
                      r.status AS reservation_status, r.reservation_id,
                      coalesce((SELECT amount_minor FROM provider_operations o
                                WHERE o.payment_id = p.payment_id
                                  AND o.operation = 'captured'), 0) AS provider_captured,
                      coalesce((SELECT amount_minor FROM provider_operations o
                                WHERE o.payment_id = p.payment_id
                                  AND o.operation = 'refunded'), 0) AS provider_refunded
               FROM payments p JOIN reservations r USING (reservation_id)
               WHERE r.event_id = $1
               ORDER BY p.seq""",
            event["event_id"],
        )
        unpaid = await conn.fetchval(
            """SELECT count(*) FROM reservations
               WHERE event_id = $1 AND status = 'CONFIRMED'
                 AND coalesce(payment_status, '') NOT IN ('CAPTURED', 'CAPTURING', 'REFUNDING')""",
            event["event_id"],
        )
        checks.append(_money_check(event, payments, unpaid, step_bound=step_bound))
    return checks


# A row as asyncpg reads it, or as a test builds it.
Row: TypeAlias = "asyncpg.Record | Mapping[str, Any]"


def _money_check(
    event: Row,
    payments: Sequence[Row],
    unpaid: int,
    *,
    step_bound: timedelta = STEP_BOUND,
) -> MoneyCheck:
    problems: list[str] = []
    in_flight = sum(1 for p in payments if p["status"] in {"CAPTURING", "REFUNDING"})
    if unpaid:
        problems.append(f"{unpaid} confirmed reservations without a captured payment")
    references, unfindable = _references(payments)
    problems += unfindable
    now = datetime.now(UTC)
    captured = refunded = 0
    where = {
        "CAPTURED": {"CONFIRMED"},
        "REFUNDED": {"CANCELLED"},
        "VOIDED": {"EXPIRED", "CANCELLED"},
    }
    for p in payments:
        status, owner = p["status"], p["reservation_status"]
        if status == "CAPTURED":
            captured += p["amount_minor"]
        elif status == "REFUNDED":
            refunded += p["amount_minor"]
        timed_out = status == "VOIDED" and p["detail"].startswith("timed out")
        if status in where and owner not in where[status] and not timed_out:
            problems.append(f"payment {p['payment_id']} is {status} for a {owner} reservation")
        # An authorization must be settled by its deadline, a capture, void
        # or refund within the step bound from when it began (a refund's
        # cancellation may come days after the payment); and a payment whose
        # retry budget is spent waits for an operator.
        why = why_stuck(
            status=status,
            updated_at=p["updated_at"],
            deadline=p["deadline"],
            attention_since=p["attention_since"],
            now=now,
            step_bound=step_bound,
        )
        if why == "needs attention":
            problems.append(
                f"payment {p['payment_id']} {status} needs attention: {p['attempts']} failed "
                f"attempts, last error: {p['last_error']}"
            )
        elif why is not None:
            problems.append(f"payment {p['payment_id']} still {status} {why}")
    # The local provider's books hold the payments it took; Stripe's are at
    # Stripe (``ticketing-admin payments reconcile``).
    local = [p for p in payments if _provider(p) != "stripe"]
    at_stripe = [p for p in payments if _provider(p) == "stripe"]
    return MoneyCheck(
        event_id=str(event["event_id"]),
        currency=event["currency"],
        price_minor=event["price_minor"],
        confirmed_seats=event["confirmed"],
        captured_minor=captured,
        provider_captured_minor=sum(p["provider_captured"] for p in local),
        provider_refunded_minor=sum(p["provider_refunded"] for p in local),
        refunded_minor=refunded,
        problems=tuple(problems),
        in_flight=in_flight,
        stripe_captured_minor=sum(
            p["amount_minor"] for p in at_stripe if p["status"] == "CAPTURED"
        ),
        stripe_refunded_minor=sum(
            p["amount_minor"] for p in at_stripe if p["status"] == "REFUNDED"
        ),
        references=tuple(references),
    )


def _provider(p: Row) -> str:
    # Rows read before the provider column, or built without it, are the
    # local provider's (the column's default).
    return str(p.get("provider") or "local")


def _references(payments: Sequence[Row]) -> tuple[list[ProviderReference], list[str]]:
    """The provider's reference of every captured and refunded payment, and
    a problem for each Stripe payment without one (nobody could find it in
    Stripe's books)."""
    references, problems = [], []
    for p in payments:
        status = p["status"]
        if status not in {"CAPTURED", "REFUNDED"}:
            continue
        reference = p.get("provider_ref" if status == "CAPTURED" else "refund_ref")
        references.append(
            ProviderReference(
                str(p["payment_id"]), status, p["amount_minor"], _provider(p), reference
            )
        )
        if _provider(p) == "stripe" and not reference:
            what = "PaymentIntent" if status == "CAPTURED" else "refund"
            problems.append(
                f"payment {p['payment_id']} is {status} at stripe with no {what} id recorded"
            )
    return references, problems
