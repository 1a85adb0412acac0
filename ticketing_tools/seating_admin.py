"""``ticketing-admin seating``: a seating plan made an event, and an event's seats drawn.

    ticketing-admin seating import FILE [--name NAME --per-user-limit N
                                         [--price-minor M [--currency EUR] --hold-s S]]
    ticketing-admin seating show EVENT_ID [--no-color]

``import`` reads FILE, pretix's seating plan or ours (``seating_import``).
Without ``--name`` it prints the plan in our format, a conversion that
needs no stack; the output is also the ``seating_plan`` grpcurl takes in a
CreateEventRequest. With ``--name`` it creates the event through
ReservationService.CreateEvent and prints its id, capacity and sections.
A plan that cannot be imported exits 2 with its path in the file and why;
a refused call exits 1 with its status and details (each bad field).

``show`` draws GetSeatMap: per section its counts, then a line per row,
its id then a character per seat along it (``o`` available, ``h`` held,
``x`` sold, ``#`` blocked; accessible seats in capitals), coloured on a
terminal unless ``--no-color``. A standing section has only its counts.

Both calls go to the running local stack as its administrator, with a
short-lived token minted with the stack's signing key: the endpoint, its
TLS CA and the key come from ``TICKETING_STACK_*`` (``make seating``
reads them from the file ``make run`` writes).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import cast

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing.v1 import reservation_service_pb2_grpc as rs_grpc
from ticketing_common.auth import ADMIN
from ticketing_common.config import variable
from ticketing_common.runtime import settings_or_exit

from .seating_import import Plan, PlanError, load, to_json, to_proto
from .stack import RunningStack
from .tokens import SigningKey, authorized_channel

# Every call's deadline, and the life of the token that makes it.
CALL_TIMEOUT_S = 10.0
TOKEN_TTL_S = 300.0
ADMIN_SUBJECT = "ticketing-admin"
DEFAULT_CURRENCY = "EUR"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers ``seating`` among ``ticketing-admin``'s commands."""
    seating = commands.add_parser(
        "seating", help="import a seating plan (and create its event); draw an event's seats"
    )
    actions = seating.add_subparsers(dest="action", required=True)
    importing = actions.add_parser(
        "import",
        help="read a plan (pretix's or ours): print it as ours, or with --name create its event",
    )
    importing.add_argument("file", type=Path, help="the plan, JSON")
    importing.add_argument("--name", help="create an event of this name with the plan")
    importing.add_argument(
        "--per-user-limit", type=_positive_int, help="with --name: most seats one user may hold"
    )
    importing.add_argument(
        "--price-minor",
        type=_positive_int,
        help="with --name: what a seat costs, in minor units (cents); unset: a free event",
    )
    importing.add_argument(
        "--currency",
        help=f"ISO 4217 code of --price-minor (default: the plan's, else {DEFAULT_CURRENCY})",
    )
    importing.add_argument(
        "--hold-s",
        type=_positive_seconds,
        help="with --price-minor: how long a winner's seats are held for payment, in seconds",
    )
    # The cross-option checks report through this parser, as argparse's own do.
    importing.set_defaults(seating_parser=importing)
    show = actions.add_parser("show", help="draw an event's seat map")
    show.add_argument("event_id")
    show.add_argument(
        "--no-color",
        action="store_true",
        help="no ANSI colours (there are none either when stdout is not a terminal)",
    )


def usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with ``import``'s options together, if anything."""
    if args.name is None:
        given = [
            option
            for option, value in (
                ("--per-user-limit", args.per_user_limit),
                ("--price-minor", args.price_minor),
                ("--currency", args.currency),
                ("--hold-s", args.hold_s),
            )
            if value is not None
        ]
        if given:
            return f"{', '.join(given)} only with --name (creating the event)"
        return None
    if args.per_user_limit is None:
        return "--name needs --per-user-limit"
    if args.price_minor is None:
        for option, value in (("--currency", args.currency), ("--hold-s", args.hold_s)):
            if value is not None:
                return f"{option} only with --price-minor (a priced event)"
    elif args.hold_s is None:
        return "--price-minor needs --hold-s (how long a seat waits for payment)"
    return None


def event_request(plan: Plan, args: argparse.Namespace) -> rs.CreateEventRequest:
    """The CreateEventRequest ``import --name`` sends: capacity 0, so the
    service counts the plan's places itself."""
    request = rs.CreateEventRequest(
        name=args.name, per_user_limit=args.per_user_limit, seating_plan=to_proto(plan)
    )
    if args.price_minor is not None:
        request.price.currency_code = args.currency or plan.currency or DEFAULT_CURRENCY
        request.price.amount_minor = args.price_minor
        request.hold_ttl.FromTimedelta(timedelta(seconds=args.hold_s))
    return request


def describe_event(event: pb.Event, plan: Plan) -> str:
    """What ``import --name`` prints of the event it created."""
    lines = [
        f"event {event.event_id}: {event.name!r}, capacity {event.capacity}, "
        f"per-user limit {event.per_user_limit}"
    ]
    for section in plan.sections:
        if section.standing:
            places = f"{section.capacity} standing places"
        else:
            blocked = sum(len(row.blocked) for row in section.rows)
            places = f"{section.sellable} seats in {len(section.rows)} rows"
            places += f", {blocked} blocked" if blocked else ""
        price = (
            f", price_minor {section.price_minor} {plan.currency}"
            if section.price_minor is not None
            else ""
        )
        named = f" ({section.name})" if section.name else ""
        lines.append(f"  section {section.section_id}{named}: {places}{price}")
    return "\n".join(lines)


# -- drawing -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Look:
    glyph: str
    accessible: str  # the glyph of an accessible seat
    sgr: str  # ANSI colour (Select Graphic Rendition)
    label: str


LOOKS = {
    pb.SEAT_STATE_AVAILABLE: _Look("o", "O", "32", "available"),
    pb.SEAT_STATE_HELD: _Look("h", "H", "33", "held"),
    pb.SEAT_STATE_SOLD: _Look("x", "X", "31", "sold"),
    # Never sold, accessible or not.
    pb.SEAT_STATE_BLOCKED: _Look("#", "#", "90", "blocked"),
}
# A state this build does not know (a newer server's).
_UNKNOWN = _Look("?", "?", "", "unknown")


def _paint(text: str, sgr: str, color: bool) -> str:
    return f"\x1b[{sgr}m{text}\x1b[0m" if color and sgr else text


def _look(seat: pb.SeatStatus) -> _Look:
    return LOOKS.get(seat.state, _UNKNOWN)


def _seats(seats: Iterable[pb.SeatStatus], color: bool) -> str:
    """One character per seat; with colour, one escape per run of a colour."""
    drawn = []
    for sgr, run in itertools.groupby(seats, key=lambda seat: _look(seat).sgr):
        glyphs = "".join(
            _look(seat).accessible if seat.accessible else _look(seat).glyph for seat in run
        )
        drawn.append(_paint(glyphs, sgr, color))
    return "".join(drawn)


def _counts(section: pb.SectionStatus) -> str:
    return (
        f"{section.available} available, {section.held} held, {section.sold} sold "
        f"of {section.capacity}"
    )


def legend(color: bool) -> str:
    states = "  ".join(
        f"{_paint(look.glyph, look.sgr, color)} {look.label}" for look in LOOKS.values()
    )
    capitals = " ".join(
        _paint(look.accessible, look.sgr, color)
        for look in LOOKS.values()
        if look.accessible != look.glyph
    )
    return f"{states}  {capitals} accessible"


def render(seat_map: pb.SeatMap, *, color: bool) -> str:
    """The seat map as text: per section a header with its counts, then a
    line per row (its id, then its seats in order along it); a standing
    section only its counts; then the legend. Without ``color``, no escape
    codes: the glyphs alone tell the states apart."""
    rows: dict[str, dict[str, list[pb.SeatStatus]]] = {}
    for seat in seat_map.seats:
        rows.setdefault(seat.section_id, {}).setdefault(seat.row_id, []).append(seat)
    lines = [f"event {seat_map.event_id}, seat map version {seat_map.version}"]
    for section in seat_map.sections:
        section_rows = rows.get(section.section_id)
        if not section_rows:
            lines.append(f"section {section.section_id} (standing): {_counts(section)}")
            continue
        blocked = sum(
            seat.state == pb.SEAT_STATE_BLOCKED for seats in section_rows.values() for seat in seats
        )
        extra = f", {blocked} blocked" if blocked else ""
        lines.append(f"section {section.section_id}: {_counts(section)}{extra}")
        width = max(len(row_id) for row_id in section_rows)
        for row_id, seats in section_rows.items():
            lines.append(f"  {row_id:<{width}}  {_seats(seats, color)}")
    lines.append(legend(color))
    return "\n".join(lines) + "\n"


# -- calls -------------------------------------------------------------------


def describe_rpc_error(error: grpc.aio.AioRpcError) -> str:
    """The status, its message, and its ``google.rpc`` details: a line per
    bad field, the reason, when to retry."""
    lines = [f"{error.code().name}: {error.details() or '(no message)'}"]
    try:
        # A failed call's error answers code(), details() and
        # trailing_metadata() as a finished grpc.Call does.
        status = rpc_status.from_call(cast(grpc.Call, error))
    except ValueError:  # a proxy changed the code or message: the details do not apply
        status = None
    for packed in status.details if status is not None else ():
        if packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            packed.Unpack(bad)
            lines.extend(f"  {v.field}: {v.description}" for v in bad.field_violations)
        elif packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            packed.Unpack(info)
            lines.append(f"  reason: {info.reason}")
        elif packed.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            packed.Unpack(retry)
            lines.append(f"  retry after {retry.retry_delay.ToTimedelta().total_seconds():g} s")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Connection:
    """The running stack, reached as its administrator."""

    endpoint: str
    key: SigningKey
    credentials: grpc.ChannelCredentials | None = None

    def channel(self) -> grpc.aio.Channel:
        token = self.key.mint(ADMIN_SUBJECT, roles=(ADMIN,), ttl_s=TOKEN_TTL_S)
        return authorized_channel(self.endpoint, token, self.credentials)


def connection(stack: RunningStack) -> Connection | None:
    """The stack ``stack`` names; None (and why, on stderr) when it names none."""
    if not stack.endpoint or not stack.signing_key_file:
        print(
            f"no running stack: set {variable(RunningStack, 'endpoint')} and "
            f"{variable(RunningStack, 'signing_key_file')}, or run `make seating ARGS=...` "
            "beside `make run`, which writes them to .ticketing-stack.env",
            file=sys.stderr,
        )
        return None
    credentials = None
    if stack.tls_ca_file:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=Path(stack.tls_ca_file).read_bytes()
        )
    return Connection(stack.endpoint, SigningKey.load(Path(stack.signing_key_file)), credentials)


async def create_event(target: Connection, request: rs.CreateEventRequest, plan: Plan) -> int:
    async with target.channel() as channel:
        try:
            reply = await rs_grpc.ReservationServiceStub(channel).CreateEvent(
                request, timeout=CALL_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as error:
            print(f"CreateEvent refused: {describe_rpc_error(error)}", file=sys.stderr)
            return 1
    print(describe_event(reply.event, plan))
    return 0


async def show_seat_map(target: Connection, event_id: str, *, color: bool) -> int:
    async with target.channel() as channel:
        try:
            reply = await rs_grpc.ReservationServiceStub(channel).GetSeatMap(
                rs.GetSeatMapRequest(event_id=event_id), timeout=CALL_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as error:
            print(f"GetSeatMap refused: {describe_rpc_error(error)}", file=sys.stderr)
            return 1
    sys.stdout.write(render(reply.seat_map, color=color))
    return 0


def main(args: argparse.Namespace) -> int:
    """``seating``'s exit code: 0 done, 1 a call refused, 2 a bad plan or usage."""
    return _show(args) if args.action == "show" else _import(args)


def _show(args: argparse.Namespace) -> int:
    target = connection(settings_or_exit(RunningStack))
    if target is None:
        return 2
    color = not args.no_color and sys.stdout.isatty()
    return asyncio.run(show_seat_map(target, args.event_id, color=color))


def _import(args: argparse.Namespace) -> int:
    problem = usage_problem(args)
    if problem is not None:
        args.seating_parser.error(problem)
    try:
        plan = load(args.file.read_bytes())
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    except PlanError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2
    if args.name is None:
        print(json.dumps(to_json(plan), indent=2))
        return 0
    target = connection(settings_or_exit(RunningStack))
    if target is None:
        return 2
    return asyncio.run(create_event(target, event_request(plan, args), plan))
