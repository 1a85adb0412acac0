"""Seat and reservation state have one home: ``ticketing_common/storage/seats.py``
writes every reservation's state and every event's seat counters, so seats
are taken and given back in one place. A runtime module that writes them
itself fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = (
    "gateway",
    "reservation_service",
    "consumer_service",
    "notifier_service",
    "payment_service",
    "ticketing_common",
)
HOME = ROOT / "ticketing_common" / "storage" / "seats.py"
# Writing a reservation, or an event's seat counters.
WRITES = (
    re.compile(r"UPDATE\s+reservations\b", re.IGNORECASE),
    re.compile(
        r"UPDATE\s+events\s+SET[^;\"]*\b(available|held|confirmed|capacity)\s*=", re.IGNORECASE
    ),
)


def test_only_the_seats_module_writes_reservations_and_seat_counters() -> None:
    writers = sorted(
        str(path.relative_to(ROOT))
        for package in RUNTIME
        for path in (ROOT / package).rglob("*.py")
        if path != HOME and any(w.search(path.read_text()) for w in WRITES)
    )
    assert writers == []


def test_the_rule_finds_what_it_looks_for() -> None:
    home = HOME.read_text()
    assert all(w.search(home) for w in WRITES)
