"""ReserveRequest validation and reservation ids, without a network."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.validation import validate_reserve
from ticketing.v1 import gateway_service_pb2 as pb
from ticketing_common.domain import reservation_id_for
from ticketing_common.errors import InvalidArgument

EVENT = str(uuid.uuid4())


def request(**changes: object) -> pb.ReserveRequest:
    fields: dict[str, object] = {
        "event_id": EVENT,
        "quantity": 2,
        "idempotency_key": "k",
        **changes,
    }
    return pb.ReserveRequest(**fields)  # type: ignore[arg-type]


def test_a_valid_request_is_normalised() -> None:
    valid = validate_reserve(request(event_id=EVENT.upper()), "alice")
    assert (valid.event_id, valid.user_id, valid.quantity, valid.idempotency_key) == (
        EVENT,
        "alice",
        2,
        "k",
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"event_id": ""}, "event_id"),
        ({"event_id": "123"}, "event_id"),
        ({"quantity": 0}, "quantity"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": "x" * 129}, "idempotency_key"),
        # Several bad fields: the first in declaration order is named.
        ({"event_id": "", "quantity": 0}, "event_id"),
    ],
)
def test_each_invalid_field_is_named(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_reserve(request(**changes), "alice")
    assert caught.value.field == field
    assert caught.value.message.startswith(f"{field}: ")


@given(
    event_id=st.text(max_size=40),
    quantity=st.integers(min_value=-(2**31), max_value=2**31 - 1),
    key=st.text(max_size=200),
)
def test_any_input_is_either_valid_or_names_a_field(event_id: str, quantity: int, key: str) -> None:
    message = pb.ReserveRequest(event_id=event_id, quantity=quantity, idempotency_key=key)
    try:
        valid = validate_reserve(message, "alice")
    except InvalidArgument as exc:
        assert exc.field in {"event_id", "quantity", "idempotency_key"}
    else:
        assert uuid.UUID(valid.event_id)
        assert valid.quantity >= 1
        assert valid.user_id == "alice"
        assert 1 <= len(valid.idempotency_key) <= 128


SECRET = b"s" * 32


def test_reservation_id_is_stable_and_distinguishes_users_and_keys() -> None:
    event, other = str(uuid.uuid4()), str(uuid.uuid4())

    def rid(user: str, key: str, on: str = event, secret: bytes = SECRET) -> str:
        return reservation_id_for(secret, user, key, on)

    assert rid("alice", "k1") == rid("alice", "k1")
    assert rid("alice", "k1") != rid("alice", "k2")
    assert rid("alice", "k1") != rid("bob", "k1")
    # A key reused for another event is another request.
    assert rid("alice", "k1") != rid("alice", "k1", other)
    # The separator keeps ("ab", "c") and ("a", "bc") apart.
    assert rid("ab", "c") != rid("a", "bc")
    # Without the server's secret the id cannot be computed.
    assert rid("alice", "k1") != rid("alice", "k1", secret=b"t" * 32)
    parsed = uuid.UUID(rid("alice", "k1"))
    assert (parsed.version, parsed.variant) == (8, uuid.RFC_4122)


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(InvalidArgument) as raised:
        validate_reserve(request(event_id="nope", quantity=0, idempotency_key=""), "alice")
    assert [(v.field, v.description) for v in raised.value.violations] == [
        ("event_id", "must be a UUID, got 'nope'"),
        ("quantity", "must be at least 1, got 0"),
        ("idempotency_key", "is required"),
    ]
    assert raised.value.message == (
        "event_id: must be a UUID, got 'nope'; quantity: must be at least 1, got 0; "
        "idempotency_key: is required"
    )
