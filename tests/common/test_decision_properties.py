"""The decision functions driven the way the consumer, the sale controls, the
hold expiry and cancellations drive them, in random order (Hypothesis'
stateful testing): after every step the seats add up, every reservation is
decided at most once, and no customer holds, owns or waits for more than the
event's per-user limit.

The model keeps the event and its reservations as PostgreSQL would, and calls
``decide`` and ``settle_waitlist`` where the services do: a batch settles
the waitlist first when somebody waits (the applier), every release settles
it (expiry, cancellation), and so does every change of the sale's terms
(pause, resume, capacity, limit)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from ticketing_common.decisions import BatchOutcome, Request, Seats, decide, settle_waitlist
from ticketing_common.domain import Status

START = datetime(2026, 6, 1, tzinfo=UTC)
QUEUE_TTL = timedelta(minutes=2)
VIP = "vip"
USERS = ("ann", "bob", "cy")
GRANTED = (Status.HELD, Status.CONFIRMED)
COUNTED = (Status.HELD, Status.CONFIRMED, Status.QUEUED)


@dataclass
class Row:
    request: Request
    status: Status
    lane: int
    # When it went on the waitlist (the store orders the line by it).
    waiting_since: int = 0


class Sale(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, Row] = {}
        self.ids = itertools.count(1)
        self.tick = itertools.count(1)
        self.now = START
        self.paused = False
        # What each user was granted when the limit was lowered below it:
        # kept, but never added to.
        self.kept: dict[str, int] = {}

    @initialize(
        capacity=st.integers(1, 12),
        limit=st.integers(1, 4),
        holds=st.booleans(),
    )
    def open_sale(self, capacity: int, limit: int, holds: bool) -> None:
        self.capacity = capacity
        self.available = capacity
        self.held = self.confirmed = 0
        self.limit = min(limit, capacity)
        self.hold_ttl = timedelta(minutes=5) if holds else None

    # -- the store ---------------------------------------------------------

    def seats(self) -> Seats:
        waiting = [r for r in self.rows.values() if r.status is Status.QUEUED]
        return Seats(
            available=self.available,
            per_user_limit=self.limit,
            queue_ttl=QUEUE_TTL,
            held=self.held,
            hold_ttl=self.hold_ttl,
            waiting=len(waiting),
            waiting_priority=sum(r.lane for r in waiting),
            priority_tiers=frozenset({VIP}),
            paused=self.paused,
        )

    def user_seats(self, statuses: tuple[Status, ...]) -> dict[str, int]:
        seats: dict[str, int] = {}
        for row in self.rows.values():
            if row.status in statuses:
                user = row.request.user_id
                seats[user] = seats.get(user, 0) + row.request.quantity
        return seats

    def apply(self, outcome: BatchOutcome, *, new: bool) -> None:
        stamp = next(self.tick)
        for decision in outcome.decisions:
            rid = decision.request.reservation_id
            if new:
                assert rid not in self.rows, "a reservation decided twice"
                lane = self.seats().lane(decision.request)
                self.rows[rid] = Row(decision.request, decision.status, lane, stamp)
            else:
                assert self.rows[rid].status is Status.QUEUED
                self.rows[rid].status = decision.status
        self.available -= outcome.seats_taken
        self.held += outcome.seats_held
        self.confirmed += outcome.seats_confirmed

    def settle(self) -> None:
        line = sorted(
            (r for r in self.rows.values() if r.status is Status.QUEUED),
            key=lambda r: (-r.lane, r.waiting_since, r.request.offset),
        )
        if line:
            granted = self.user_seats(GRANTED)
            outcome = settle_waitlist(self.seats(), [r.request for r in line], self.now, granted)
            self.apply(outcome, new=False)

    def release(self, row: Row, status: Status) -> None:
        if row.status is Status.HELD:
            self.held -= row.request.quantity
            self.available += row.request.quantity
        elif row.status is Status.CONFIRMED:
            self.confirmed -= row.request.quantity
            self.available += row.request.quantity
        row.status = status
        self.settle()

    def pick(self, index: int, *statuses: Status) -> Row | None:
        rows = [r for r in self.rows.values() if r.status in statuses]
        return rows[index % len(rows)] if rows else None

    # -- what happens to a sale --------------------------------------------

    @rule(
        asks=st.lists(
            st.tuples(st.sampled_from(USERS), st.integers(1, 3), st.sampled_from(["", VIP])),
            min_size=1,
            max_size=5,
        ),
        redeliver=st.integers(0, 3),
    )
    def a_batch(self, asks: list[tuple[str, int, str]], redeliver: int) -> None:
        batch = []
        for user, quantity, tier in asks:
            n = next(self.ids)
            batch.append(
                Request(f"r{n}", "event", user, quantity, f"k{n}", self.now, 0, n, tier=tier)
            )
        # Redelivered records: some of this batch's twice, and earlier ones.
        batch += batch[:redeliver]
        earlier = list(self.rows.values())[:redeliver]
        batch += [row.request for row in earlier]
        if any(r.status is Status.QUEUED for r in self.rows.values()):
            self.settle()
        fresh = [r for r in batch if r.reservation_id not in self.rows]
        outcome = decide(self.seats(), self.user_seats(COUNTED), fresh, self.now)
        self.apply(outcome, new=True)
        # No loss: every request of the batch has its one outcome now.
        assert {r.reservation_id for r in batch} <= self.rows.keys()

    @rule()
    def pause(self) -> None:
        self.paused = True
        self.settle()

    @rule()
    def resume(self) -> None:
        self.paused = False
        self.settle()

    @rule(index=st.integers(0, 50))
    def hold_expires(self, index: int) -> None:
        row = self.pick(index, Status.HELD)
        if row is not None:
            self.release(row, Status.EXPIRED)

    @rule(index=st.integers(0, 50))
    def paid(self, index: int) -> None:
        row = self.pick(index, Status.HELD)
        if row is not None:
            row.status = Status.CONFIRMED
            self.held -= row.request.quantity
            self.confirmed += row.request.quantity
            self.settle()  # fewer seats held: some may never be served now

    @rule(index=st.integers(0, 50))
    def cancelled(self, index: int) -> None:
        row = self.pick(index, Status.HELD, Status.CONFIRMED, Status.QUEUED)
        if row is not None:
            self.release(row, Status.CANCELLED)

    @rule(capacity=st.integers(1, 14))
    def capacity_changed(self, capacity: int) -> None:
        # UpdateEvent's own checks: not below what is held or sold, and the
        # limit no larger than the capacity.
        if capacity < self.held + self.confirmed or self.limit > capacity:
            return
        self.capacity = capacity
        self.available = capacity - self.held - self.confirmed
        self.settle()

    @rule(limit=st.integers(1, 4))
    def limit_changed(self, limit: int) -> None:
        if limit > self.capacity:
            return
        for user, granted in self.user_seats(GRANTED).items():
            if granted > limit:
                self.kept[user] = max(self.kept.get(user, 0), granted)
        self.limit = limit
        self.settle()

    @rule(seconds=st.integers(1, 90))
    def time_passes(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @precondition(lambda self: not self.paused)
    @rule()
    def the_consumer_settles(self) -> None:
        self.settle()

    # -- what must hold after every step -----------------------------------

    @invariant()
    def the_seats_add_up(self) -> None:
        if not hasattr(self, "capacity"):
            return
        assert self.available >= 0
        assert self.capacity == self.available + self.held + self.confirmed
        held = sum(r.request.quantity for r in self.rows.values() if r.status is Status.HELD)
        sold = sum(r.request.quantity for r in self.rows.values() if r.status is Status.CONFIRMED)
        assert (held, sold) == (self.held, self.confirmed)
        if self.hold_ttl is None:
            assert held == 0

    @invariant()
    def nobody_passes_the_limit(self) -> None:
        if not hasattr(self, "capacity"):
            return
        granted = self.user_seats(GRANTED)
        counted = self.user_seats(COUNTED)
        for user, seats in counted.items():
            # Seats granted before a lower limit are kept, and only those:
            # a user above the limit waits for nothing more.
            kept = min(self.kept.get(user, 0), granted.get(user, 0))
            self.kept[user] = kept
            assert seats <= max(self.limit, kept), (user, seats, self.limit, kept)

    @invariant()
    def nobody_waits_for_nothing(self) -> None:
        # With no seat held, a waiting request could never be served: once
        # the line is settled it is served or refused.
        if hasattr(self, "capacity") and not self.paused and not self.held:
            assert not [r for r in self.rows.values() if r.status is Status.QUEUED]


Sale.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSale = Sale.TestCase


def test_the_model_s_store_agrees_with_its_rows() -> None:
    # The model itself can fail: a seat taken twice is caught.
    sale = Sale()
    sale.open_sale(capacity=2, limit=2, holds=False)
    sale.a_batch([("ann", 2, "")], redeliver=0)
    broken = replace(next(iter(sale.rows.values())).request, reservation_id="r1")
    try:
        sale.apply(decide(sale.seats(), {}, [broken], sale.now), new=True)
    except AssertionError:
        return
    raise AssertionError("the model let one reservation be decided twice")
