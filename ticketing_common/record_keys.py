"""The gateways' record keys: reservation ids and the requests topic's MACs.

Each key has an id. A gateway derives reservation ids and signs every record
it appends with the current key, and names that key's id in the record; a
consumer verifies a record with the key it names, among the current key and
the others it is told to accept. That is what lets an operator rotate the
key without losing a request in flight (README, "Rotating the record key"):

1. every process accepts the new key besides its current one;
2. the gateways and consumers switch to the new key, the old one accepted;
3. once no record signed with the old key can still be in the queue (and no
   retry can still want its id), the old key is retired.

The MAC covers the whole request, not only its id: a record altered in
transit (another quantity, tier or accept time) does not verify.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from ticketing.queue.v1 import queue_pb2

from .domain import reservation_id_for

# What a key id may be: short, printable, safe in a header and a log line.
KEY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"
_KEY_ID = re.compile(KEY_ID_PATTERN)
MIN_SECRET_BYTES = 32

# The MAC is keyed with a key derived from the secret, never the secret
# itself: the secret also derives reservation ids, which callers see, and
# the two uses must not be able to stand in for each other.
_MAC_KEY_LABEL = b"ticketing.queue.v1.ReservationRequested mac v1"
# The first field of the signed bytes: what they are, so the MAC of a
# request cannot be mistaken for the MAC of any other message.
_DOMAIN = b"ticketing.queue.v1.ReservationRequested"


class Refusal(StrEnum):
    """Why a record does not verify (the forged-records metric's reason)."""

    UNSIGNED = "unsigned"  # no key id or no MAC
    UNKNOWN_KEY = "unknown_key"  # signed with a key this process does not hold
    BAD_MAC = "bad_mac"  # signed, but not over these fields with that key

    def explain(self, key_id: str) -> str:
        if self is Refusal.UNSIGNED:
            return "the record carries no key id or no MAC"
        if self is Refusal.UNKNOWN_KEY:
            return f"the record names key {key_id[:40]!r}, which this process does not accept"
        return f"the record's MAC does not verify with key {key_id!r}"


def valid_key_id(key_id: str) -> bool:
    return _KEY_ID.fullmatch(key_id) is not None


def canonical(message: queue_pb2.ReservationRequested) -> bytes:
    """The bytes a record's MAC is computed over: every field but the MAC,
    each as a 4-byte big-endian length and its bytes, so no two different
    records encode alike (protobuf's own encoding is not canonical: fields
    may come in any order, repeated or with default values spelled out)."""
    accept = message.accept_time
    fields: tuple[bytes, ...] = (
        _DOMAIN,
        message.key_id.encode("utf-8", "surrogatepass"),
        message.reservation_id.encode("utf-8", "surrogatepass"),
        message.event_id.encode("utf-8", "surrogatepass"),
        message.user_id.encode("utf-8", "surrogatepass"),
        struct.pack(">q", message.quantity),
        message.idempotency_key.encode("utf-8", "surrogatepass"),
        # Present or not, then its exact wire value.
        struct.pack(">?qi", message.HasField("accept_time"), accept.seconds, accept.nanos),
        message.tier.encode("utf-8", "surrogatepass"),
        struct.pack(">q", message.sequence),
    )
    if message.section_id or message.seat_ids or message.accessible:
        # Seated requests' fields, after a marker no other field can be (a
        # record without them signs as before seating existed).
        fields += (
            b"seats",
            message.section_id.encode("utf-8", "surrogatepass"),
            struct.pack(">I?", len(message.seat_ids), message.accessible),
            *(seat.encode("utf-8", "surrogatepass") for seat in message.seat_ids),
        )
    return b"".join(struct.pack(">I", len(f)) + f for f in fields)


def _mac_key(secret: bytes) -> bytes:
    return hmac.new(secret, _MAC_KEY_LABEL, hashlib.sha256).digest()


@dataclass(frozen=True)
class RecordKeys:
    """The current key (``key_id``) and every key a record may be verified
    with (``secrets``, the current one included)."""

    key_id: str
    secrets: Mapping[str, bytes] = field(repr=False)
    # Each key's MAC key, computed once: a record costs one HMAC to verify.
    _mac_keys: Mapping[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.key_id not in self.secrets:
            raise ValueError(f"record key {self.key_id!r} has no secret")
        for key_id, secret in self.secrets.items():
            if not valid_key_id(key_id):
                raise ValueError(f"record key id {key_id!r} does not match {KEY_ID_PATTERN}")
            if len(secret) < MIN_SECRET_BYTES:
                raise ValueError(f"record key {key_id!r} is shorter than {MIN_SECRET_BYTES} bytes")
        object.__setattr__(
            self, "_mac_keys", {k: _mac_key(secret) for k, secret in self.secrets.items()}
        )

    @classmethod
    def single(cls, key_id: str, secret: bytes) -> RecordKeys:
        return cls(key_id, {key_id: secret})

    @property
    def secret(self) -> bytes:
        """The current key's secret."""
        return self.secrets[self.key_id]

    def reservation_id(self, user_id: str, idempotency_key: str, event_id: str) -> str:
        """The id a new request gets: derived with the current key."""
        return reservation_id_for(self.secret, user_id, idempotency_key, event_id)

    def earlier_ids(self, user_id: str, idempotency_key: str, event_id: str) -> list[str]:
        """The ids the same request got from a gateway on one of the other
        keys: a retry across a rotation looks for them first, so it keeps
        the id it was given."""
        return [
            reservation_id_for(secret, user_id, idempotency_key, event_id)
            for key_id, secret in self.secrets.items()
            if key_id != self.key_id
        ]

    def sign(self, message: queue_pb2.ReservationRequested) -> None:
        """Names the current key in ``message`` and sets its MAC."""
        message.key_id = self.key_id
        message.mac = hmac.new(
            self._mac_keys[self.key_id], canonical(message), hashlib.sha256
        ).digest()

    def verify(self, message: queue_pb2.ReservationRequested) -> Refusal | None:
        """Why ``message`` was not signed by a gateway holding one of our
        keys, or None when it was. The comparison takes constant time."""
        if not message.key_id or not message.mac:
            return Refusal.UNSIGNED
        key = self._mac_keys.get(message.key_id)
        if key is None:
            return Refusal.UNKNOWN_KEY
        expected = hmac.new(key, canonical(message), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, message.mac):
            return Refusal.BAD_MAC
        return None

    def derives(self, message: queue_pb2.ReservationRequested) -> bool:
        """Whether the record's reservation id is the one a gateway on one of
        our keys gives its caller, key and event: true of a genuine request
        whose record was damaged, and of nothing a third party can make up."""
        return any(
            hmac.compare_digest(
                reservation_id_for(
                    secret, message.user_id, message.idempotency_key, message.event_id
                ).encode(),
                message.reservation_id.encode("utf-8", "surrogatepass"),
            )
            for secret in self.secrets.values()
        )
