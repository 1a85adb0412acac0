"""Hostile requests for any RPC, built from the API's protobuf descriptors.

``messages(descriptor, known)`` is a Hypothesis strategy for a message of
type ``descriptor``. Most examples are plausible requests with one or two
fields made hostile, so a call gets past its first check to the code behind
it; the rest are hostile throughout. A hostile value is drawn by the field's
type: strings empty, long, unicode, with control characters; integers at
their extremes; enums with numbers nobody defined; Timestamps and Durations
with seconds and nanos far out of range; field masks naming anything; nested
and repeated messages. A plausible value comes from ``known`` (real ids, by
field name) or from ``PLAUSIBLE``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
UINT32 = (0, 2**32 - 1)
UINT64 = (0, 2**64 - 1)
# Seconds a google.protobuf.Timestamp may hold (years 1 to 9999), and a Duration.
TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)
DURATION_SECONDS = 315_576_000_000
NOW = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())

_RANGES = {
    FieldDescriptor.TYPE_INT32: INT32,
    FieldDescriptor.TYPE_SINT32: INT32,
    FieldDescriptor.TYPE_SFIXED32: INT32,
    FieldDescriptor.TYPE_INT64: INT64,
    FieldDescriptor.TYPE_SINT64: INT64,
    FieldDescriptor.TYPE_SFIXED64: INT64,
    FieldDescriptor.TYPE_UINT32: UINT32,
    FieldDescriptor.TYPE_FIXED32: UINT32,
    FieldDescriptor.TYPE_UINT64: UINT64,
    FieldDescriptor.TYPE_FIXED64: UINT64,
}

# What a field of this name plausibly holds; the ids come from ``known``.
PLAUSIBLE: dict[str, Sequence[Any]] = {
    "name": ["Concert", "Fuzzed event"],
    "idempotency_key": ["key-1", "key-2", "9f1c2d"],
    "payment_method": ["test-ok", "test-declined", "test-timeout", "test-slow"],
    "currency_code": ["EUR", "USD", "JPY"],
    "priority_tiers": ["vip", "gold"],
    "quantity": [1, 2, 3],
    "capacity": [1, 10, 100],
    "per_user_limit": [1, 2, 5],
    "amount_minor": [0, 100, 2_500],
    "page_size": [0, 1, 2, 50],
    "page_token": [""],
}

# Hostile values that mean something for a field of this name.
NEAR_MISSES: dict[str, Sequence[Any]] = {
    "payment_method": ["card", "TEST-OK", " test-ok", "test-ok\x00"],
    "currency_code": ["eur", "XXX", "XAU", "XTS", "ZZZ", "EU", "EURO", "€UR", "E\u0301UR"],
    "name": [" padded ", "x" * 200, "x" * 201, "\u202eevil", "a\x00b"],
    "idempotency_key": ["k" * 128, "k" * 129, " ", "\t", "key\x00", "\u200b"],
    "priority_tiers": ["x" * 64, "x" * 65, "", "v\x00ip"],
    "page_token": ["v1.garbage.sig", "eyJ0IjoxfQ", "=" * 10, "a.b", "." * 4, "%%%"],
}

_CONTROL = st.sampled_from(["\x00", "\x01", "\x1b", "\x7f", "\u200b", "\u202e", "\ufeff", "\n"])


def hostile_strings(name: str) -> st.SearchStrategy[str]:
    choices: list[st.SearchStrategy[str]] = [
        st.just(""),
        st.text(max_size=40),
        st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=300),
        st.builds(lambda a, c, b: a + c + b, st.text(max_size=8), _CONTROL, st.text(max_size=8)),
        # Long: past every length limit.
        st.builds(
            lambda ch, n: ch * n,
            st.characters(codec="utf-8"),
            st.sampled_from([65, 129, 201, 1_001, 5_000]),
        ),
        st.uuids().map(lambda u: "{" + str(u).upper() + "}"),
        st.uuids().map(lambda u: "urn:uuid:" + str(u)),
        st.uuids().map(lambda u: u.hex.replace("a", "\u0661")),  # an Arabic-Indic digit
        st.uuids().map(lambda u: str(u) + "\x00"),
    ]
    if name in NEAR_MISSES:
        choices.append(st.sampled_from(list(NEAR_MISSES[name])))
    return st.one_of(choices)


def hostile_integers(kind: int) -> st.SearchStrategy[int]:
    low, high = _RANGES[kind]
    return st.one_of(
        st.integers(low, high),
        st.integers(-3, 1_001).filter(lambda n: low <= n <= high),
        st.sampled_from([low, high, 0, -1]).filter(lambda n: low <= n <= high),
    )


def hostile_enums(descriptor: EnumDescriptor) -> st.SearchStrategy[int]:
    # Proto3 enums are open: a client may send a number nobody defined.
    return st.one_of(st.sampled_from([v.number for v in descriptor.values]), st.integers(*INT32))


def _seconds_and_nanos(
    cls: type[Message], seconds: st.SearchStrategy[int], nanos: st.SearchStrategy[int]
) -> st.SearchStrategy[Message]:
    return st.builds(lambda s, n: cls(seconds=s, nanos=n), seconds, nanos)


def timestamps(cls: type[Message], *, hostile: bool) -> st.SearchStrategy[Message]:
    if not hostile:
        return _seconds_and_nanos(
            cls, st.integers(NOW - 86_400, NOW + 365 * 86_400), st.integers(0, 999_999_999)
        )
    low, high = TIMESTAMP_SECONDS
    return _seconds_and_nanos(
        cls,
        st.one_of(
            st.integers(low, high),
            st.sampled_from([low, high, low - 1, high + 1, 0, -1, *INT64]),
            st.integers(*INT64),
        ),
        st.one_of(
            st.just(0),
            st.integers(0, 999_999_999),
            st.sampled_from([-1, 1_000_000_000, *INT32]),
            st.integers(*INT32),
        ),
    )


def durations(cls: type[Message], *, hostile: bool) -> st.SearchStrategy[Message]:
    if not hostile:
        return _seconds_and_nanos(cls, st.integers(1, 3_600), st.just(0))
    return _seconds_and_nanos(
        cls,
        st.one_of(
            st.integers(-5, 100_000),
            st.sampled_from(
                [DURATION_SECONDS, -DURATION_SECONDS, DURATION_SECONDS + 1, 0, -1, *INT64]
            ),
            st.integers(*INT64),
        ),
        st.one_of(
            st.just(0),
            st.integers(-999_999_999, 999_999_999),
            st.sampled_from([-1, 1_000_000_000, *INT32]),
            st.integers(*INT32),
        ),
    )


def field_masks(
    cls: type[Message], paths: Sequence[str], *, hostile: bool
) -> st.SearchStrategy[Message]:
    real = st.sampled_from(list(paths) or ["name"])
    path = st.one_of(real, st.text(max_size=20), st.just("event.name")) if hostile else real
    return st.lists(path, max_size=8 if hostile else 3).map(lambda p: cls(paths=p))


class Builder:
    """Strategies for the messages of one API, given real ids by field name."""

    def __init__(self, known: Mapping[str, Sequence[str]]) -> None:
        self._known = known

    def messages(
        self, descriptor: Descriptor, depth: int = 0, paths: Sequence[str] = ()
    ) -> st.SearchStrategy[Message]:
        return self._messages(descriptor, depth, paths, hostile=None)

    def _messages(
        self,
        descriptor: Descriptor,
        depth: int,
        paths: Sequence[str],
        *,
        hostile: bool | None,
    ) -> st.SearchStrategy[Message]:
        cls = GetMessageClass(descriptor)
        special = {
            "google.protobuf.Timestamp": lambda h: timestamps(cls, hostile=h),
            "google.protobuf.Duration": lambda h: durations(cls, hostile=h),
            "google.protobuf.FieldMask": lambda h: field_masks(cls, paths, hostile=h),
        }.get(descriptor.full_name)
        if special is not None:
            if hostile is None:
                return st.one_of(special(False), special(True))
            return special(hostile)
        if depth > 3:
            return st.just(cls())
        return self._fields(cls, descriptor, depth, hostile)

    def _fields(
        self, cls: type[Message], descriptor: Descriptor, depth: int, hostile: bool | None
    ) -> st.SearchStrategy[Message]:
        # A field mask names the fields of the message beside it (UpdateEvent's event).
        paths = [
            inner.name
            for field in descriptor.fields
            if field.message_type is not None
            for inner in field.message_type.fields
        ]
        names = [f.name for f in descriptor.fields]

        @st.composite
        def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> Message:
            mode = draw(st.sampled_from(["one", "one", "some", "all"]))
            if hostile is True or (hostile is None and mode == "all"):
                bad = set(names)  # hostile throughout
            elif hostile is False:
                bad = set()
            elif mode == "one":  # a plausible request but for one field
                bad = {draw(st.sampled_from(names))}
            else:
                bad = draw(st.sets(st.sampled_from(names), max_size=2))
            drawn = {
                f.name: draw(self._field(f, depth, paths, hostile=f.name in bad))
                for f in descriptor.fields
            }
            return _build(cls, drawn)

        return build()

    def _field(
        self, field: FieldDescriptor, depth: int, paths: Sequence[str], *, hostile: bool
    ) -> st.SearchStrategy[Any]:
        one = self._value(field, depth, paths, hostile=hostile)
        if _is_repeated(field):
            if not hostile:
                return st.lists(one, max_size=2)
            return st.one_of(st.lists(one, max_size=5), st.lists(one, min_size=17, max_size=40))
        if hostile:
            return st.one_of(st.none(), one)
        return one

    def _value(
        self, field: FieldDescriptor, depth: int, paths: Sequence[str], *, hostile: bool
    ) -> st.SearchStrategy[Any]:
        """One (non-repeated) value of ``field``; None leaves it unset."""
        if field.message_type is not None:
            if hostile:
                return self._messages(field.message_type, depth + 1, paths, hostile=True)
            # A plausible message may still have a hostile field or two.
            return st.one_of(
                st.none(), self._messages(field.message_type, depth + 1, paths, hostile=None)
            )
        if not hostile:
            return self._plausible(field)
        if field.enum_type is not None:
            return hostile_enums(field.enum_type)
        if field.type in _RANGES:
            return hostile_integers(field.type)
        return {
            FieldDescriptor.TYPE_STRING: self._hostile_text(field),
            FieldDescriptor.TYPE_BYTES: st.binary(max_size=256),
            FieldDescriptor.TYPE_BOOL: st.booleans(),
            FieldDescriptor.TYPE_FLOAT: st.floats(width=32),
            FieldDescriptor.TYPE_DOUBLE: st.floats(),
        }[field.type]

    def _hostile_text(self, field: FieldDescriptor) -> st.SearchStrategy[str]:
        """Hostile text, or a plausible value spoiled: a NUL or another
        control character in it, a look-alike character, repeated past every
        bound."""
        if field.name not in self._known and field.name not in PLAUSIBLE:
            return hostile_strings(field.name)
        plausible = self._plausible(field).filter(lambda v: isinstance(v, str) and v != "")
        return st.one_of(
            hostile_strings(field.name),
            st.builds(lambda v, c: v + c, plausible, _CONTROL),
            st.builds(lambda v, c: c + v, plausible, _CONTROL),
            plausible.map(lambda v: v + "\x00"),
            plausible.map(lambda v: v.upper()),
            plausible.map(lambda v: v.replace("-", "\u2010")),  # a look-alike hyphen
            plausible.map(lambda v: v * 60),
        )

    def _plausible(self, field: FieldDescriptor) -> st.SearchStrategy[Any]:
        if field.name in self._known:
            return st.sampled_from(list(self._known[field.name]))
        if field.name in PLAUSIBLE:
            return st.sampled_from(list(PLAUSIBLE[field.name]))
        if field.enum_type is not None:
            return st.sampled_from([v.number for v in field.enum_type.values if v.number])
        if field.type == FieldDescriptor.TYPE_STRING and field.name.endswith("_id"):
            return st.uuids().map(str)
        return st.none()  # the default


def _is_repeated(field: Any) -> bool:
    return bool(field.is_repeated)


def _build(cls: type[Message], drawn: Mapping[str, Any]) -> Message:
    message = cls()
    for name, value in drawn.items():
        if value is None:
            continue
        field = message.DESCRIPTOR.fields_by_name[name]
        if _is_repeated(field):
            target = getattr(message, name)
            for item in value:
                if item is None:
                    continue
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    target.add().CopyFrom(item)
                else:
                    target.append(item)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            getattr(message, name).CopyFrom(value)
        else:
            setattr(message, name, value)
    return message
