"""Queue record codecs, protobuf mapping and settings parsing."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketing.queue.v1 import queue_pb2
from ticketing.v1 import reservation_pb2 as pb
from ticketing_common.codecs import UndecodableRecord, decode_request, encode_request
from ticketing_common.decisions import Request
from ticketing_common.domain import RejectReason, Reservation, Status
from ticketing_common.record_keys import RecordKeys

KEYS = RecordKeys.single("k1", b"s" * 32)


def sample() -> Request:
    return Request(
        reservation_id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        user_id="kim",
        quantity=3,
        idempotency_key="k-1",
        accepted_at=datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
        partition=-1,
        offset=-1,
    )


def test_request_round_trips_through_the_queue_format() -> None:
    original = sample()
    decoded = decode_request(encode_request(original, KEYS), partition=4, offset=99)
    assert decoded == dataclasses.replace(original, partition=4, offset=99)


@pytest.mark.parametrize("value", [None, b"", b"\xff\xff\xff", b"\x0a\x01"])
def test_unreadable_records_are_refused(value: bytes | None) -> None:
    with pytest.raises(UndecodableRecord):
        decode_request(value, partition=0, offset=0)


def test_a_record_with_non_uuid_ids_is_refused() -> None:
    bad = dataclasses.replace(sample(), event_id="not-a-uuid")
    with pytest.raises(UndecodableRecord, match="UUID"):
        decode_request(encode_request(bad, KEYS), partition=0, offset=0)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_are_refused_cleanly(value: bytes) -> None:
    try:
        request = decode_request(value, partition=0, offset=0)
    except UndecodableRecord:
        return
    assert request.quantity >= 1
    assert uuid.UUID(request.event_id)


def test_status_and_reason_map_to_the_prefixed_enums() -> None:
    assert Status.CONFIRMED.to_proto() == pb.RESERVATION_STATUS_CONFIRMED
    assert Status.from_proto(pb.RESERVATION_STATUS_REJECTED) is Status.REJECTED
    assert RejectReason.EXPIRED_IN_QUEUE.to_proto() == pb.REJECT_REASON_EXPIRED_IN_QUEUE
    assert [s for s in Status if not s.terminal] == [Status.QUEUED, Status.HELD]
    # Every enum value of the contract has a domain twin.
    assert {
        Status(n.removeprefix("RESERVATION_STATUS_")) for n in pb.ReservationStatus.keys()[1:]
    } == set(Status)
    assert {
        RejectReason(n.removeprefix("REJECT_REASON_")) for n in pb.RejectReason.keys()[1:]
    } == set(RejectReason)


def test_reservation_to_proto() -> None:
    moment = datetime(2026, 5, 1, tzinfo=UTC)
    message = Reservation(
        "r", "e", "u", 2, Status.REJECTED, RejectReason.SOLD_OUT, moment, moment
    ).to_proto()
    assert (message.status, message.reject_reason) == (
        pb.RESERVATION_STATUS_REJECTED,
        pb.REJECT_REASON_SOLD_OUT,
    )
    assert message.decide_time.ToDatetime(tzinfo=UTC) == moment
    queued = Reservation("r", "e", "u", 2, Status.QUEUED, None, moment, None).to_proto()
    assert not queued.HasField("decide_time")
    assert queued.reject_reason == pb.REJECT_REASON_UNSPECIFIED


def test_salvage_keeps_only_what_postgresql_can_store() -> None:
    from ticketing_common.codecs import MAX_TEXT, salvage

    rid = str(uuid.uuid4())
    value = queue_pb2.ReservationRequested(
        reservation_id=rid, event_id="bad", user_id="a\x00b" + "x" * 300, quantity=0
    ).SerializeToString()
    with pytest.raises(UndecodableRecord):
        decode_request(value, partition=1, offset=7)
    salvaged = salvage(value, partition=1, offset=7, timestamp_ms=1_700_000_000_000)
    assert salvaged is not None
    assert salvaged.reservation_id == rid
    assert salvaged.event_id == str(uuid.UUID(int=0))
    assert "\x00" not in salvaged.user_id
    assert len(salvaged.user_id) == MAX_TEXT
    assert salvaged.accepted_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert salvage(b"\xff garbage", partition=0, offset=0, timestamp_ms=0) is None
