"""Dead letters: records of the requests topic that could not be applied.

A dead letter is the original record (same key, same value) on the dead-letter
topic, with headers saying why and where it came from. Its user has been told
the outcome (REJECTED with INVALID or INTERNAL) when the record named a
reservation id; the ledger counts it by its original partition and offset.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

PREFIX = "ticketing."
# Longest wait for the broker to take one dead letter.
SEND_TIMEOUT_S = 10.0


class Kind(StrEnum):
    UNDECODABLE = "undecodable"  # not a ReservationRequested, or fields fail validation
    PERSISTENT = "persistent"  # processing failed max_attempts times
    # Well-formed, but its MAC does not verify (unsigned, a record key the
    # consumer does not accept, or a field changed). Its buyer is told only
    # when the id is provably theirs (record_keys.RecordKeys.derives, or the
    # gateways' record of accepted requests); otherwise nobody is (the id may
    # be someone else's). A future accept time alone is not a forgery.
    FORGED = "forged"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    kind: Kind
    error: str
    original_topic: str
    original_partition: int
    original_offset: int
    attempts: int
    reservation_id: str | None
    dead_lettered_at: datetime | None

    @classmethod
    def from_record(cls, record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
        headers = {
            k.removeprefix(PREFIX): v.decode("utf-8", "replace")
            for k, v in (record.headers or ())
            if k.startswith(PREFIX)
        }
        try:
            kind = Kind(headers.get("kind", ""))
        except ValueError:
            kind = Kind.UNKNOWN
        at = headers.get("dead_lettered_at")
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            kind=kind,
            error=headers.get("error", ""),
            original_topic=headers.get("original_topic", ""),
            original_partition=int(headers.get("original_partition", "-1")),
            original_offset=int(headers.get("original_offset", "-1")),
            attempts=int(headers.get("attempts", "0")),
            reservation_id=headers.get("reservation_id") or None,
            dead_lettered_at=datetime.fromisoformat(at) if at else None,
        )


def headers_for(
    record: ConsumerRecord[bytes, bytes],
    *,
    kind: Kind,
    error: str,
    attempts: int,
    reservation_id: str | None,
) -> list[tuple[str, bytes]]:
    values = {
        "kind": kind.value,
        "error": error[:2000],
        "original_topic": record.topic,
        "original_partition": str(record.partition),
        "original_offset": str(record.offset),
        "attempts": str(attempts),
        "reservation_id": reservation_id or "",
        "dead_lettered_at": datetime.now(UTC).isoformat(),
    }
    return [(PREFIX + name, value.encode()) for name, value in values.items()]


async def send_dead_letter(
    producer: AIOKafkaProducer,
    topic: str,
    record: ConsumerRecord[bytes, bytes],
    *,
    kind: Kind,
    error: str,
    attempts: int,
    reservation_id: str | None,
) -> None:
    """Appends ``record`` to the dead-letter topic and waits for the broker,
    at most ``SEND_TIMEOUT_S``: an idempotent producer never gives up on a
    batch the broker keeps refusing for a retriable reason (too few in-sync
    replicas, say), and the consumer must not wait on it for ever. The
    timeout is a ``TimeoutError``, transient: the record is not passed, it is
    retried. The batch given up on may still be delivered later, so the
    topic may then hold the record twice, as after a crash; the ledger counts
    it once (by original partition and offset)."""
    async with asyncio.timeout(SEND_TIMEOUT_S):
        await producer.send_and_wait(
            topic,
            record.value,
            key=record.key,
            headers=headers_for(
                record, kind=kind, error=error, attempts=attempts, reservation_id=reservation_id
            ),
        )
