"""The transactional outbox: how a state change committed in PostgreSQL
reaches Kafka without being lost or announced when it did not happen.

Whoever changes a reservation or a payment outside the consumer's decision
path (hold expiry, cancellation, the payment saga) writes the records that
announce it into ``outbox``, in the same transaction as the change. A relay
(in every consumer process) publishes them in id order with ``acks=all`` and
deletes them once the broker has them. A crash between the publish and the
delete publishes them again: readers are idempotent (a reservation record
carries its version; a payment command only names the payment, whose state
is in PostgreSQL).

Why an outbox and not Kafka transactions: the state lives in PostgreSQL,
and a Kafka transaction cannot include a PostgreSQL commit; it would still
leave the window between the two commits. With the outbox there is one
commit, PostgreSQL's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer

from ticketing.queue.v1 import queue_pb2

from ..domain import Reservation
from .db import Connection

log = structlog.get_logger(__name__)

# Logical topic names in the outbox; the relay maps them to the configured ones.
RESULTS = "results"
PAYMENTS = "payments"
# Writers notify this channel (at commit) so the relay wakes at once.
CHANNEL = "ticketing_outbox"
# Rows published per round.
BATCH = 500


async def announce(conn: Connection, reservations: Iterable[Reservation]) -> None:
    """Each reservation's new state, for the results topic (key: its id)."""
    rows = [
        (
            RESULTS,
            r.reservation_id.encode(),
            queue_pb2.ReservationDecided(reservation=r.to_proto()).SerializeToString(),
        )
        for r in reservations
    ]
    await _write(conn, rows)


async def command(conn: Connection, payment_id: str, reservation_id: str) -> None:
    """Tells the payment saga to take ``payment_id`` one step further."""
    value = queue_pb2.PaymentCommand(payment_id=payment_id).SerializeToString()
    await _write(conn, [(PAYMENTS, reservation_id.encode(), value)])


async def _write(conn: Connection, rows: list[tuple[str, bytes, bytes]]) -> None:
    if not rows:
        return
    await conn.executemany("INSERT INTO outbox (topic, key, value) VALUES ($1, $2, $3)", rows)
    await conn.execute("SELECT pg_notify($1, '')", CHANNEL)


class OutboxRelay:
    """Publishes the outbox. Several relays may run at once: each round
    claims its rows with ``FOR UPDATE SKIP LOCKED``."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        topics: Mapping[str, str],
        *,
        dsn: str,
        poll_s: float = 5.0,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._topics = dict(topics)
        self._dsn = dsn
        self._poll_s = poll_s
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Publishes whenever a writer commits (LISTEN), and every ``poll_s``
        in case a notification was missed (e.g. while reconnecting)."""
        listener = asyncio.create_task(self._listen())
        try:
            while True:
                # Cleared before reading: a commit during the round wakes the next.
                self._wake.clear()
                try:
                    while await self.publish_once() == BATCH:
                        pass
                except Exception as exc:  # noqa: BLE001 - logged; retried next round
                    log.warning("outbox_publish_failed", error=f"{type(exc).__name__}: {exc}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_s)
        finally:
            listener.cancel()

    async def publish_once(self) -> int:
        """Publishes one round of rows; returns how many."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, topic, key, value FROM outbox ORDER BY id LIMIT $1 "
                "FOR UPDATE SKIP LOCKED",
                BATCH,
            )
            if not rows:
                return 0
            futures = [
                await self._producer.send(
                    self._topics[row["topic"]], bytes(row["value"]), key=bytes(row["key"])
                )
                for row in rows
            ]
            await asyncio.gather(*futures)
            await conn.execute(
                "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [row["id"] for row in rows]
            )
        log.debug("outbox_published", records=len(rows))
        return len(rows)

    async def _listen(self) -> None:
        while True:
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                closed = asyncio.Event()
                try:
                    conn.add_termination_listener(lambda _, done=closed: done.set())
                    await conn.add_listener(CHANNEL, lambda *_: self._wake.set())
                    self._wake.set()  # what was written while we were away
                    await closed.wait()
                finally:
                    await conn.close()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("outbox_listen_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(1.0)
