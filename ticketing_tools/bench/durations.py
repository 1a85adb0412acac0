"""Go duration strings (``10s``, ``1m30s``, ``500ms``), as ghz's flags take them.

Durations are kept as integer nanoseconds everywhere, like Go's
``time.Duration``, because ghz's JSON report writes them that way.
"""

from __future__ import annotations

import re

NANOS_PER_SECOND = 1_000_000_000

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek small letter mu
    "ms": 1_000_000,
    "s": NANOS_PER_SECOND,
    "m": 60 * NANOS_PER_SECOND,
    "h": 3600 * NANOS_PER_SECOND,
}
_PART = re.compile("(\\d+(?:\\.\\d*)?|\\.\\d+)([a-z\u00b5\u03bc]+)")


class DurationError(ValueError):
    """A string that Go's ``time.ParseDuration`` would reject."""


def parse_duration(text: str) -> int:
    """Nanoseconds in ``text``, read as Go's ``time.ParseDuration`` reads it:
    decimal numbers with units (``ns``, ``us`` or ``\u00b5s``, ``ms``, ``s``,
    ``m``, ``h``), optionally signed; ``0`` alone needs no unit."""
    raw = text.strip()
    body = raw.lstrip("+-")
    sign = -1 if raw.startswith("-") else 1
    if body == "0":
        return 0
    if not body:
        raise DurationError(f"invalid duration {text!r}")
    total = 0
    position = 0
    for match in _PART.finditer(body):
        if match.start() != position:
            break
        number, unit = match.groups()
        scale = _UNITS.get(unit)
        if scale is None:
            raise DurationError(f"unknown unit {unit!r} in duration {text!r}")
        whole, _, fraction = number.partition(".")
        nanos = int(whole or "0") * scale
        if fraction:
            nanos += int(fraction) * scale // 10 ** len(fraction)
        total += nanos
        position = match.end()
    if position != len(body):
        if body.isdigit() or _is_number(body):
            raise DurationError(f"missing unit in duration {text!r} (e.g. {body}s)")
        raise DurationError(f"invalid duration {text!r}")
    return sign * total


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def format_duration(nanos: int) -> str:
    """A compact Go-style rendering (``1m30s``, ``500ms``, ``0s``) for messages."""
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < NANOS_PER_SECOND:
        for unit, scale in (("ms", 1_000_000), ("us", 1_000), ("ns", 1)):
            if nanos >= scale:
                return f"{sign}{_trim(nanos / scale)}{unit}"
    hours, rest = divmod(nanos, 3600 * NANOS_PER_SECOND)
    minutes, rest = divmod(rest, 60 * NANOS_PER_SECOND)
    seconds = rest / NANOS_PER_SECOND
    text = f"{_trim(seconds)}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")
