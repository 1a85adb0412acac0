"""``ticketing-admin seating``: a plan file converted or made an event, and
an event's seats drawn in the terminal; a bad plan exits 2 naming where it
is wrong, a refused call 1 with its status and details."""

# The tables of command lines keep one case a line.
# ruff: noqa: E501

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from ticketing.v1 import gateway_service_pb2 as gs
from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_tools import seating_admin
from ticketing_tools.admin import parser
from ticketing_tools.seating_admin import (
    describe_event,
    describe_rpc_error,
    event_request,
    legend,
    render,
    usage_problem,
)
from ticketing_tools.seating_import import from_json, load, to_json
from ticketing_tools.stack import LocalStack

from ..helpers import (
    ADMIN_TOKEN,
    CONFIRMED,
    Gateway,
    Notifier,
    Reservations,
    as_user,
    get_event,
    watch_until,
)

GRPCURL = Path(sys.executable).parent / "grpcurl"

AVAILABLE, HELD, SOLD, BLOCKED = (
    pb.SEAT_STATE_AVAILABLE,
    pb.SEAT_STATE_HELD,
    pb.SEAT_STATE_SOLD,
    pb.SEAT_STATE_BLOCKED,
)


def seat(
    row: str, seat_id: str, state: pb.SeatState.ValueType, accessible: bool = False
) -> pb.SeatStatus:
    return pb.SeatStatus(
        section_id="A", row_id=row, seat_id=seat_id, state=state, accessible=accessible
    )


def small_map() -> pb.SeatMap:
    """Two rows of section A (ids of unequal length), every state, two
    accessible seats, then a standing section."""
    return pb.SeatMap(
        event_id="e1",
        version=7,
        seats=[
            seat("1", "a1", AVAILABLE),
            seat("1", "a2", AVAILABLE),
            seat("1", "a3", HELD, accessible=True),
            seat("1", "a4", SOLD),
            seat("1", "a5", SOLD),
            seat("1", "a6", BLOCKED),
            seat("10", "b1", AVAILABLE, accessible=True),
            seat("10", "b2", AVAILABLE),
        ],
        sections=[
            pb.SectionStatus(section_id="A", capacity=7, available=3, held=1, sold=2),
            pb.SectionStatus(section_id="GA", capacity=50, available=48, held=0, sold=2),
        ],
    )


def test_the_map_is_drawn_a_line_per_row_a_character_per_seat() -> None:
    assert render(small_map(), color=False) == (
        "event e1, seat map version 7\n"
        "section A: 3 available, 1 held, 2 sold of 7, 1 blocked\n"
        "  1   ooHxx#\n"
        "  10  Oo\n"
        "section GA (standing): 48 available, 0 held, 2 sold of 50\n"
        "o available  h held  x sold  # blocked  O H X accessible\n"
    )


def test_in_colour_each_run_of_a_state_is_painted_once() -> None:
    green, yellow, red, grey, reset = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[90m", "\x1b[0m"
    assert render(small_map(), color=True) == (
        "event e1, seat map version 7\n"
        "section A: 3 available, 1 held, 2 sold of 7, 1 blocked\n"
        f"  1   {green}oo{reset}{yellow}H{reset}{red}xx{reset}{grey}#{reset}\n"
        f"  10  {green}Oo{reset}\n"
        "section GA (standing): 48 available, 0 held, 2 sold of 50\n"
        f"{green}o{reset} available  {yellow}h{reset} held  {red}x{reset} sold  "
        f"{grey}#{reset} blocked  {green}O{reset} {yellow}H{reset} {red}X{reset} accessible\n"
    )
    # Without colour, not one escape.
    assert "\x1b" not in render(small_map(), color=False) + legend(False)


def test_a_state_this_build_does_not_know_is_drawn_as_a_question_mark() -> None:
    seat_map = pb.SeatMap(
        event_id="e1",
        seats=[seat("1", "a1", pb.SeatState.ValueType(99))],
        sections=[pb.SectionStatus(section_id="A", capacity=1)],
    )
    assert render(seat_map, color=True).splitlines()[2] == "  1  ?"


# -- the command line --------------------------------------------------------

PLAN = {
    "sections": [
        {
            "sectionId": "A",
            "name": "Stalls",
            "rows": [{"rowId": "A-1", "seatIds": ["A-1-1", "A-1-2"], "blockedSeatIds": ["A-1-2"]}],
        },
        {"sectionId": "GA", "capacity": 20},
    ]
}


def args(*argv: str) -> Any:
    return parser().parse_args(["seating", *argv])


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["import", "p.json"], None),
        (["import", "p.json", "--name", "Hall", "--per-user-limit", "2"], None),
        (
            ["import", "p.json", "--name", "H", "--per-user-limit", "2", "--price-minor", "500", "--hold-s", "60"],
            None,
        ),
        (["import", "p.json", "--per-user-limit", "2", "--hold-s", "5"], "--per-user-limit, --hold-s only with --name (creating the event)"),
        (["import", "p.json", "--name", "Hall"], "--name needs --per-user-limit"),
        (["import", "p.json", "--name", "H", "--per-user-limit", "2", "--currency", "EUR"], "--currency only with --price-minor (a priced event)"),
        (["import", "p.json", "--name", "H", "--per-user-limit", "2", "--hold-s", "9"], "--hold-s only with --price-minor (a priced event)"),
        (["import", "p.json", "--name", "H", "--per-user-limit", "2", "--price-minor", "500"], "--price-minor needs --hold-s (how long a seat waits for payment)"),
    ],
)  # fmt: skip
def test_import_options_go_together(argv: list[str], problem: str | None) -> None:
    assert usage_problem(args(*argv)) == problem


def test_a_bad_combination_exits_2_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        seating_admin.main(args("import", "p.json", "--name", "Hall"))
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ticketing-admin seating import")
    assert err.endswith("ticketing-admin seating import: error: --name needs --per-user-limit\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["import", "p.json", "--name", "H", "--per-user-limit", "0"], "argument --per-user-limit: must be at least 1, got 0"),
        (["import", "p.json", "--price-minor", "ten"], "argument --price-minor: not an integer: 'ten'"),
        (["import", "p.json", "--hold-s", "0"], "argument --hold-s: must be above 0, got 0"),
        (["import", "p.json", "--hold-s", "nan"], "argument --hold-s: must be above 0, got nan"),
        (["show"], "the following arguments are required: event_id"),
        (["draw", "x"], "argument action: invalid choice: 'draw'"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_by_the_parser(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        args(*argv)
    assert exited.value.code == 2
    # (How argparse lists the choices after it varies with Python's version.)
    assert f"error: {message}" in capsys.readouterr().err.splitlines()[-1]


def test_show_takes_no_color() -> None:
    parsed = args("show", "e1", "--no-color")
    assert (parsed.action, parsed.event_id, parsed.no_color) == ("show", "e1", True)
    assert args("show", "e1").no_color is False


def test_import_without_a_name_prints_the_plan_as_ours(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(pretix_plan()))
    assert seating_admin.main(args("import", str(plan_file))) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == to_json(load(plan_file.read_text()))
    assert from_json(printed) == load(plan_file.read_text())


def test_a_bad_plan_exits_2_naming_the_file_and_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan_file = tmp_path / "plan.json"
    broken = json.loads(json.dumps(PLAN))
    broken["sections"][0]["rows"][0]["blockedSeatIds"] = ["A-1-9"]
    plan_file.write_text(json.dumps(broken))
    assert seating_admin.main(args("import", str(plan_file))) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"{plan_file}: sections[0].rows[0].blockedSeatIds[0]: 'A-1-9' is not a seat of row 'A-1'\n"
    )
    assert seating_admin.main(args("import", str(tmp_path / "missing.json"))) == 2
    assert capsys.readouterr().err == (
        f"cannot read {tmp_path / 'missing.json'}: No such file or directory\n"
    )


def test_without_a_running_stack_the_calls_say_what_to_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], settings_env: pytest.MonkeyPatch
) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(PLAN))
    assert seating_admin.main(args("show", "e1")) == 2
    assert (
        seating_admin.main(args("import", str(plan_file), "--name", "H", "--per-user-limit", "1"))
        == 2
    )
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == 2 * [
        "no running stack: set TICKETING_STACK_ENDPOINT and TICKETING_STACK_SIGNING_KEY_FILE, "
        "or run `make seating ARGS=...` beside `make run`, which writes them to "
        ".ticketing-stack.env"
    ]


def test_the_event_request_carries_the_plan_and_the_price() -> None:
    plan = from_json(PLAN)
    free = event_request(plan, args("import", "p.json", "--name", "Hall", "--per-user-limit", "2"))
    assert (free.name, free.per_user_limit, free.capacity) == ("Hall", 2, 0)
    assert [s.section_id for s in free.seating_plan.sections] == ["A", "GA"]
    assert not free.HasField("price") and not free.HasField("hold_ttl")
    priced = event_request(
        plan,
        args(
            "import", "p.json", "--name", "Hall", "--per-user-limit", "2",
            "--price-minor", "4500", "--hold-s", "90",
        ),
    )  # fmt: skip
    assert (priced.price.currency_code, priced.price.amount_minor) == ("EUR", 4500)
    assert priced.hold_ttl.ToSeconds() == 90
    # The plan's own currency, unless told.
    in_chf = json.loads(json.dumps(PLAN))
    in_chf["sections"][1]["price"] = {"currencyCode": "CHF", "amountMinor": 900}
    argv = [
        "import",
        "p",
        "--name",
        "H",
        "--per-user-limit",
        "1",
        "--price-minor",
        "5",
        "--hold-s",
        "1",
    ]
    assert event_request(from_json(in_chf), args(*argv)).price.currency_code == "CHF"
    told = event_request(from_json(in_chf), args(*argv, "--currency", "GBP"))
    assert told.price.currency_code == "GBP"


def test_the_created_event_is_described_with_its_sections() -> None:
    plan = json.loads(json.dumps(PLAN))
    plan["sections"][1]["price"] = {"currencyCode": "EUR", "amountMinor": 900}
    event = pb.Event(event_id="e1", name="Hall", capacity=21, per_user_limit=2)
    assert describe_event(event, from_json(plan)) == (
        "event e1: 'Hall', capacity 21, per-user limit 2\n"
        "  section A (Stalls): 1 seats in 1 rows, 1 blocked\n"
        "  section GA: 20 standing places, price_minor 900 EUR"
    )


def rpc_error(code: grpc.StatusCode, message: str, *details: Any) -> grpc.aio.AioRpcError:
    packed = []
    for detail in details:
        wrapper = any_pb2.Any()
        wrapper.Pack(detail)
        packed.append(wrapper)
    status = status_pb2.Status(code=code.value[0], message=message, details=packed)
    trailers = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, message, None)


def test_a_refusal_is_described_with_every_bad_field() -> None:
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field="seating_plan.sections[0].name", description="too long"
            ),
            error_details_pb2.BadRequest.FieldViolation(field="per_user_limit", description="0"),
        ]
    )
    info = error_details_pb2.ErrorInfo(reason="INVALID_REQUEST", domain="ticketing.v1")
    error = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "bad request", info, bad)
    assert describe_rpc_error(error) == (
        "INVALID_ARGUMENT: bad request\n"
        "  reason: INVALID_REQUEST\n"
        "  seating_plan.sections[0].name: too long\n"
        "  per_user_limit: 0"
    )
    bare = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "", None
    )
    assert describe_rpc_error(bare) == "UNAVAILABLE: (no message)"


# -- against the stack -------------------------------------------------------


def seat_of(guid: str, x: float) -> dict[str, Any]:
    return {
        "seat_guid": guid,
        "seat_number": guid[-1],
        "position": {"x": x, "y": 0},
        "category": "Standard",
    }


def pretix_plan() -> dict[str, Any]:
    """A small plan in pretix's shape: a front zone of two rows, a box of
    one row, and a zone that only draws the stage."""
    return {
        "name": "Kleiner Saal",
        "categories": [{"name": "Standard"}],
        "zones": [
            {"name": "Bühne", "position": {"x": 0, "y": 0}, "rows": [], "areas": []},
            {
                "name": "Parkett",
                "zone_id": "parkett",
                "position": {"x": 0, "y": 50},
                "rows": [
                    {"row_number": "1", "seats": [seat_of("p1-3", 60), seat_of("p1-1", 0), seat_of("p1-2", 30)]},
                    {"row_number": "2", "seats": [seat_of("p2-1", 0), seat_of("p2-2", 30)]},
                ],
            },
            {
                "name": "Loge",
                "position": {"x": 200, "y": 0},
                "rows": [{"row_number": "1", "seats": [seat_of("l1-1", 0)]}],
            },
        ],
    }  # fmt: skip


async def run_admin(*argv: str, env: dict[str, str]) -> tuple[int, str, str]:
    """``ticketing-admin`` with ``argv`` as a process of its own, with no
    terminal, in an environment of ``env`` and no other TICKETING_* variable."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ticketing_tools.admin",
        *argv,
        env={**clean, **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


async def test_a_pretix_plan_becomes_an_event_whose_seats_show_draws(
    stack: LocalStack,
    reservations: Reservations,
    gateway: Gateway,
    notifier: Notifier,
    tmp_path: Path,
) -> None:
    plan_file = tmp_path / "kleiner-saal.json"
    plan_file.write_text(json.dumps(pretix_plan()))
    env = stack.connection_env()

    code, out, err = await run_admin(
        "seating", "import", str(plan_file), "--name", "Kleiner Saal", "--per-user-limit", "2",
        env=env,
    )  # fmt: skip
    assert (code, err) == (0, "")
    found = re.match(r"event (\S+): 'Kleiner Saal', capacity 6, per-user limit 2\n", out)
    assert found, out
    event_id = found.group(1)
    assert out.splitlines()[1:] == [
        "  section parkett (Parkett): 5 seats in 2 rows",
        "  section Loge (Loge): 1 seats in 1 rows",
    ]
    event = await get_event(reservations, event_id)
    assert (event.name, event.seated, event.capacity, event.available) == (
        "Kleiner Saal",
        True,
        6,
        6,
    )
    reply = await reservations.GetSeatMap(rs.GetSeatMapRequest(event_id=event_id), timeout=10)
    assert [(s.section_id, s.capacity) for s in reply.seat_map.sections] == [
        ("parkett", 5),
        ("Loge", 1),
    ]

    # Two seats sold (a free event: confirmed at once), then drawn.
    reserved = await gateway.Reserve(
        gs.ReserveRequest(event_id=event_id, quantity=2, idempotency_key=uuid.uuid4().hex),
        timeout=30,
        metadata=as_user("seating-fan"),
    )
    decided = await watch_until(
        notifier, reserved.reservation_id, lambda r: r.status == CONFIRMED, timeout=60
    )
    assert decided[-1].status == CONFIRMED
    sold = {s.seat_id for s in decided[-1].seats}
    assert len(sold) == 2 and sold <= {"p1-1", "p1-2", "p1-3"}
    front = "".join("x" if guid in sold else "o" for guid in ("p1-1", "p1-2", "p1-3"))

    code, out, err = await run_admin("seating", "show", event_id, env=env)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert re.fullmatch(rf"event {event_id}, seat map version \d+", lines[0])
    assert lines[1:] == [
        "section parkett: 3 available, 0 held, 2 sold of 5",
        f"  parkett:1  {front}",
        "  parkett:2  oo",
        "section Loge: 1 available, 0 held, 0 sold of 1",
        "  Loge:1  o",
        "o available  h held  x sold  # blocked  O H X accessible",
    ]


async def test_refused_calls_exit_1_with_their_status_and_details(
    stack: LocalStack, tmp_path: Path
) -> None:
    env = stack.connection_env()
    unknown = str(uuid.uuid4())
    code, out, err = await run_admin("seating", "show", unknown, env=env)
    assert (code, out) == (1, "")
    assert err == (
        f"GetSeatMap refused: NOT_FOUND: event {unknown} not found\n  reason: EVENT_NOT_FOUND\n"
    )
    # A priced section in a free event: the service names the field.
    priced = json.loads(json.dumps(PLAN))
    priced["sections"][1]["price"] = {"currencyCode": "EUR", "amountMinor": 900}
    plan_file = tmp_path / "priced.json"
    plan_file.write_text(json.dumps(priced))
    code, out, err = await run_admin(
        "seating", "import", str(plan_file), "--name", "Free", "--per-user-limit", "1", env=env
    )
    assert (code, out) == (1, "")
    assert err.startswith("CreateEvent refused: INVALID_ARGUMENT: ")
    assert (
        "  seating_plan.sections[1].price: a free event's sections have no price "
        "(set the event's price)\n"
    ) in err


async def test_the_converted_plan_is_the_seating_plan_grpcurl_takes(
    stack: LocalStack, reservations: Reservations, tmp_path: Path
) -> None:
    """The conversion needs no stack; its output, put in a CreateEventRequest
    as it is, makes the same seats through grpcurl (Go's JSON parser)."""
    plan_file = tmp_path / "kleiner-saal.json"
    plan_file.write_text(json.dumps(pretix_plan()))
    code, converted, err = await run_admin("seating", "import", str(plan_file), env={})
    assert (code, err) == (0, "")
    body = {"name": "grpcurl hall", "per_user_limit": 2, "seating_plan": json.loads(converted)}
    created = await asyncio.to_thread(
        subprocess.run,
        [
            str(GRPCURL), "-plaintext", "-H", f"authorization: Bearer {ADMIN_TOKEN}",
            "-d", json.dumps(body), stack.endpoint, "ticketing.v1.ReservationService/CreateEvent",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    event = json.loads(created.stdout)["event"]
    assert (event["capacity"], event["seated"]) == (6, True)
    reply = await reservations.GetSeatMap(
        rs.GetSeatMapRequest(event_id=event["event_id"]), timeout=10
    )
    assert [(s.section_id, s.row_id, s.seat_id) for s in reply.seat_map.seats] == [
        ("parkett", "parkett:1", "p1-1"),
        ("parkett", "parkett:1", "p1-2"),
        ("parkett", "parkett:1", "p1-3"),
        ("parkett", "parkett:2", "p2-1"),
        ("parkett", "parkett:2", "p2-2"),
        ("Loge", "Loge:1", "l1-1"),
    ]
