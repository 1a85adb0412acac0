"""The requests topic's records: encoding, checked decoding, and salvage of
what a bad record still tells."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from google.protobuf.message import DecodeError

from ticketing.queue.v1 import queue_pb2

from .decisions import Request
from .domain import from_timestamp, timestamp
from .record_keys import RecordKeys
from .seating import MAX_CHOSEN, valid_id

# Longest user_id / idempotency_key the gateway accepts.
MAX_TEXT = 128


def encode_request(request: Request, keys: RecordKeys) -> bytes:
    """The record a gateway appends for ``request``, signed with the current key."""
    message = queue_pb2.ReservationRequested(
        reservation_id=request.reservation_id,
        event_id=request.event_id,
        user_id=request.user_id,
        quantity=request.quantity,
        idempotency_key=request.idempotency_key,
        accept_time=timestamp(request.accepted_at),
        tier=request.tier,
        sequence=request.sequence,
        section_id=request.section_id,
        seat_ids=request.seat_ids,
        accessible=request.accessible,
    )
    keys.sign(message)
    return message.SerializeToString()


class UndecodableRecord(ValueError):
    pass


def decode_request(value: bytes | None, *, partition: int, offset: int) -> Request:
    """Decodes and sanity-checks one requests-topic record."""
    return request_from(parse_request(value), partition=partition, offset=offset)


def parse_request(value: bytes | None) -> queue_pb2.ReservationRequested:
    """The record as its message, unchecked (its MAC is checked on this)."""
    if value is None:
        raise UndecodableRecord("empty record")
    message = queue_pb2.ReservationRequested()
    try:
        message.ParseFromString(value)
    except DecodeError as exc:
        raise UndecodableRecord(f"not a ReservationRequested: {exc}") from None
    return message


def request_from(
    message: queue_pb2.ReservationRequested, *, partition: int, offset: int
) -> Request:
    """The request a parsed record stands for, its fields sanity-checked."""
    if not (
        message.reservation_id
        and message.event_id
        and message.user_id
        and message.quantity >= 1
        and message.HasField("accept_time")
    ):
        raise UndecodableRecord("ReservationRequested misses required fields")
    try:
        reservation_id = str(uuid.UUID(message.reservation_id))
        event_id = str(uuid.UUID(message.event_id))
    except ValueError:
        raise UndecodableRecord("reservation_id and event_id must be UUIDs") from None
    for name, text in (("user_id", message.user_id), ("idempotency_key", message.idempotency_key)):
        if len(text) > MAX_TEXT or "\x00" in text:
            raise UndecodableRecord(f"{name} is longer than {MAX_TEXT} or holds NUL")
    try:
        accepted_at: datetime = from_timestamp(message.accept_time)
    except (ValueError, OverflowError):
        raise UndecodableRecord("accept_time is out of range") from None
    if message.section_id and not valid_id(message.section_id):
        raise UndecodableRecord("section_id is not a valid id")
    if len(message.seat_ids) > MAX_CHOSEN or not all(map(valid_id, message.seat_ids)):
        raise UndecodableRecord(f"seat_ids are more than {MAX_CHOSEN} or not valid ids")
    if message.seat_ids and (
        message.section_id
        or message.quantity != len(message.seat_ids)
        or len(set(message.seat_ids)) != len(message.seat_ids)
    ):
        raise UndecodableRecord("seat_ids must be distinct, as many as quantity, no section_id")
    return Request(
        reservation_id=reservation_id,
        event_id=event_id,
        user_id=message.user_id,
        quantity=message.quantity,
        idempotency_key=message.idempotency_key,
        accepted_at=accepted_at,
        partition=partition,
        offset=offset,
        tier=message.tier[:MAX_TEXT],
        sequence=max(0, message.sequence),
        section_id=message.section_id,
        seat_ids=tuple(message.seat_ids),
        accessible=message.accessible,
    )


def _storable(text: str) -> str:
    """What PostgreSQL can store of a field we only keep for the record."""
    return text.replace("\x00", "")[:MAX_TEXT]


NIL_EVENT = str(uuid.UUID(int=0))


def salvage(
    value: bytes | None, *, partition: int, offset: int, timestamp_ms: int
) -> Request | None:
    """What can be recovered from a record ``decode_request`` refused: enough
    to record and tell its user the outcome, if it names a reservation id."""
    message = queue_pb2.ReservationRequested()
    try:
        message.ParseFromString(value or b"")
        reservation_id = str(uuid.UUID(message.reservation_id))
    except (DecodeError, ValueError):
        return None
    try:
        event_id = str(uuid.UUID(message.event_id))
    except ValueError:
        event_id = NIL_EVENT
    try:
        accepted_at = from_timestamp(message.accept_time)
    except (ValueError, OverflowError):
        accepted_at = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    if not message.HasField("accept_time"):
        accepted_at = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return Request(
        reservation_id=reservation_id,
        event_id=event_id,
        user_id=_storable(message.user_id),
        quantity=message.quantity,
        idempotency_key=_storable(message.idempotency_key),
        accepted_at=accepted_at,
        partition=partition,
        offset=offset,
    )
