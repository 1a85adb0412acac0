"""Processing one polled batch: decide it per event, dead-letter what cannot
be read, publish every outcome. (The loop around it is in ``loop.py``.)

Order of effects for one batch, which is what makes a crash at any point safe:

1. per event: one Redis lock acquisition, one fenced PostgreSQL transaction;
2. every outcome published to the results topic (acks=all);
3. offsets committed.

A crash before 3 redelivers the batch; its ids are already in PostgreSQL, so
their stored outcomes are re-published and nothing is applied twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from opentelemetry import context as otel_context

from ticketing.queue.v1 import queue_pb2
from ticketing_common import tracing
from ticketing_common.codecs import (
    UndecodableRecord,
    parse_request,
    request_from,
    salvage,
)
from ticketing_common.deadletters import Kind, send_dead_letter
from ticketing_common.decisions import Request
from ticketing_common.domain import RejectReason, Reservation
from ticketing_common.failures import Failure, classify_failure
from ticketing_common.record_keys import RecordKeys, Refusal
from ticketing_common.storage.accepted import AcceptedRequests
from ticketing_common.storage.applier import Applier, decide_fenced
from ticketing_common.storage.locks import EventLocks

from . import metrics

log = structlog.get_logger(__name__)

# Longest wait for the record of accepted requests (Redis) when a record that
# fails verification may be a buyer's.
ACCEPTED_TIMEOUT_S = 5.0

Batch = Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]


class BatchProcessor:
    def __init__(
        self,
        *,
        applier: Applier,
        locks: EventLocks,
        producer: AIOKafkaProducer,
        results_topic: str,
        dead_letter_topic: str,
        lock_wait_s: float,
        concurrency: int,
        record_keys: RecordKeys,
        accepted: AcceptedRequests | None = None,
        fault_delay_s: float = 0.0,
    ) -> None:
        self._record_keys = record_keys
        # What the gateways accepted: tells whose a record that fails
        # verification is (see _buyers).
        self._accepted = accepted
        self._applier = applier
        self._locks = locks
        self._producer = producer
        self._results_topic = results_topic
        self._dead_letter_topic = dead_letter_topic
        self._lock_wait_s = lock_wait_s
        # Events of one batch are decided concurrently, but no more at once
        # than there are database connections: a lock must not be held while
        # its transaction waits for a connection.
        self._slots = asyncio.Semaphore(concurrency)
        self._fault_delay_s = fault_delay_s

    async def process(self, batch: Batch) -> dict[TopicPartition, int]:
        """Decides and publishes ``batch``; returns the offsets to commit.

        A record that cannot be read is dead-lettered in place (its user, if
        it names one, is told REJECTED/INVALID): the partition keeps flowing.
        """
        by_event: dict[str, list[Request]] = defaultdict(list)
        # Each request's trace context, from its record (tracing on only).
        traces: dict[str, otel_context.Context | None] = {}
        unreadable: list[tuple[ConsumerRecord[bytes, bytes], str]] = []
        forged: list[tuple[ConsumerRecord[bytes, bytes], Refusal, str]] = []
        offsets: dict[TopicPartition, int] = {}
        now = datetime.now(UTC)
        for tp, records in batch.items():
            for record in records:
                try:
                    message = parse_request(record.value)
                    request = request_from(message, partition=tp.partition, offset=record.offset)
                except UndecodableRecord as exc:
                    unreadable.append((record, str(exc)))
                    continue
                refusal = self._record_keys.verify(message)
                if refusal is not None:
                    forged.append((record, refusal, refusal.explain(message.key_id)))
                    continue
                if request.accepted_at > now:
                    # Its MAC verifies, so a gateway wrote it: an accept time
                    # ahead of this clock is that gateway's clock running
                    # fast, not a forgery, and its buyer is decided like any
                    # other. What the time is used for is bounded instead:
                    # counted from no later than now, a fast clock cannot
                    # stretch the queue TTL or the sale window, and no
                    # decision is stored as made before its request.
                    request = dataclasses.replace(request, accepted_at=now)
                by_event[request.event_id].append(request)
                if tracing.enabled():
                    traces.setdefault(request.reservation_id, tracing.extract(record.headers))
            if records:
                offsets[tp] = records[-1].offset + 1

        results: list[Reservation] = []
        carried: dict[str, tracing.Headers] = {}
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._decide_event(event_id, requests, traces))
                for event_id, requests in by_event.items()
            ]
        for task in tasks:
            decided, headers = task.result()
            results.extend(decided)
            carried.update(headers)
        for record, error in unreadable:
            results.extend(
                await self._dead_letter(
                    record, Kind.UNDECODABLE, error, attempts=1, reason=RejectReason.INVALID
                )
            )
        for record, refusal, error in forged:
            results.extend(
                await self._dead_letter(
                    record, Kind.FORGED, error, attempts=1, reason=RejectReason.INVALID
                )
            )
            # Counted once it is dead-lettered: a batch retried (its dead
            # letter refused by an outage) reads the record again.
            metrics.FORGED_RECORDS.labels(refusal.value).inc()
        await self._publish(results, carried)
        return offsets

    async def _buyers(
        self, record: ConsumerRecord[bytes, bytes], salvaged: Request
    ) -> Request | None:
        """What to record as rejected for the buyer a dead-lettered record
        names, or None when the id it names may not be that buyer's (telling
        would take a reservation from its real owner).

        A record is the buyer's when it verifies (a gateway wrote it), when
        its id is the one a gateway gives its caller, key and event (a
        damaged genuine record: a third party cannot compute that id), or
        when the gateways' record of accepted requests holds its id for its
        user and event: what a gateway signed with a key this consumer does
        not hold (a rotation done out of order) is told too. Recording never
        replaces a stored outcome (``Applier.reject``)."""
        message = parse_request(record.value)  # salvage parsed it already
        if self._record_keys.verify(message) is None or self._record_keys.derives(message):
            return salvaged
        if self._accepted is None:
            return None
        async with asyncio.timeout(ACCEPTED_TIMEOUT_S):
            first = await self._accepted.get(salvaged.reservation_id)
        if first is None or (first.user_id, first.event_id) != (
            salvaged.user_id,
            salvaged.event_id,
        ):
            return None
        return dataclasses.replace(salvaged, quantity=first.quantity, accepted_at=first.accepted_at)

    async def dead_letter_failed(
        self, record: ConsumerRecord[bytes, bytes], error: str, attempts: int
    ) -> None:
        """Gives up on a record that failed ``attempts`` times: its user is
        told REJECTED/INTERNAL and the record goes to the dead-letter topic."""
        told = await self._dead_letter(
            record, Kind.PERSISTENT, error, attempts=attempts, reason=RejectReason.INTERNAL
        )
        await self._publish(told)

    async def _dead_letter(
        self,
        record: ConsumerRecord[bytes, bytes],
        kind: Kind,
        error: str,
        *,
        attempts: int,
        reason: RejectReason,
    ) -> list[Reservation]:
        salvaged = salvage(
            record.value,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp,
        )
        if salvaged is not None:
            salvaged = await self._buyers(record, salvaged)
        # Recorded first: a crash after this redelivers the record, and the
        # stored outcome wins over any later attempt.
        told: list[Reservation] = []
        if salvaged is not None:
            try:
                told = await self._applier.reject([salvaged], reason)
            except Exception as exc:
                if classify_failure(exc) is not Failure.DATA:
                    # An outage or a defect, not the record: the record is not
                    # passed (its offset not committed) before its buyer's
                    # outcome is stored. The loop retries it with backoff.
                    raise
                # What the record names cannot be stored: it is dead-lettered
                # all the same (the ledger counts it), with nobody to tell.
                log.error("dead_letter_untold", error=f"{type(exc).__name__}: {exc}")
                salvaged = None
        await send_dead_letter(
            self._producer,
            self._dead_letter_topic,
            record,
            kind=kind,
            error=error,
            attempts=attempts,
            reservation_id=salvaged.reservation_id if salvaged else None,
        )
        metrics.DEAD_LETTERS.labels(kind.value).inc()
        log.error(
            "dead_lettered",
            kind=kind.value,
            error=error,
            partition=record.partition,
            offset=record.offset,
            attempts=attempts,
            reservation_id=salvaged.reservation_id if salvaged else None,
        )
        return told

    async def _decide_event(
        self,
        event_id: str,
        requests: list[Request],
        traces: Mapping[str, otel_context.Context | None],
    ) -> tuple[list[Reservation], dict[str, tracing.Headers]]:
        """The event's reservations as decided, and the trace headers each
        traced request's result carries on."""
        async with self._slots:
            with tracing.continuing(
                "ticketing.decide",
                {r.reservation_id: traces.get(r.reservation_id) for r in requests},
                event_id=event_id,
                requests=len(requests),
            ) as carried:
                return await self._decide_event_locked(event_id, requests), dict(carried)

    async def _decide_event_locked(
        self, event_id: str, requests: list[Request]
    ) -> list[Reservation]:
        with structlog.contextvars.bound_contextvars(event_id=event_id):
            return await decide_fenced(
                self._locks,
                self._applier,
                event_id,
                requests,
                lock_wait_s=self._lock_wait_s,
                fault_delay_s=self._fault_delay_s,
            )

    async def _publish(
        self, results: Sequence[Reservation], traced: Mapping[str, tracing.Headers] | None = None
    ) -> None:
        traced = traced or {}
        futures = [
            await self._producer.send(
                self._results_topic,
                queue_pb2.ReservationDecided(reservation=r.to_proto()).SerializeToString(),
                key=r.reservation_id.encode(),
                headers=list(traced[r.reservation_id]) if r.reservation_id in traced else None,
            )
            for r in results
        ]
        if futures:
            await asyncio.gather(*futures)
