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
before the first that can serve it, and at that one row's runs. Per
section and over the whole plan, counts of the rows with a run of at least
k seats say which sections can serve and whether any can: a request for
anywhere goes straight to the first section that can serve it, and one
that nothing can serve is answered without looking at a section, so a
full or fragmented venue costs no more per request than an empty one.

Two indexes are kept: of the seats free now, and of the seats free or
held. A request no free block can serve but a held one could (a hold may
run out) waits; one that neither can serve is refused: ``NO_SEATS_TOGETHER``
while any seat is free or held, ``SOLD_OUT`` when none is. Accessible seats
go only to a request that asks for them; blocked seats never go.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

# Section, row and seat ids: short, printable, safe in a URL and a terminal.
_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Most seats one request may choose by id.
MAX_CHOSEN = 100


def valid_id(text: str) -> bool:
    return _ID.fullmatch(text) is not None


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
    """Seated with rows; standing (general admission) without, with
    ``capacity`` places. ``price_minor`` None: the event's price."""

    section_id: str
    rows: tuple[PlanRow, ...]
    name: str = ""
    price_minor: int | None = None
    capacity: int = 0

    @property
    def standing(self) -> bool:
        return not self.rows

    def place_ids(self) -> tuple[str, ...]:
        """The ids of a standing section's places (``~`` is in no plan's
        ids, so they cannot clash with a seat's); a seated one's seats."""
        if self.standing:
            return tuple(f"{self.section_id}~{n}" for n in range(1, self.capacity + 1))
        return tuple(seat for row in self.rows for seat in row.seat_ids)

    @property
    def sellable(self) -> int:
        """Places that can be sold: not blocked."""
        if self.standing:
            return self.capacity
        return sum(len(r.seat_ids) - len(r.blocked) for r in self.rows)


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
    """The free runs of one row, as (start, length), in order along it;
    never changed (a row's change builds new ones)."""

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
        # Read for every row best available passes: once, not per look.
        self.longest = max(self._lengths, default=0)

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
    section: int  # its section's place in the plan
    section_id: str
    plan: PlanRow
    # For general requests, and for those asking for accessible seats: the
    # seats free now, and those free or held.
    free: Runs = field(init=False)
    open: Runs = field(init=False)
    free_accessible: Runs = field(init=False)
    open_accessible: Runs = field(init=False)


# The four indexes of a row, by (accessible, open).
_KINDS = ("free", "open", "free_accessible", "open_accessible")


class _Longest:
    """For one kind of run, per section and over all of them, how many rows
    have a run of at least k seats (k from 1 to the longest row): which
    sections can serve a request, the first of them in plan order, and
    whether any can, are known without looking at a row."""

    def __init__(self, sections: int, longest_row: int) -> None:
        self._at_least = [[0] * (longest_row + 1) for _ in range(sections)]
        self._anywhere = [0] * (longest_row + 1)
        # Per k, no section before this one has such a row (moved on by
        # ``first``, back by ``move``): a venue filling up in plan order
        # is passed over once, not by every request.
        self._before = [0] * (longest_row + 1)

    def move(self, section: int, before: int, after: int) -> None:
        counts = self._at_least[section]
        anywhere = self._anywhere
        for k in range(after + 1, before + 1):
            counts[k] -= 1
            anywhere[k] -= 1
        for k in range(before + 1, after + 1):
            counts[k] += 1
            anywhere[k] += 1
            self._before[k] = min(self._before[k], section)

    def any(self, section: int, quantity: int) -> bool:
        counts = self._at_least[section]
        return quantity < len(counts) and counts[quantity] > 0

    def anywhere(self, quantity: int) -> bool:
        return quantity < len(self._anywhere) and self._anywhere[quantity] > 0

    def first(self, quantity: int) -> int | None:
        """The first section in plan order with a row that has a run of at
        least ``quantity`` seats, or None."""
        if not self.anywhere(quantity):
            return None
        section = self._before[quantity]
        while self._at_least[section][quantity] == 0:
            section += 1
        self._before[quantity] = section
        return section


class _Standing:
    """A standing section's places: any of them serve, together or not."""

    def __init__(self, places: Sequence[str], states: dict[str, SeatState]) -> None:
        self.places = tuple(places)
        self.free = [p for p in reversed(self.places) if states[p] is SeatState.AVAILABLE]
        self.held = sum(1 for p in self.places if states[p] is SeatState.HELD)

    def take(self, quantity: int) -> list[str]:
        return self.free[-1 : -quantity - 1 : -1]


class SeatMap:
    """A seated event's seats and their states; see the module's docstring."""

    def __init__(
        self, sections: Sequence[PlanSection], states: dict[str, SeatState] | None = None
    ) -> None:
        self._sections = tuple(sections)
        self._prices = MappingProxyType({s.section_id: s.price_minor for s in self._sections})
        self._order = {s.section_id: i for i, s in enumerate(self._sections)}
        # The standing sections' places in the plan, in order.
        self._standing_at = tuple(i for i, s in enumerate(self._sections) if s.standing)
        self._rows: dict[str, list[_Row]] = {}
        self._standing: dict[str, _Standing] = {}
        self._where: dict[str, tuple[_Row, int]] = {}
        self._place_of: dict[str, str] = {}
        self.states: dict[str, SeatState] = {}
        longest_row = max((len(r.seat_ids) for s in sections for r in s.rows), default=0)
        self._longest = {kind: _Longest(len(self._sections), longest_row) for kind in _KINDS}
        for number, section in enumerate(self._sections):
            rows = self._rows.setdefault(section.section_id, [])
            if section.standing:
                for place in section.place_ids():
                    self.states[place] = SeatState.AVAILABLE
                    self._place_of[place] = section.section_id
            for plan_row in section.rows:
                row = _Row(number, section.section_id, plan_row)
                rows.append(row)
                for i, seat in enumerate(plan_row.seat_ids):
                    self._where[seat] = (row, i)
                    blocked = seat in plan_row.blocked
                    self.states[seat] = SeatState.BLOCKED if blocked else SeatState.AVAILABLE
        for seat, state in (states or {}).items():
            if self.states.get(seat) is not SeatState.BLOCKED:
                self.states[seat] = state
        for section in self._sections:
            if section.standing:
                self._standing[section.section_id] = _Standing(section.place_ids(), self.states)
        for rows in self._rows.values():
            for row in rows:
                self._index(row, fresh=True)

    @property
    def sections(self) -> tuple[PlanSection, ...]:
        return self._sections

    def _index(self, row: _Row, *, fresh: bool = False) -> None:
        before = {kind: 0 if fresh else getattr(row, kind).longest for kind in _KINDS}
        seats = row.plan.seat_ids
        states = [self.states[s] for s in seats]
        free = [s is SeatState.AVAILABLE for s in states]
        opened = [s is SeatState.AVAILABLE or s is SeatState.HELD for s in states]
        row.free_accessible = Runs(free)
        row.open_accessible = Runs(opened)
        if row.plan.accessible:
            general = [s not in row.plan.accessible for s in seats]
            row.free = Runs([f and g for f, g in zip(free, general, strict=True)])
            row.open = Runs([o and g for o, g in zip(opened, general, strict=True)])
        else:
            # Most rows: every seat for anyone, the same runs for both.
            row.free, row.open = row.free_accessible, row.open_accessible
        for kind in _KINDS:
            self._longest[kind].move(row.section, before[kind], getattr(row, kind).longest)

    def best_available(
        self, quantity: int, *, section_id: str | None = None, accessible: bool = False
    ) -> Choice:
        """The best block of ``quantity`` seats together (in ``section_id``,
        or anywhere), or why there is none. A standing section serves any
        ``quantity`` of its places that are free."""
        if section_id is None:
            numbers = None  # every section
        else:
            number = self._order.get(section_id)
            numbers = () if number is None else (number,)
        free_kind, open_kind = (
            ("free_accessible", "open_accessible") if accessible else ("free", "open")
        )
        granted = self._grant(quantity, free_kind, numbers)
        if granted is not None:
            return granted
        could, left = self._could(quantity, open_kind, numbers)
        if could:
            return Choice(Verdict.WAIT)
        return Choice(Verdict.NO_SEATS_TOGETHER if left else Verdict.SOLD_OUT)

    def _grant(self, quantity: int, kind: str, numbers: Sequence[int] | None) -> Choice | None:
        """The best block free now in the sections ``numbers`` (None: all),
        in plan order; None if there is none."""
        longest = self._longest[kind]
        if numbers is None:
            seated = longest.first(quantity)
            # A standing section before the first seated one that can serve
            # comes first, as it comes first in the plan.
            for number in self._standing_at:
                if seated is not None and number > seated:
                    break
                if len(self._standing[self._sections[number].section_id].free) >= quantity:
                    return self._take_standing(number, quantity)
            return None if seated is None else self._grant_in(seated, quantity, kind)
        for number in numbers:
            if self._sections[number].standing:
                if len(self._standing[self._sections[number].section_id].free) >= quantity:
                    return self._take_standing(number, quantity)
            elif longest.any(number, quantity):
                return self._grant_in(number, quantity, kind)
        return None

    def _take_standing(self, number: int, quantity: int) -> Choice:
        section_id = self._sections[number].section_id
        places = self._standing[section_id].take(quantity)
        return Choice(Verdict.GRANTED, tuple(SeatRef(section_id, "", p) for p in places))

    def _grant_in(self, number: int, quantity: int, kind: str) -> Choice:
        """The best block in seated section ``number``, which has one."""
        for row in self._rows[self._sections[number].section_id]:
            runs: Runs = getattr(row, kind)
            if runs.longest >= quantity:
                first = runs.best(quantity)
                assert first is not None
                return Choice(Verdict.GRANTED, self._refs(row, first, quantity))
        raise AssertionError(f"section {number} counts a run of {quantity} it does not have")

    def _could(self, quantity: int, kind: str, numbers: Sequence[int] | None) -> tuple[bool, bool]:
        """Whether a block of ``quantity`` seats free or held is in the
        sections ``numbers`` (None: all), and whether any seat of a seated
        section is."""
        longest = self._longest[kind]
        if numbers is None:
            could, left = longest.anywhere(quantity), longest.anywhere(1)
            numbers = self._standing_at
        else:
            could = left = False
        for number in numbers:
            section = self._sections[number]
            if section.standing:
                standing = self._standing[section.section_id]
                opened = len(standing.free) + standing.held
                # Places short of the quantity are not a matter of seats
                # together: the section is sold out for this request.
                could = could or opened >= quantity
            else:
                could = could or longest.any(number, quantity)
                left = left or longest.any(number, 1)
        return could, left

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
        """``seat_id`` is a seat of a seated section (places of standing
        sections are not chosen by id)."""
        return seat_id in self._where

    def accessible(self, seat_id: str) -> bool:
        where = self._where.get(seat_id)
        return where is not None and seat_id in where[0].plan.accessible

    def prices(self) -> Mapping[str, int | None]:
        """Each section's price (None: the event's)."""
        return self._prices

    def has_section(self, section_id: str) -> bool:
        return section_id in self._order

    def section_of(self, seat_id: str) -> str:
        """The section of a seat or a standing place."""
        if seat_id in self._place_of:
            return self._place_of[seat_id]
        return self._where[seat_id][0].section_id

    def ref(self, seat_id: str) -> SeatRef:
        if seat_id in self._place_of:
            return SeatRef(self._place_of[seat_id], "", seat_id)
        row, _ = self._where[seat_id]
        return SeatRef(row.section_id, row.plan.row_id, seat_id)

    def set_state(self, seats: Iterable[str], state: SeatState) -> None:
        """Seats change state (a hold, a sale, a release); the indexes follow."""
        touched: dict[int, _Row] = {}
        for seat in seats:
            before = self.states[seat]
            assert before is not SeatState.BLOCKED, f"{seat} is blocked"
            self.states[seat] = state
            if seat in self._place_of:
                standing = self._standing[self._place_of[seat]]
                if before is SeatState.AVAILABLE and state is not SeatState.AVAILABLE:
                    # Taken from the top (take's order), so O(1) but for
                    # a state set from outside.
                    if standing.free and standing.free[-1] == seat:
                        standing.free.pop()
                    else:
                        standing.free.remove(seat)
                elif before is not SeatState.AVAILABLE and state is SeatState.AVAILABLE:
                    standing.free.append(seat)
                standing.held += (state is SeatState.HELD) - (before is SeatState.HELD)
                continue
            row, _ = self._where[seat]
            touched[id(row)] = row
        for row in touched.values():
            self._index(row)

    def _refs(self, row: _Row, first: int, quantity: int) -> tuple[SeatRef, ...]:
        return tuple(
            SeatRef(row.section_id, row.plan.row_id, seat)
            for seat in row.plan.seat_ids[first : first + quantity]
        )
