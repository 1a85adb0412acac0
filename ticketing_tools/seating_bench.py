"""``make bench-seating``: best available at arena size, against general
admission, in one run on this machine (BENCHMARKS.md, section 10).

Two events: general admission of 20,000 seats, and a seated arena of 50
sections x 20 rows x 20 seats (seat ids ``S01-R01-01``), both free, without
holds, 4 seats per user at most. Each is sent the same burst: 40,000 buyers
(each a user of their own) of 1 to 4 seats, the quantities drawn from one
seeded generator, appended straight to the requests topic as ``make demo
--spike`` does (records signed as a gateway signs them, built before the
clock starts). A phase is timed from the first append until the consumer
group has committed the last record (and, from PostgreSQL, until the last
decision was made); the consumers' CPU seconds over it are read from /proc.

Rounds alternate the order (general first, then seated first, ...), each on
new events, so a drift of the machine weighs on both. Before each phase the
machine is let settle (under 0.3 of a core busy), and each phase's row
shows the CPU the machine's other processes and the hypervisor's other
guests took meanwhile: on a shared machine, that is the noise.

Then every event is checked: each request decided exactly once and
nothing left waiting; the seats sold are what the rules give (for general
admission, every request that fits what is left; for the arena, the seats
the pure decision core grants the same burst, buyer by buyer); no seat sold
twice; every grant of several seats together in one row; the ledger's seat
checks hold and no record is missing.

Events are created through ``CreateEvent``; the arena's plan (about 250 kB)
is over the 64 KiB the servers take in one message, and when it is refused
for that the event is created as ``CreateEvent`` would create it (its
checks, then the reservation service's inserts) in PostgreSQL; the report
says which.

Prints a table and the ratio seated / general admission, writes the report
as JSON, and exits 1 when a check fails. Against the running ``make run``
stack (``.ticketing-stack.env``), or a stack of its own when none runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import grpc

from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing.v1 import reservation_service_pb2_grpc as rs_grpc
from ticketing_common.codecs import encode_request
from ticketing_common.decisions import Request, Seats, decide_seated
from ticketing_common.domain import Status
from ticketing_common.kafka import new_producer
from ticketing_common.record_keys import RecordKeys
from ticketing_common.runtime import settings_or_exit
from ticketing_common.seating import PlanRow, PlanSection, SeatMap

from .demo import Target, cpu_seconds
from .ledger import committed_offsets, reconcile
from .stack import LocalStack, RunningStack, StackConfig
from .stack.launcher import STACK_RECORD_KEY_ID
from .tokens import SigningKey, authorized_channel

BUYERS = 40_000
MOST_SEATS = 4
SEED = 2026
ROUNDS = 3
# The requirement: seated decided at no less than this share of the rate of
# general admission, the same burst in the same run.
TARGET_RATIO = 0.8
DRAIN_TIMEOUT_S = 900
GENERAL, SEATED = "general", "seated"
IDEM_KEY = "k"


# -- the venue and the burst (pure) -------------------------------------------


@dataclass(frozen=True)
class Arena:
    sections: int = 50
    rows: int = 20
    seats: int = 20

    @property
    def capacity(self) -> int:
        return self.sections * self.rows * self.seats

    def plan(self) -> tuple[PlanSection, ...]:
        """Sections ``S01``.., rows ``S01-R01``.. (the front first), seats
        ``S01-R01-01``.. along each row; nothing accessible, nothing blocked."""
        digits = max(2, len(str(max(self.sections, self.rows, self.seats))))

        def n(i: int) -> str:
            return str(i).zfill(digits)

        return tuple(
            PlanSection(
                f"S{n(s)}",
                tuple(
                    PlanRow(
                        f"S{n(s)}-R{n(r)}",
                        tuple(f"S{n(s)}-R{n(r)}-{n(k)}" for k in range(1, self.seats + 1)),
                    )
                    for r in range(1, self.rows + 1)
                ),
                name=f"Section {s}",
            )
            for s in range(1, self.sections + 1)
        )

    def proto(self) -> pb.SeatingPlan:
        out = pb.SeatingPlan()
        for section in self.plan():
            added = out.sections.add(section_id=section.section_id, name=section.name)
            for row in section.rows:
                added.rows.add(row_id=row.row_id, seat_ids=list(row.seat_ids))
        return out


def burst(seed: int, buyers: int, most: int = MOST_SEATS) -> list[int]:
    """Each buyer's quantity, 1 to ``most``: the same list for a seed."""
    rng = random.Random(seed)
    return [rng.randint(1, most) for _ in range(buyers)]


def buyer(n: int) -> str:
    return f"buyer-{n}"


def buyer_number(user_id: str) -> int:
    return int(user_id.rsplit("-", 1)[1])


@dataclass(frozen=True)
class Outcome:
    """What one buyer got: seats (a count, and for a seated event which),
    or the reason they were refused."""

    quantity: int = 0
    seats: tuple[str, ...] = ()
    reason: str = ""


def expected_general(quantities: Sequence[int], capacity: int) -> list[Outcome]:
    """General admission without holds: in queue order, a request that fits
    in what is left gets it; one that does not is SOLD_OUT."""
    left = capacity
    out = []
    for quantity in quantities:
        if quantity <= left:
            left -= quantity
            out.append(Outcome(quantity))
        else:
            out.append(Outcome(reason="SOLD_OUT"))
    return out


def expected_seated(quantities: Sequence[int], arena: Arena) -> list[Outcome]:
    """What the decision core grants the burst on a fresh arena, in one
    go (the consumer decides it in batches against the same map)."""
    now = datetime.now(UTC)
    requests = [
        Request(str(n), "arena", buyer(n), q, IDEM_KEY, now) for n, q in enumerate(quantities)
    ]
    seats = Seats(available=arena.capacity, per_user_limit=MOST_SEATS, queue_ttl=timedelta(hours=1))
    decided = decide_seated(seats, SeatMap(arena.plan()), {}, requests, now).decisions
    out = []
    for d in decided:
        if d.status is Status.CONFIRMED:
            out.append(Outcome(d.request.quantity, tuple(s.seat_id for s in d.seats)))
        else:
            assert d.reject_reason is not None, d
            out.append(Outcome(reason=d.reject_reason.value))
    return out


# -- checks (pure) --------------------------------------------------------------


def differences(
    expected: Sequence[Outcome], got: Mapping[int, Outcome], *, seats: bool, shown: int = 5
) -> list[str]:
    """Buyers whose outcome is not the expected one (the first ``shown``,
    then how many in all); ``seats``: compare which seats too."""
    wrong = []
    for n, want in enumerate(expected):
        have = got.get(n)
        if have is None:
            wrong.append(f"buyer {n}: no outcome")
        elif (have.quantity, have.reason) != (want.quantity, want.reason) or (
            seats and have.seats != want.seats
        ):
            wrong.append(f"buyer {n}: {have}, expected {want}")
    extra = sorted(set(got) - set(range(len(expected))))
    wrong.extend(f"buyer {n}: not sent, but decided" for n in extra)
    if len(wrong) > shown:
        return [*wrong[:shown], f"... {len(wrong)} buyers in all"]
    return wrong


def sold_twice(grants: Mapping[str, Sequence[str]]) -> list[str]:
    """Seats that two reservations (or one, twice) list."""
    counts = Counter(seat for seats in grants.values() for seat in seats)
    return sorted(seat for seat, n in counts.items() if n > 1)


def apart(
    grants: Mapping[str, Sequence[str]], positions: Mapping[str, tuple[str, str, int]]
) -> list[str]:
    """Reservations whose seats are not together: one section, one row,
    next to each other along it (``positions``: a seat's section, row and
    place in its row)."""
    out = []
    for reservation_id, seats in grants.items():
        where = sorted(positions[s] for s in seats)
        rows = {(section, row) for section, row, _ in where}
        places = [place for _, _, place in where]
        if len(rows) != 1 or places != list(range(places[0], places[0] + len(places))):
            out.append(reservation_id)
    return sorted(out)


# -- one phase against the stack -----------------------------------------------


@dataclass
class Phase:
    round: int
    kind: str
    event_id: str
    requests: int
    created_through: str = ""
    append_s: float = 0.0
    # From the first append: to the last decision's time as PostgreSQL
    # records it, and to the group's commit of the last record.
    decided_s: float = 0.0
    committed_s: float = 0.0
    consumer_cpu_s: float = 0.0
    stack_cpu_s: float = 0.0
    # What else used the machine meanwhile: its other processes, and the
    # hypervisor's other guests (stolen).
    others_cpu_s: float = 0.0
    stolen_s: float = 0.0
    settled_after_s: float = 0.0
    seats_sold: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Decisions per second, first append to last commit."""
        return self.requests / self.committed_s if self.committed_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"decisions_per_s": round(self.rate)}


@dataclass
class Bench:
    target: Target
    consumers: list[int]
    credentials: grpc.ChannelCredentials | None = None


async def create_event(bench: Bench, kind: str, arena: Arena, round_: int) -> tuple[str, str]:
    """A new event for a phase, through ``CreateEvent`` (and how it was
    created, for the report)."""
    request = rs.CreateEventRequest(name=f"{kind} bench, round {round_}", per_user_limit=MOST_SEATS)
    if kind == SEATED:
        request.seating_plan.CopyFrom(arena.proto())
    else:
        request.capacity = arena.capacity
    target = bench.target
    async with authorized_channel(
        target.endpoint, target.admin_token, bench.credentials
    ) as channel:
        reply = await rs_grpc.ReservationServiceStub(channel).CreateEvent(request, timeout=60)
    return str(reply.event.event_id), "CreateEvent"


def records(keys: RecordKeys, event_id: str, quantities: Sequence[int]) -> list[bytes]:
    """The burst's records for ``event_id``, signed, in queue order."""
    now = datetime.now(UTC)
    return [
        encode_request(
            Request(
                keys.reservation_id(buyer(n), IDEM_KEY, event_id),
                event_id,
                buyer(n),
                q,
                IDEM_KEY,
                now,
            ),
            keys,
        )
        for n, q in enumerate(quantities)
    ]


def busy_and_stolen(stat: str, ticks: int) -> tuple[float, float]:
    """From /proc/stat's first line (proc(5)): the CPU seconds all cores
    were busy since boot, and those the hypervisor gave to other machines."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in stat.split()[1:9])
    return (user + nice + system + irq + softirq) / ticks, steal / ticks


def machine_cpu() -> tuple[float, float]:
    with open("/proc/stat") as stat:
        return busy_and_stolen(stat.readline(), os.sysconf("SC_CLK_TCK"))


async def settle(*, below: float = 0.3, window_s: float = 1.0, timeout_s: float = 60) -> float:
    """Waits until the machine (the stack, and whatever else runs on it)
    uses less than ``below`` of one core over a window: what the last phase
    left behind (results fanned out to watchers) is done, and nobody else
    is busy at that moment. Returns how long that took; after
    ``timeout_s`` it goes on (a phase's table row shows what else ran)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        (before, _), at = machine_cpu(), time.monotonic()
        await asyncio.sleep(window_s)
        if (machine_cpu()[0] - before) / (time.monotonic() - at) < below:
            break
    return time.monotonic() - started


async def run_phase(
    bench: Bench, pool: asyncpg.Pool, kind: str, *, round_: int, arena: Arena, quantities: list[int]
) -> Phase:
    target = bench.target
    event_id, created = await create_event(bench, kind, arena, round_)
    values = records(target.record_keys, event_id, quantities)
    phase = Phase(round_, kind, event_id, len(values), created_through=created)
    phase.settled_after_s = round(await settle(), 1)
    producer = new_producer(target.kafka, client_id="seating-bench", linger_ms=5)
    await producer.start()
    loop = asyncio.get_running_loop()
    consumer_cpu, stack_cpu = cpu_seconds(bench.consumers), cpu_seconds(target.pids)
    (busy, stolen), own = machine_cpu(), time.process_time()
    first_append = datetime.now(UTC)
    started = loop.time()
    try:
        key = event_id.encode()
        pending = [
            await producer.send(target.kafka.requests_topic, value, key=key) for value in values
        ]
        acked = await asyncio.gather(*pending)
    finally:
        await producer.stop()
    phase.append_s = loop.time() - started
    ends: dict[int, int] = {}
    for meta in acked:
        ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
    async with asyncio.timeout(DRAIN_TIMEOUT_S):
        while True:
            done = await committed_offsets(
                target.kafka, target.kafka.consumer_group, target.kafka.requests_topic, ends
            )
            if all(done.get(p, 0) >= end for p, end in ends.items()):
                break
            await asyncio.sleep(0.05)
    phase.committed_s = loop.time() - started
    phase.consumer_cpu_s = cpu_seconds(bench.consumers) - consumer_cpu
    phase.stack_cpu_s = cpu_seconds(target.pids) - stack_cpu
    busy_after, stolen_after = machine_cpu()
    phase.others_cpu_s = busy_after - busy - phase.stack_cpu_s - (time.process_time() - own)
    phase.stolen_s = stolen_after - stolen
    last = await pool.fetchval(
        "SELECT max(decided_at) FROM reservations WHERE event_id = $1", uuid.UUID(event_id)
    )
    phase.decided_s = (last - first_append).total_seconds() if last else 0.0
    return phase


# -- checking a phase -----------------------------------------------------------


async def check_phase(
    pool: asyncpg.Pool, phase: Phase, arena: Arena, expected: Sequence[Outcome], keys: RecordKeys
) -> None:
    """Adds to ``phase.failures`` what is not as it must be (see the module's
    docstring)."""
    event_id = uuid.UUID(phase.event_id)
    rows = await pool.fetch(
        """SELECT reservation_id, user_id, quantity, status, reject_reason, seats
           FROM reservations WHERE event_id = $1""",
        event_id,
    )
    failures = phase.failures
    sent = {keys.reservation_id(buyer(n), IDEM_KEY, phase.event_id) for n in range(len(expected))}
    stored = {str(r["reservation_id"]) for r in rows}
    if len(rows) != len(expected) or stored != sent:
        failures.append(
            f"{len(rows)} reservations stored for {len(expected)} requests, "
            f"{len(sent - stored)} of them missing, {len(stored - sent)} not sent"
        )
    undecided = Counter(r["status"] for r in rows if r["status"] not in ("CONFIRMED", "REJECTED"))
    if undecided:
        failures.append(f"not decided: {dict(undecided)}")
    got: dict[int, Outcome] = {}
    grants: dict[str, list[str]] = {}
    for r in rows:
        if r["status"] == "CONFIRMED":
            listed = [seat for _, _, seat in json.loads(r["seats"] or "[]")]
            got[buyer_number(r["user_id"])] = Outcome(r["quantity"], tuple(listed))
            if listed:
                grants[str(r["reservation_id"])] = listed
        else:
            got[buyer_number(r["user_id"])] = Outcome(reason=r["reject_reason"] or "")
    phase.seats_sold = sum(o.quantity for o in got.values())
    failures.extend(differences(expected, got, seats=phase.kind == SEATED))
    event = await pool.fetchrow(
        "SELECT capacity, available, held, confirmed FROM events WHERE event_id = $1", event_id
    )
    assert event is not None
    if (event["confirmed"], event["available"], event["held"]) != (
        phase.seats_sold,
        arena.capacity - phase.seats_sold,
        0,
    ):
        failures.append(
            f"the event counts {event['confirmed']} confirmed, {event['available']} available, "
            f"{event['held']} held; its reservations {phase.seats_sold} seats"
        )
    if phase.kind == SEATED:
        await _check_seats(pool, event_id, grants, failures)


async def _check_seats(
    pool: asyncpg.Pool, event_id: uuid.UUID, grants: Mapping[str, list[str]], failures: list[str]
) -> None:
    seats = await pool.fetch(
        """SELECT seat_id, section_id, row_id, ordinal, state, reservation_id
           FROM event_seats WHERE event_id = $1""",
        event_id,
    )
    twice = sold_twice(grants)
    if twice:
        failures.append(f"{len(twice)} seats sold twice, e.g. {twice[:5]}")
    positions = {s["seat_id"]: (s["section_id"], s["row_id"], s["ordinal"]) for s in seats}
    unknown = {seat for listed in grants.values() for seat in listed} - set(positions)
    if unknown:
        failures.append(f"{len(unknown)} seats granted that the plan does not have")
        return
    scattered = apart(grants, positions)
    if scattered:
        failures.append(f"{len(scattered)} grants not together, e.g. {scattered[:3]}")
    owner = {seat: rid for rid, listed in grants.items() for seat in listed}
    wrong = [
        s["seat_id"]
        for s in seats
        if (s["state"], None if s["reservation_id"] is None else str(s["reservation_id"]))
        != (("SOLD", owner[s["seat_id"]]) if s["seat_id"] in owner else ("AVAILABLE", None))
    ]
    if wrong:
        failures.append(f"{len(wrong)} seats not as their reservations say, e.g. {wrong[:5]}")


# -- the whole run --------------------------------------------------------------


def order(round_: int) -> tuple[str, str]:
    """General first in odd rounds, seated first in even ones."""
    return (GENERAL, SEATED) if round_ % 2 else (SEATED, GENERAL)


def summary(phases: Sequence[Phase]) -> dict[str, Any]:
    """The median of each kind's rates and CPU, the ratio of the medians,
    and the ratio within each round."""
    by_kind = {kind: [p for p in phases if p.kind == kind] for kind in (GENERAL, SEATED)}
    median = {
        kind: {
            "decisions_per_s": statistics.median(p.rate for p in runs),
            "committed_s": statistics.median(p.committed_s for p in runs),
            "consumer_cpu_s": statistics.median(p.consumer_cpu_s for p in runs),
            "consumer_cpu_ms_per_decision": statistics.median(
                1000 * p.consumer_cpu_s / p.requests for p in runs
            ),
        }
        for kind, runs in by_kind.items()
        if runs
    }
    rounds = sorted({p.round for p in phases})
    per_round = {}
    for r in rounds:
        rates = {p.kind: p.rate for p in phases if p.round == r}
        if rates.get(GENERAL) and SEATED in rates:
            per_round[r] = rates[SEATED] / rates[GENERAL]
    ratio = (
        median[SEATED]["decisions_per_s"] / median[GENERAL]["decisions_per_s"]
        if len(median) == 2 and median[GENERAL]["decisions_per_s"]
        else None
    )
    return {"median": median, "ratio_by_round": per_round, "ratio": ratio}


def table(phases: Sequence[Phase], totals: Mapping[str, Any]) -> str:
    header = (
        f"{'round':>6}  {'event':<8}  {'append s':>8}  {'decided s':>9}  {'committed s':>11}  "
        f"{'decisions/s':>11}  {'consumer CPU s':>14}  {'CPU ms/decision':>15}  "
        f"{'stack CPU s':>11}  {'others CPU s':>12}  {'stolen s':>8}  {'seats sold':>10}"
    )
    lines = [header]
    for p in phases:
        lines.append(
            f"{p.round:>6}  {p.kind:<8}  {p.append_s:>8.2f}  {p.decided_s:>9.2f}  "
            f"{p.committed_s:>11.2f}  {p.rate:>11,.0f}  {p.consumer_cpu_s:>14.2f}  "
            f"{1000 * p.consumer_cpu_s / p.requests:>15.3f}  {p.stack_cpu_s:>11.2f}  "
            f"{p.others_cpu_s:>12.2f}  {p.stolen_s:>8.2f}  {p.seats_sold:>10,}"
        )
    for kind, m in totals["median"].items():
        lines.append(
            f"{'median':>6}  {kind:<8}  {'':>8}  {'':>9}  {m['committed_s']:>11.2f}  "
            f"{m['decisions_per_s']:>11,.0f}  {m['consumer_cpu_s']:>14.2f}  "
            f"{m['consumer_cpu_ms_per_decision']:>15.3f}"
        )
    by_round = ", ".join(f"round {r}: {v:.2f}" for r, v in totals["ratio_by_round"].items())
    ratio = totals["ratio"]
    if ratio is not None:
        verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        lines.append(
            f"\nseated / general admission (medians): {ratio:.2f}  "
            f"(target >= {TARGET_RATIO}: {verdict}); by round: {by_round}"
        )
    return "\n".join(lines)


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))


async def run(
    bench: Bench, *, arena: Arena, buyers: int, seed: int, rounds: int, out_dir: Path
) -> int:
    quantities = burst(seed, buyers)
    print(
        f"{buyers:,} buyers of 1-{MOST_SEATS} seats (seed {seed}, {sum(quantities):,} seats "
        f"asked) on {arena.capacity:,} seats: general admission and {arena.sections} sections "
        f"x {arena.rows} rows x {arena.seats} seats, {rounds} rounds",
        flush=True,
    )
    expected = {
        GENERAL: expected_general(quantities, arena.capacity),
        SEATED: expected_seated(quantities, arena),
    }
    phases: list[Phase] = []
    pool = await asyncpg.create_pool(bench.target.postgres_dsn, min_size=1, max_size=2)
    try:
        for round_ in range(1, rounds + 1):
            for kind in order(round_):
                phase = await run_phase(
                    bench, pool, kind, round_=round_, arena=arena, quantities=quantities
                )
                print(
                    f"  round {round_} {kind}: {phase.rate:,.0f} decisions/s "
                    f"({phase.committed_s:.2f} s), consumers {phase.consumer_cpu_s:.2f} CPU s",
                    flush=True,
                )
                phases.append(phase)
        print("checking every event...", flush=True)
        for phase in phases:
            await check_phase(pool, phase, arena, expected[phase.kind], bench.target.record_keys)
        ledger = await reconcile(bench.target.kafka, pool)
    finally:
        await pool.close()
    ours = {p.event_id for p in phases}
    seat_checks = {c.event_id: c for c in ledger.seats if c.event_id in ours}
    for phase in phases:
        check = seat_checks.get(phase.event_id)
        if check is None or not check.ok:
            phase.failures.append(f"the ledger's seat check: {check}")
        missing = [e for e in ledger.missing if e.event_id == phase.event_id]
        if missing:
            phase.failures.append(f"the ledger misses {len(missing)} records")
    totals = summary(phases)
    failures = [f"round {p.round} {p.kind}: {f}" for p in phases for f in p.failures]
    report = {
        "arena": asdict(arena),
        "buyers": buyers,
        "seed": seed,
        "seats_asked": sum(quantities),
        "expected_seats_sold": {k: sum(o.quantity for o in v) for k, v in expected.items()},
        "phases": [p.as_dict() for p in phases],
        "summary": totals,
        "target_ratio": TARGET_RATIO,
        "checks": {
            "decided_once_and_as_expected": not any(p.failures for p in phases),
            "ledger_seats_ok": all(c.ok for c in seat_checks.values()),
            "ledger_missing": sum(1 for e in ledger.missing if e.event_id in ours),
        },
        "failures": failures,
    }
    path = out_dir / "seating-bench.json"
    await asyncio.to_thread(write_report, path, report)
    print("\n" + table(phases, totals))
    sold = report["expected_seats_sold"]
    assert isinstance(sold, dict)
    print(
        f"\nChecks: every request decided once, as the rules give ({sold[GENERAL]:,} seats sold "
        f"of general admission, {sold[SEATED]:,} of the arena), no seat twice, every grant "
        f"together, the ledger's seat checks: "
        + ("all hold" if not failures else "FAILED: " + "; ".join(failures))
    )
    print(f"report: {path}")
    return 1 if failures else 0


# -- where the stack is ---------------------------------------------------------


def is_consumer(argv: Sequence[str]) -> bool:
    """A consumer service's command line (``python -m consumer_service``)."""
    return ("-m", "consumer_service") in itertools.pairwise(argv)


def consumer_pids(pids: Sequence[int]) -> list[int]:
    """Which of a running stack's processes are its consumers."""
    found = []
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if is_consumer([a.decode(errors="replace") for a in argv]):
            found.append(pid)
    return found


@contextlib.contextmanager
def stack_bench() -> Iterator[Bench]:
    """The running ``make run`` stack, or one of its own (as ``make demo``)."""
    running = settings_or_exit(RunningStack)
    if running.endpoint:
        if not (running.signing_key_file and running.reservation_id_secret):
            raise SystemExit(
                "the running stack's env file names no signing key or id secret: restart make run"
            )
        target = Target(
            endpoint=running.endpoint,
            postgres_dsn=running.postgres_dsn,
            kafka=running.kafka,
            pids=list(running.pids),
            key=SigningKey.load(Path(running.signing_key_file)),
            record_keys=RecordKeys.single(
                STACK_RECORD_KEY_ID, running.reservation_id_secret.encode()
            ),
        )
        credentials = (
            grpc.ssl_channel_credentials(Path(running.tls_ca_file).read_bytes())
            if running.tls_ca_file
            else None
        )
        consumers = consumer_pids(target.pids)
        if not consumers:
            raise SystemExit("the running stack's env file names no consumer process")
        yield Bench(target, consumers, credentials)
        return
    print("no running stack found (make run): starting one for the benchmark...", flush=True)
    config = settings_or_exit(StackConfig).model_copy(update={"listen_port": 0, "tls": False})
    with LocalStack(config) as stack:
        target = Target(
            stack.endpoint,
            stack.postgres_dsn,
            stack.kafka,
            [c.pid for c in stack.children if c.alive()],
            stack.signing_key,
            stack.record_keys,
        )
        yield Bench(target, [c.pid for c in stack.services["consumer_service"]])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--buyers", type=int, default=BUYERS)
    parser.add_argument("--sections", type=int, default=Arena.sections)
    parser.add_argument("--rows", type=int, default=Arena.rows, help="rows per section")
    parser.add_argument("--seats", type=int, default=Arena.seats, help="seats per row")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="each a phase of each kind")
    parser.add_argument("--seed", type=int, default=SEED, help="of the buyers' quantities")
    parser.add_argument("--out-dir", type=Path, default=Path("build/seating-bench"))
    args = parser.parse_args(argv)
    arena = Arena(args.sections, args.rows, args.seats)
    with stack_bench() as bench:
        code = asyncio.run(
            run(
                bench,
                arena=arena,
                buyers=args.buyers,
                seed=args.seed,
                rounds=args.rounds,
                out_dir=args.out_dir,
            )
        )
    raise SystemExit(code)


if __name__ == "__main__":
    main()
