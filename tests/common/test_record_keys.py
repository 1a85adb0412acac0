"""The record keys: a record's MAC covers every field, the key it names is the
one it is verified with, and a rotation's keys are accepted side by side."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from consumer_service.settings import ConsumerSettings
from ticketing.queue.v1 import queue_pb2
from ticketing_common.codecs import encode_request
from ticketing_common.decisions import Request
from ticketing_common.domain import reservation_id_for, timestamp
from ticketing_common.record_keys import RecordKeys, Refusal, canonical

OLD = b"o" * 32
NEW = b"n" * 32
ROGUE = b"r" * 32


def keys_on(key_id: str, **others: bytes) -> RecordKeys:
    secrets = {"k-old": OLD, "k-new": NEW}
    return RecordKeys(key_id, {key_id: secrets[key_id], **others})


def signed(keys: RecordKeys) -> queue_pb2.ReservationRequested:
    event_id = str(uuid.uuid4())
    message = queue_pb2.ReservationRequested(
        reservation_id=keys.reservation_id("ann", "order-1", event_id),
        event_id=event_id,
        user_id="ann",
        quantity=2,
        idempotency_key="order-1",
        accept_time=timestamp(datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        tier="vip",
        sequence=41,
    )
    keys.sign(message)
    return message


# One change per field the MAC covers, each to a value a forger might want.
CHANGES: dict[str, Callable[[queue_pb2.ReservationRequested], object]] = {
    "reservation_id": lambda m: setattr(m, "reservation_id", str(uuid.uuid4())),
    "event_id": lambda m: setattr(m, "event_id", str(uuid.uuid4())),
    "user_id": lambda m: setattr(m, "user_id", "bob"),
    "quantity": lambda m: setattr(m, "quantity", 9),
    "idempotency_key": lambda m: setattr(m, "idempotency_key", "order-2"),
    "accept_time.seconds": lambda m: setattr(
        m.accept_time, "seconds", m.accept_time.seconds + 3600
    ),
    "accept_time.nanos": lambda m: setattr(m.accept_time, "nanos", m.accept_time.nanos + 1),
    "accept_time absent": lambda m: m.ClearField("accept_time"),
    "tier": lambda m: setattr(m, "tier", ""),
    "sequence": lambda m: setattr(m, "sequence", 1),
    "key_id": lambda m: setattr(m, "key_id", "k-old"),
    "section_id": lambda m: setattr(m, "section_id", "front"),
    "seat_ids": lambda m: m.seat_ids.append("A-1-1"),
    "accessible": lambda m: setattr(m, "accessible", True),
}


def test_a_seated_record_signs_its_seats_in_order() -> None:
    keys = keys_on("k-new")
    message = signed(keys)
    message.quantity = 2
    message.seat_ids.extend(["A-1-1", "A-1-2"])
    keys.sign(message)
    assert keys.verify(message) is None
    swapped = queue_pb2.ReservationRequested()
    swapped.CopyFrom(message)
    swapped.seat_ids[:] = ["A-1-2", "A-1-1"]
    assert keys.verify(swapped) is Refusal.BAD_MAC
    moved = queue_pb2.ReservationRequested()
    moved.CopyFrom(message)
    moved.seat_ids[:] = ["A-1-1", "A-1-3"]
    assert keys.verify(moved) is Refusal.BAD_MAC


def test_changes_cover_every_field_of_the_record() -> None:
    fields = {f.name for f in queue_pb2.ReservationRequested.DESCRIPTOR.fields} - {"mac"}
    assert fields == {name.split(".")[0].split(" ")[0] for name in CHANGES}


def test_a_signed_record_verifies() -> None:
    keys = keys_on("k-new")
    assert keys.verify(signed(keys)) is None


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_changing_any_one_field_fails_verification(field: str) -> None:
    keys = keys_on("k-new", **{"k-old": OLD})
    message = signed(keys)
    CHANGES[field](message)
    assert keys.verify(message) is Refusal.BAD_MAC


def test_a_changed_mac_fails_verification() -> None:
    keys = keys_on("k-new")
    message = signed(keys)
    message.mac = bytes([message.mac[0] ^ 1]) + message.mac[1:]
    assert keys.verify(message) is Refusal.BAD_MAC


def test_the_encoding_is_unambiguous_where_fields_meet() -> None:
    """Moving text from one field to the next changes the signed bytes."""
    first = queue_pb2.ReservationRequested(user_id="ab", idempotency_key="c")
    second = queue_pb2.ReservationRequested(user_id="a", idempotency_key="bc")
    assert canonical(first) != canonical(second)


def test_a_record_signed_with_the_previous_key_is_accepted_after_the_switch() -> None:
    before = keys_on("k-old", **{"k-new": NEW})  # rotation step 1
    after = keys_on("k-new", **{"k-old": OLD})  # step 2
    message = signed(before)
    assert message.key_id == "k-old"
    assert after.verify(message) is None
    # And the other way round, mid-rollout: a new gateway's record reaches a
    # consumer that still signs with the old key.
    assert before.verify(signed(after)) is None


def test_a_record_naming_a_key_we_do_not_hold_is_refused() -> None:
    message = signed(RecordKeys.single("k-rogue", ROGUE))
    assert keys_on("k-new", **{"k-old": OLD}).verify(message) is Refusal.UNKNOWN_KEY


def test_a_retired_key_is_refused() -> None:
    message = signed(keys_on("k-old"))
    assert keys_on("k-new").verify(message) is Refusal.UNKNOWN_KEY  # step 3 done


def test_a_key_id_names_its_own_secret_only() -> None:
    """A forger who renames the key a record was signed with gains nothing."""
    message = signed(RecordKeys.single("k-new", ROGUE))
    assert keys_on("k-new").verify(message) is Refusal.BAD_MAC


def test_an_unsigned_record_is_refused() -> None:
    message = signed(keys_on("k-new"))
    message.ClearField("mac")
    assert keys_on("k-new").verify(message) is Refusal.UNSIGNED
    message.key_id = ""
    message.mac = b"x" * 32
    assert keys_on("k-new").verify(message) is Refusal.UNSIGNED


def test_the_gateway_signs_what_it_appends() -> None:
    keys = keys_on("k-new")
    event_id = str(uuid.uuid4())
    request = Request(
        keys.reservation_id("ann", "k", event_id), event_id, "ann", 1, "k", datetime.now(UTC)
    )
    message = queue_pb2.ReservationRequested.FromString(encode_request(request, keys))
    assert (message.key_id, keys.verify(message)) == ("k-new", None)


def test_ids_stay_what_the_secret_gave_before_keys_had_ids() -> None:
    """Naming the key changes no id: a retry after the upgrade keeps its id."""
    assert keys_on("k-old").reservation_id("ann", "k", "e") == reservation_id_for(
        OLD, "ann", "k", "e"
    )


def test_a_retry_across_the_switch_finds_the_id_the_other_key_gave() -> None:
    assert keys_on("k-new", **{"k-old": OLD}).earlier_ids("ann", "k", "e") == [
        keys_on("k-old").reservation_id("ann", "k", "e")
    ]
    assert keys_on("k-new").earlier_ids("ann", "k", "e") == []


def test_derives_tells_an_id_a_gateway_gave_from_a_made_up_one() -> None:
    keys = keys_on("k-new", **{"k-old": OLD})
    genuine = signed(keys_on("k-old"))
    genuine.quantity = 0  # damaged: the MAC fails, the id still derives
    assert keys.verify(genuine) is Refusal.BAD_MAC
    assert keys.derives(genuine)
    genuine.user_id = "mallory"
    assert not keys.derives(genuine)


def test_keys_are_checked_when_made() -> None:
    with pytest.raises(ValueError, match="shorter"):
        RecordKeys.single("k1", b"short")
    with pytest.raises(ValueError, match="does not match"):
        RecordKeys.single("k 1", OLD)
    with pytest.raises(ValueError, match="no secret"):
        RecordKeys("k1", {"k2": OLD})


def test_settings_give_the_current_and_the_accepted_keys(
    settings_env: pytest.MonkeyPatch,
) -> None:
    settings_env.setenv("TICKETING_RESERVATION_ID_SECRET", NEW.decode())
    settings_env.setenv("TICKETING_RESERVATION_KEY_ID", "k-new")
    settings_env.setenv("TICKETING_RESERVATION_VERIFY_KEYS", '{"k-old": "' + OLD.decode() + '"}')
    keys = ConsumerSettings().record_keys()
    assert (keys.key_id, dict(keys.secrets)) == ("k-new", {"k-new": NEW, "k-old": OLD})
    assert OLD.decode() not in repr(ConsumerSettings())


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        '{"k-old": "short"}',
        '{"k old": "' + "o" * 32 + '"}',
        # The current key again, with another secret: which one signs?
        '{"k-new": "' + "o" * 32 + '"}',
    ],
)
def test_bad_accepted_keys_are_refused(settings_env: pytest.MonkeyPatch, value: str) -> None:
    settings_env.setenv("TICKETING_RESERVATION_ID_SECRET", NEW.decode())
    settings_env.setenv("TICKETING_RESERVATION_KEY_ID", "k-new")
    settings_env.setenv("TICKETING_RESERVATION_VERIFY_KEYS", value)
    with pytest.raises(ValidationError):
        ConsumerSettings()
