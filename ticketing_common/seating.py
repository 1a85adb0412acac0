"""Assigned seats: a seated event's map, and best available seats together.

Pure and without I/O, like ``decisions``: the consumer decides with it
under the event's lock, in queue order. A plan is sections of rows, each
row its seats in order along it (two seats are together when they are next
to each other in the row). Best first is the plan's own order: sections in
order, rows in order, and within a row the block nearest the row's middle;
among blocks equally near, one that strands no single seat between taken
ones (a lone seat nobody asking for two can use).

Every row keeps an index of its free runs (the maximal blocks of free seats
together) and the longest of them, rebuilt for that row alone when one of
its seats changes, so best available skips a row that cannot serve a
request without looking at a seat: a request costs a look at each row
before the first that can serve it, and at that one row's runs.

Two indexes are kept: of the seats free now, and of the seats free or
held. A request no free block can serve but a held one could (a hold may
run out) waits; one that neither can serve is refused: ``NO_SEATS_TOGETHER``
while any seat is free or held, ``SOLD_OUT`` when none is. Accessible seats
go only to a request that asks for them; blocked seats never go.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class SeatState(StrEnum):
    AVAILABLE = "AVAILABLE"
    HELD = "HELD"
    SOLD = "SOLD"
    BLOCKED = "BLOCKED"


class Verdict(StrEnum):
    GRANTED = "GRANTED"
    # No block now, but one could form when a hold runs out.
    WAIT = "WAIT"
    NO_SEATS_TOGETHER = "NO_SEATS_TOGETHER"
    SOLD_OUT = "SOLD_OUT"
    # Chosen seats: one of them is taken or held.
    SEAT_TAKEN = "SEAT_TAKEN"


@dataclass(frozen=True, slots=True)
class PlanRow:
    row_id: str
    seat_ids: tuple[str, ...]
    accessible: frozenset[str] = frozenset()
    blocked: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PlanSection:
    section_id: str
    rows: tuple[PlanRow, ...]


@dataclass(frozen=True, slots=True)
class SeatRef:
    section_id: str
    row_id: str
    seat_id: str


@dataclass(frozen=True, slots=True)
class Choice:
    verdict: Verdict
    seats: tuple[SeatRef, ...] = ()


class Runs:
    """The free runs of one row, as (start, length), in order along it."""

    def __init__(self, free: Sequence[bool]) -> None:
        self.size = len(free)
        self._starts: list[int] = []
        self._lengths: list[int] = []
        start = None
        for i, is_free in enumerate((*free, False)):
            if is_free and start is None:
                start = i
            elif not is_free and start is not None:
                self._starts.append(start)
                self._lengths.append(i - start)
                start = None

    @property
    def longest(self) -> int:
        return max(self._lengths, default=0)

    def best(self, quantity: int) -> int | None:
        """The first seat of the best block of ``quantity`` free seats
        together: nearest the row's middle, then stranding no single seat,
        then leftmost; None if no run is long enough."""
        best: tuple[int, int, int] | None = None
        for start, length in zip(self._starts, self._lengths, strict=True):
            if length < quantity:
                continue
            for first in range(start, start + length - quantity + 1):
                # Twice the distance of the block's centre from the row's: integers.
                distance = abs(2 * first + quantity - 1 - (self.size - 1))
                strands = (first - start == 1) + (start + length - (first + quantity) == 1)
                key = (distance, strands, first)
                if best is None or key < best:
                    best = key
        return None if best is None else best[2]


@dataclass
class _Row:
    section_id: str
    plan: PlanRow
    # For general requests, and for those asking for accessible seats: the
    # seats free now, and those free or held.
    free: Runs = field(init=False)
    open: Runs = field(init=False)
    free_accessible: Runs = field(init=False)
    open_accessible: Runs = field(init=False)


class SeatMap:
    """A seated event's seats and their states; see the module's docstring."""

    def __init__(
        self, sections: Sequence[PlanSection], states: dict[str, SeatState] | None = None
    ) -> None:
        self._sections = tuple(sections)
        self._rows: dict[str, list[_Row]] = {}
        self._where: dict[str, tuple[_Row, int]] = {}
        self.states: dict[str, SeatState] = {}
        for section in self._sections:
            rows = self._rows.setdefault(section.section_id, [])
            for plan_row in section.rows:
                row = _Row(section.section_id, plan_row)
                rows.append(row)
                for i, seat in enumerate(plan_row.seat_ids):
                    self._where[seat] = (row, i)
                    blocked = seat in plan_row.blocked
                    self.states[seat] = SeatState.BLOCKED if blocked else SeatState.AVAILABLE
        for seat, state in (states or {}).items():
            if self.states.get(seat) is not SeatState.BLOCKED:
                self.states[seat] = state
        for rows in self._rows.values():
            for row in rows:
                self._index(row)

    def _index(self, row: _Row) -> None:
        seats = row.plan.seat_ids
        general = [s not in row.plan.accessible for s in seats]
        free = [self.states[s] is SeatState.AVAILABLE for s in seats]
        opened = [self.states[s] in (SeatState.AVAILABLE, SeatState.HELD) for s in seats]
        row.free = Runs([f and g for f, g in zip(free, general, strict=True)])
        row.open = Runs([o and g for o, g in zip(opened, general, strict=True)])
        row.free_accessible = Runs(free)
        row.open_accessible = Runs(opened)

    def best_available(
        self, quantity: int, *, section_id: str | None = None, accessible: bool = False
    ) -> Choice:
        """The best block of ``quantity`` seats together (in ``section_id``,
        or anywhere), or why there is none."""
        sections = [s for s in self._sections if section_id is None or s.section_id == section_id]
        rows = [row for s in sections for row in self._rows[s.section_id]]
        for row in rows:
            runs = row.free_accessible if accessible else row.free
            if runs.longest >= quantity:
                first = runs.best(quantity)
                assert first is not None
                return Choice(Verdict.GRANTED, self._refs(row, first, quantity))
        if any((r.open_accessible if accessible else r.open).longest >= quantity for r in rows):
            return Choice(Verdict.WAIT)
        if any((r.open_accessible if accessible else r.open).longest for r in rows):
            return Choice(Verdict.NO_SEATS_TOGETHER)
        return Choice(Verdict.SOLD_OUT)

    def chosen(self, seat_ids: Iterable[str], *, accessible: bool = False) -> Choice:
        """Exactly these seats (all known to the map): granted when every one
        is available (an accessible one only to a request asking for it)."""
        refs = []
        for seat in seat_ids:
            row, _ = self._where[seat]
            fit = self.states[seat] is SeatState.AVAILABLE and (
                accessible or seat not in row.plan.accessible
            )
            if not fit:
                return Choice(Verdict.SEAT_TAKEN)
            refs.append(SeatRef(row.section_id, row.plan.row_id, seat))
        return Choice(Verdict.GRANTED, tuple(refs))

    def knows(self, seat_id: str) -> bool:
        return seat_id in self._where

    def set_state(self, seats: Iterable[str], state: SeatState) -> None:
        """Seats change state (a hold, a sale, a release); the indexes follow."""
        touched: dict[int, _Row] = {}
        for seat in seats:
            assert self.states[seat] is not SeatState.BLOCKED, f"{seat} is blocked"
            self.states[seat] = state
            row, _ = self._where[seat]
            touched[id(row)] = row
        for row in touched.values():
            self._index(row)

    def _refs(self, row: _Row, first: int, quantity: int) -> tuple[SeatRef, ...]:
        return tuple(
            SeatRef(row.section_id, row.plan.row_id, seat)
            for seat in row.plan.seat_ids[first : first + quantity]
        )
