"""The decision logic: pure functions, no I/O, tested without a network.

A batch of requests for one event is decided in queue order against the
event's seats as PostgreSQL holds them inside the batch's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .domain import RejectReason, Status
from .seating import SeatMap, SeatRef, SeatState, Verdict


@dataclass(frozen=True, slots=True)
class Request:
    """One record of the requests topic, decoded."""

    reservation_id: str
    event_id: str
    user_id: str
    quantity: int
    idempotency_key: str
    accepted_at: datetime
    # Where the record sits in the requests topic; unknown (-1) until it is there.
    partition: int = -1
    offset: int = -1
    # The caller's priority tier (from its token).
    tier: str = ""
    # Its number in the event's line (0: not numbered); see queue.proto.
    sequence: int = 0
    # A seated event: best available in this section, or exactly these
    # seats; and whether it asks for accessible seats.
    section_id: str = ""
    seat_ids: tuple[str, ...] = ()
    accessible: bool = False

    @property
    def shape(self) -> str:
        """What the request asks for, as recorded to compare two uses of one
        idempotency key: the quantity (all a general-admission request
        asks), and for a seated request where, after a ``|``."""
        if not (self.section_id or self.seat_ids or self.accessible):
            return str(self.quantity)
        where = (
            f"seats={','.join(self.seat_ids)}" if self.seat_ids else f"section={self.section_id}"
        )
        return f"{self.quantity}|{where}{';accessible' if self.accessible else ''}"


@dataclass(frozen=True, slots=True)
class Seats:
    """What the decisions of one event depend on."""

    available: int
    per_user_limit: int
    queue_ttl: timedelta
    held: int = 0
    # None: winners are CONFIRMED at once; else they are HELD this long.
    hold_ttl: timedelta | None = None
    # Requests already on the event's waitlist (ahead of any new one), and
    # how many of them are in the priority lane.
    waiting: int = 0
    waiting_priority: int = 0
    # Tiers whose requests go in the priority lane.
    priority_tiers: frozenset[str] = frozenset()
    # Sale control: paused, requests wait; closed, they are refused. A
    # request accepted outside the sale window is refused too.
    paused: bool = False
    closed: bool = False
    sale_start: datetime | None = None
    sale_end: datetime | None = None

    def lane(self, request: Request) -> int:
        """1 for the priority lane, 0 for the standard one."""
        return 1 if request.tier and request.tier in self.priority_tiers else 0

    def refuses(self, request: Request) -> bool:
        """The sale is closed to ``request``."""
        return (
            self.closed
            or (self.sale_start is not None and request.accepted_at < self.sale_start)
            or (self.sale_end is not None and request.accepted_at > self.sale_end)
        )


@dataclass(frozen=True, slots=True)
class Decision:
    request: Request
    status: Status
    reject_reason: RejectReason | None = None
    # A seated event's winner: its seats.
    seats: tuple[SeatRef, ...] = ()


@dataclass(slots=True)
class BatchOutcome:
    decisions: list[Decision] = field(default_factory=list)
    # Requests whose id was already decided earlier in the same batch.
    duplicates: list[Request] = field(default_factory=list)
    seats_confirmed: int = 0
    seats_held: int = 0

    def win(self, request: Request, seats: Seats, given: tuple[SeatRef, ...] = ()) -> None:
        """``request`` gets its seats (``given``, of a seated event): held
        for payment, or sold at once."""
        if seats.hold_ttl is None:
            self.seats_confirmed += request.quantity
            self.decisions.append(Decision(request, Status.CONFIRMED, seats=given))
        else:
            self.seats_held += request.quantity
            self.decisions.append(Decision(request, Status.HELD, seats=given))

    @property
    def seats_taken(self) -> int:
        return self.seats_confirmed + self.seats_held


def decide(
    seats: Seats, user_seats: Mapping[str, int], requests: Sequence[Request], now: datetime
) -> BatchOutcome:
    """Decides ``requests`` in order, at ``now``.

    ``user_seats`` is what each user already holds, bought or waits for on
    this event (before the batch). In order of precedence, a request is:

    - REJECTED/EXPIRED_IN_QUEUE if it waited longer than the queue TTL (no
      seat touched; not while the sale is paused);
    - REJECTED/SALE_CLOSED if the sale is closed, or the request was
      accepted outside the sale window;
    - REJECTED/LIMIT_EXCEEDED if it would take its user past the per-user
      limit (refused even with seats left, and while paused);
    - waitlisted (QUEUED) while the sale is paused;
    - REJECTED/SOLD_OUT if it asks for more than the seats not sold yet
      (available and held): it could never be served;
    - a winner (HELD, or CONFIRMED without holds) if nobody waits ahead of it
      and enough seats are available;
    - else waitlisted (QUEUED): seats it needs are held by others and may
      come back. Once anyone waits, later requests wait behind them.

    The priority lane goes first: its requests are decided before the
    standard lane's, each lane in queue order, and a priority request waits
    only behind priority requests.

    Requests must not include ids already decided in earlier batches.
    """
    outcome = BatchOutcome()
    available = seats.available
    waiting = [seats.waiting - seats.waiting_priority, seats.waiting_priority]
    taken: dict[str, int] = dict(user_seats)
    seen: set[str] = set()
    # Stable: within a lane, the queue order stays.
    for request in sorted(requests, key=lambda r: -seats.lane(r)):
        lane = seats.lane(request)
        if request.reservation_id in seen:
            outcome.duplicates.append(request)
            continue
        seen.add(request.reservation_id)
        already = taken.get(request.user_id, 0)
        refused = seats.refuses(request)
        # While paused nobody is refused for time or seats (the queue TTL
        # applies again on resume, the pause counting towards it); the
        # per-user limit holds all the same, or one account could queue the
        # whole event during a pause and take it on resume.
        if not (seats.paused and not refused) and now - request.accepted_at > seats.queue_ttl:
            outcome.decisions.append(
                Decision(request, Status.REJECTED, RejectReason.EXPIRED_IN_QUEUE)
            )
        elif refused:
            outcome.decisions.append(Decision(request, Status.REJECTED, RejectReason.SALE_CLOSED))
        elif already + request.quantity > seats.per_user_limit:
            outcome.decisions.append(
                Decision(request, Status.REJECTED, RejectReason.LIMIT_EXCEEDED)
            )
        elif seats.paused:
            waiting[lane] += 1
            taken[request.user_id] = already + request.quantity
            outcome.decisions.append(Decision(request, Status.QUEUED))
        elif request.quantity > available + seats.held + outcome.seats_held:
            outcome.decisions.append(Decision(request, Status.REJECTED, RejectReason.SOLD_OUT))
        elif not sum(waiting[lane:]) and request.quantity <= available:
            available -= request.quantity
            taken[request.user_id] = already + request.quantity
            outcome.win(request, seats)
        else:
            waiting[lane] += 1
            taken[request.user_id] = already + request.quantity
            outcome.decisions.append(Decision(request, Status.QUEUED))
    return outcome


def settle_waitlist(
    seats: Seats,
    waiting: Sequence[Request],
    now: datetime,
    granted: Mapping[str, int],
) -> BatchOutcome:
    """What becomes of the waitlist (``waiting``: the priority lane first,
    each lane in queue order) with the seats as they are now; only requests
    whose state changes are in the outcome.

    ``granted`` is what each waiting user already holds or bought on this
    event. Walking the line, a user's seats are what they were granted plus
    what they wait for ahead in it; a request that would take them past the
    per-user limit is REJECTED/LIMIT_EXCEEDED, in every sale state, so a
    lowered limit refuses seats above it (and keeps those granted) and no
    waitlist, however it came to be, gives anyone more.

    The head is served while enough seats are available. The first request
    that could be served once more held seats come back stops the line:
    everyone behind it keeps waiting, in order. Whoever asks for more than
    the seats not sold yet (available and held) is REJECTED/SOLD_OUT, so
    when no seat is held any more nobody waits; whoever has waited past the
    queue TTL is REJECTED/EXPIRED_IN_QUEUE. While the sale is paused nobody
    is served or refused for time or want of seats; once it is closed,
    everyone waiting is REJECTED/SALE_CLOSED."""
    outcome = BatchOutcome()
    available = seats.available
    taken: dict[str, int] = dict(granted)
    blocked = False
    for request in waiting:
        already = taken.get(request.user_id, 0)
        refused = seats.refuses(request)
        if not (seats.paused and not refused) and now - request.accepted_at > seats.queue_ttl:
            outcome.decisions.append(
                Decision(request, Status.REJECTED, RejectReason.EXPIRED_IN_QUEUE)
            )
        elif refused:
            outcome.decisions.append(Decision(request, Status.REJECTED, RejectReason.SALE_CLOSED))
        elif already + request.quantity > seats.per_user_limit:
            outcome.decisions.append(
                Decision(request, Status.REJECTED, RejectReason.LIMIT_EXCEEDED)
            )
        elif seats.paused:
            taken[request.user_id] = already + request.quantity  # waits on
        elif request.quantity > available + seats.held + outcome.seats_held:
            outcome.decisions.append(Decision(request, Status.REJECTED, RejectReason.SOLD_OUT))
        elif not blocked and request.quantity <= available:
            available -= request.quantity
            taken[request.user_id] = already + request.quantity
            outcome.win(request, seats)
        else:
            # The first that could be served once held seats come back stops
            # the line; it and everyone behind it wait on, in order.
            blocked = True
            taken[request.user_id] = already + request.quantity
    return outcome


_REFUSALS = {
    Verdict.SEAT_TAKEN: RejectReason.SEAT_TAKEN,
    Verdict.NO_SEATS_TOGETHER: RejectReason.NO_SEATS_TOGETHER,
    Verdict.SOLD_OUT: RejectReason.SOLD_OUT,
}


def _seated(seats: Seats, plan: SeatMap, request: Request, outcome: BatchOutcome) -> Verdict | None:
    """Decides ``request`` against the seat map (which it changes when it
    wins); returns WAIT when the request is to wait, else None (decided,
    in ``outcome``). Ids the plan does not know are REJECTED/INVALID."""
    if request.seat_ids:
        if not all(plan.knows(seat) for seat in request.seat_ids):
            outcome.decisions.append(Decision(request, Status.REJECTED, RejectReason.INVALID))
            return None
        choice = plan.chosen(request.seat_ids, accessible=request.accessible)
    elif request.section_id and not plan.has_section(request.section_id):
        outcome.decisions.append(Decision(request, Status.REJECTED, RejectReason.INVALID))
        return None
    else:
        choice = plan.best_available(
            request.quantity, section_id=request.section_id or None, accessible=request.accessible
        )
    if choice.verdict is Verdict.WAIT:
        return Verdict.WAIT
    if choice.verdict is Verdict.GRANTED:
        plan.set_state(
            [s.seat_id for s in choice.seats],
            SeatState.SOLD if seats.hold_ttl is None else SeatState.HELD,
        )
        outcome.win(request, seats, choice.seats)
    else:
        outcome.decisions.append(Decision(request, Status.REJECTED, _REFUSALS[choice.verdict]))
    return None


def decide_seated(
    seats: Seats,
    plan: SeatMap,
    user_seats: Mapping[str, int],
    requests: Sequence[Request],
    now: datetime,
) -> BatchOutcome:
    """``decide`` for a seated event: the same checks in the same order
    (queue TTL, sale, per-user limit in seats, pause), then the seats from
    ``plan``, which the winners' seats are marked taken in:

    - chosen seats (``seat_ids``): granted when all are available, else
      REJECTED/SEAT_TAKEN (nobody waits on someone else's hold);
    - else the best block of ``quantity`` seats together, in ``section_id``
      or anywhere: granted if one is free; QUEUED on the waitlist when only
      held seats stand in the way (a hold may run out); else
      REJECTED/NO_SEATS_TOGETHER, or SOLD_OUT when no seat is left at all.

    Unlike general admission, a waiting request does not stop the line:
    it waits for a block that includes held seats, and free seats that
    cannot serve it go to whoever they serve, in queue order (released
    seats go to the waitlist first: ``settle_seated``). The priority lane
    is decided first, as in ``decide``."""
    outcome = BatchOutcome()
    taken: dict[str, int] = dict(user_seats)
    seen: set[str] = set()
    for request in sorted(requests, key=lambda r: -seats.lane(r)):
        if request.reservation_id in seen:
            outcome.duplicates.append(request)
            continue
        seen.add(request.reservation_id)
        already = taken.get(request.user_id, 0)
        if _refused_first(seats, request, already, now, outcome):
            continue
        if seats.paused or _seated(seats, plan, request, outcome) is Verdict.WAIT:
            outcome.decisions.append(Decision(request, Status.QUEUED))
            taken[request.user_id] = already + request.quantity
        elif outcome.decisions[-1].status is not Status.REJECTED:
            taken[request.user_id] = already + request.quantity
    return outcome


def settle_seated(
    seats: Seats,
    plan: SeatMap,
    waiting: Sequence[Request],
    now: datetime,
    granted: Mapping[str, int],
) -> BatchOutcome:
    """``settle_waitlist`` for a seated event: walking the waitlist (the
    priority lane first, each lane in queue order), each request is
    refused, served or kept as ``decide_seated`` would decide it now; one
    that must wait on holds keeps its place without stopping those behind
    it. Only requests whose state changes are in the outcome."""
    outcome = BatchOutcome()
    taken: dict[str, int] = dict(granted)
    for request in waiting:
        already = taken.get(request.user_id, 0)
        if _refused_first(seats, request, already, now, outcome):
            continue
        if (
            seats.paused
            or _seated(seats, plan, request, outcome) is Verdict.WAIT
            or outcome.decisions[-1].status is not Status.REJECTED
        ):
            taken[request.user_id] = already + request.quantity
    return outcome


def _refused_first(
    seats: Seats, request: Request, already: int, now: datetime, outcome: BatchOutcome
) -> bool:
    """The refusals that come before seats are looked at, as in ``decide``:
    queue TTL (not while paused), sale closed or outside its window, the
    per-user limit. True if ``request`` was refused (in ``outcome``)."""
    refused = seats.refuses(request)
    if not (seats.paused and not refused) and now - request.accepted_at > seats.queue_ttl:
        reason = RejectReason.EXPIRED_IN_QUEUE
    elif refused:
        reason = RejectReason.SALE_CLOSED
    elif already + request.quantity > seats.per_user_limit:
        reason = RejectReason.LIMIT_EXCEEDED
    else:
        return False
    outcome.decisions.append(Decision(request, Status.REJECTED, reason))
    return True


def reject_all(requests: Sequence[Request], reason: RejectReason) -> BatchOutcome:
    """Rejects every request once (e.g. the event does not exist)."""
    outcome = BatchOutcome()
    seen: set[str] = set()
    for request in requests:
        if request.reservation_id in seen:
            outcome.duplicates.append(request)
        else:
            seen.add(request.reservation_id)
            outcome.decisions.append(Decision(request, Status.REJECTED, reason))
    return outcome
