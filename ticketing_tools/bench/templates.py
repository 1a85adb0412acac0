"""ghz's call-data templates: the Go ``text/template`` subset ghz documents.

ghz renders ``-d`` and ``-m`` through Go templates once per call, with the
fields of its ``callTemplateData`` and the functions ``newUUID``,
``randomString N`` and ``randomInt MIN MAX``. This module compiles a template
once into literal and action segments, so rendering a call is a join; a
template without actions renders to the same text every time, which lets
callers build the request once (``is_static``).

Supported actions: ``{{.Field}}`` for every ghz field, the three functions,
``{{/* comments */}}`` and the ``{{-``/``-}}`` trim markers. Anything else
(pipelines, ``if``, ``range``, sprig functions) is rejected when compiling,
naming what is supported, rather than sent verbatim as ghz does.
"""

from __future__ import annotations

import random
import re
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

_ALPHABET = string.ascii_letters + string.digits
_RANDOM_MIN_LEN = 2
_RANDOM_MAX_LEN = 16
_ACTION = re.compile(r"\{\{(-\s)?\s*(.*?)\s*(\s-)?\}\}", re.DOTALL)
_rng = random.Random()


class TemplateError(ValueError):
    """A template that cannot be compiled or rendered."""


@dataclass(frozen=True)
class MethodNames:
    """The method-describing fields of ghz's template data."""

    fully_qualified_name: str = ""
    method_name: str = ""
    service_name: str = ""
    input_name: str = ""
    output_name: str = ""
    client_streaming: bool = False
    server_streaming: bool = False


@dataclass(frozen=True)
class CallContext:
    """What varies per call: who sends it, its number and when."""

    worker_id: str
    request_number: int
    method: MethodNames
    timestamp_ns: int  # wall clock, nanoseconds since the epoch
    call_uuid: str


def new_context(worker_id: str, request_number: int, method: MethodNames) -> CallContext:
    return CallContext(
        worker_id=worker_id,
        request_number=request_number,
        method=method,
        timestamp_ns=time.time_ns(),
        call_uuid=str(uuid.uuid4()),
    )


def rfc3339(timestamp_ns: int) -> str:
    """Go's ``time.RFC3339`` in local time: seconds, ``Z`` for UTC."""
    moment = datetime.fromtimestamp(timestamp_ns // 1_000_000_000, tz=UTC).astimezone()
    text = moment.isoformat(timespec="seconds")
    if text.endswith("+00:00"):
        return text.removesuffix("+00:00") + "Z"
    return text


def _bool(value: bool) -> str:
    return "true" if value else "false"


_FIELDS: dict[str, Callable[[CallContext], str]] = {
    "WorkerID": lambda c: c.worker_id,
    "RequestNumber": lambda c: str(c.request_number),
    "FullyQualifiedName": lambda c: c.method.fully_qualified_name,
    "MethodName": lambda c: c.method.method_name,
    "ServiceName": lambda c: c.method.service_name,
    "InputName": lambda c: c.method.input_name,
    "OutputName": lambda c: c.method.output_name,
    "IsClientStreaming": lambda c: _bool(c.method.client_streaming),
    "IsServerStreaming": lambda c: _bool(c.method.server_streaming),
    "Timestamp": lambda c: rfc3339(c.timestamp_ns),
    "TimestampUnix": lambda c: str(c.timestamp_ns // 1_000_000_000),
    "TimestampUnixMilli": lambda c: str(c.timestamp_ns // 1_000_000),
    "TimestampUnixNano": lambda c: str(c.timestamp_ns),
    "UUID": lambda c: c.call_uuid,
}


def random_string(length: int) -> str:
    """ghz's ``randomString``: letters and digits; a length of 0 or less picks
    a random length between 2 and 16."""
    if length <= 0:
        length = _rng.randint(_RANDOM_MIN_LEN, _RANDOM_MAX_LEN)
    return "".join(_rng.choices(_ALPHABET, k=length))


def random_int(low: int, high: int) -> int:
    """ghz's ``randomInt``: an integer in ``[low, high)`` (Go's ``Intn``
    convention); ``low`` when the range is empty."""
    low = max(low, 0)
    if high <= low:
        return low
    return _rng.randrange(low, high)


Segment = str | Callable[[CallContext], str]


def _function(name: str, args: list[str], source: str) -> Callable[[CallContext], str]:
    def integers(count: int) -> list[int]:
        if len(args) != count:
            raise TemplateError(f"{name} takes {count} integer argument(s) in {{{{{source}}}}}")
        try:
            return [int(arg) for arg in args]
        except ValueError:
            raise TemplateError(f"{name} takes integer arguments in {{{{{source}}}}}") from None

    if name == "newUUID":
        integers(0)
        return lambda _c: str(uuid.uuid4())
    if name == "randomString":
        (length,) = integers(1)
        return lambda _c: random_string(length)
    if name == "randomInt":
        low, high = integers(2)
        return lambda _c: str(random_int(low, high))
    supported = ", ".join(["." + field for field in _FIELDS] + ["newUUID", "randomString N"])
    raise TemplateError(
        f"unsupported template action {{{{{source}}}}}; supported: {supported}, randomInt MIN MAX"
    )


def _action(source: str) -> Segment | None:
    if source.startswith("/*") and source.endswith("*/"):
        return None
    if source.startswith("."):
        field = _FIELDS.get(source[1:])
        if field is None:
            known = ", ".join("." + name for name in _FIELDS)
            raise TemplateError(f"unknown template field {{{{{source}}}}}; known: {known}")
        return field
    name, *args = source.split()
    return _function(name, args, source)


@dataclass(frozen=True)
class CallTemplate:
    """A compiled template: literal text and actions, in order."""

    source: str
    segments: tuple[Segment, ...]

    @classmethod
    def compile(cls, source: str) -> CallTemplate:
        segments: list[Segment] = []
        literal_start = 0
        pending_trim = False
        for match in _ACTION.finditer(source):
            literal = source[literal_start : match.start()]
            if pending_trim:
                literal = literal.lstrip()
            if match.group(1):
                literal = literal.rstrip()
            if literal:
                segments.append(literal)
            action = _action(match.group(2))
            if action is not None:
                segments.append(action)
            pending_trim = bool(match.group(3))
            literal_start = match.end()
        tail = source[literal_start:]
        if pending_trim:
            tail = tail.lstrip()
        if "{{" in tail:
            raise TemplateError(f"unclosed template action in {tail!r}")
        if tail:
            segments.append(tail)
        return cls(source=source, segments=tuple(segments))

    @property
    def is_static(self) -> bool:
        return all(isinstance(segment, str) for segment in self.segments)

    def render(self, context: CallContext) -> str:
        return "".join(
            segment if isinstance(segment, str) else segment(context) for segment in self.segments
        )
