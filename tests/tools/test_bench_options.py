"""ticketing-bench: flags, option validation, methods and request payloads."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ticketing.v1 import gateway_service_pb2, notifier_service_pb2
from ticketing_tools.bench import cli, report
from ticketing_tools.bench.engine import ProcessPlan
from ticketing_tools.bench.methods import CallName, MethodError, MethodSpec, builtin_file_set
from ticketing_tools.bench.options import Options, OptionsError
from ticketing_tools.bench.payloads import MetadataFactory, PayloadError, PayloadFactory, check
from ticketing_tools.bench.templates import MethodNames, new_context

HOST = "127.0.0.1:50051"
CALL = "ticketing.v1.GatewayService.Reserve"
NAMES = MethodNames(fully_qualified_name=CALL, method_name="Reserve")


def parse(*flags: str) -> Options:
    return cli.options_from(cli.parser().parse_args([*flags, HOST]))


def make(**changes: Any) -> Options:
    return Options(**{"host": HOST, "call": CALL, **changes})


def test_ghz_flags_map_to_options() -> None:
    options = parse(
        "--insecure",
        "--call",
        CALL,
        "-d",
        '{"user_id":"u{{.RequestNumber}}"}',
        "-n",
        "500",
        "-c",
        "20",
        "--connections",
        "4",
        "--rps",
        "100",
        "-t",
        "1500ms",
        "-O",
        "pretty",
        "--skipFirst",
        "10",
        "--tags",
        '{"env":"ci"}',
    )
    assert (options.total, options.concurrency, options.connections, options.rps) == (
        500,
        20,
        4,
        100,
    )
    assert options.timeout_ns == 1_500_000_000
    assert options.format == "pretty"
    assert options.skip_first == 10
    assert options.tags == (("env", "ci"),)
    assert not options.open_loop  # as in ghz, --rps limits the workers; only --async opens the loop
    assert options.keep_details


@pytest.mark.parametrize(
    ("flags", "open_loop", "rate"),
    [
        (["--rps", "100"], False, 100),
        (["--load-schedule", "line", "--load-start", "10", "--load-step", "5"], False, 10),
        (["--async"], True, math.inf),
        (["--async", "--rps", "100"], True, 100),
        (["--arrival-rate", "100"], True, 100),
        (
            [
                "--async",
                "--load-schedule",
                "step",
                "--load-start",
                "50",
                "--load-step",
                "10",
                "--load-step-duration",
                "5s",
            ],
            True,
            50,
        ),
    ],
)
def test_only_async_or_an_arrival_rate_opens_the_loop(
    flags: list[str], open_loop: bool, rate: float
) -> None:
    options = parse("--call", CALL, *flags)
    assert options.open_loop is open_loop
    assert options.load().rate(0) == rate


def test_an_arrival_rate_is_reported_as_ghz_would_run_it() -> None:
    arrival = report.ghz_options(parse("--call", CALL, "--arrival-rate", "100"))
    assert (arrival["rps"], arrival["async"]) == (100, True)
    assert report.ghz_options(parse("--call", CALL, "--async", "--rps", "100")) == arrival
    limited = report.ghz_options(parse("--call", CALL, "--rps", "100"))
    assert limited["rps"] == 100
    assert "async" not in limited  # omitempty, like ghz


def test_defaults_are_ghz_defaults() -> None:
    options = parse("--call", CALL)
    assert options.total == 200
    assert options.concurrency == 50
    assert options.connections == 1
    assert options.timeout_ns == 20 * 10**9
    assert options.format == "summary"
    assert not options.open_loop
    assert not options.keep_details
    assert options.bounded_total == 200


def test_a_duration_ignores_the_total() -> None:
    options = parse("--call", CALL, "-z", "2s", "-n", "10")
    assert options.bounded_total is None
    assert options.run_ns == 2 * 10**9


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"total": 0}, "-n/--total must be at least 1"),
        ({"concurrency": 0}, "-c/--concurrency must be at least 1"),
        ({"concurrency": 2, "connections": 3}, "cannot be greater than -c/--concurrency"),
        ({"rps": -1}, "--rps must be at least 0"),
        ({"arrival_rate": -1}, "--arrival-rate must be at least 0"),
        ({"arrival_rate": 10, "rps": 10}, "--arrival-rate and --rps exclude each other"),
        (
            {"arrival_rate": 10, "load_schedule": "line", "load_start": 10, "load_step": 5},
            "use --async with --load-schedule line",
        ),
        ({"timeout_ns": -1}, "-t/--timeout must be at least 0"),
        ({"duration_ns": 1, "max_duration_ns": 1}, "exclude each other"),
        ({"format": "html"}, "-O/--format must be one of"),
        ({"skip_first": 300}, "cannot skip more requests"),
        ({"load_schedule": "wave"}, "--load-schedule must be one of"),
        ({"load_start": 5}, "need --load-schedule step or line"),
        ({"load_schedule": "step", "load_start": 10}, "--load-step must not be 0"),
        (
            {"load_schedule": "step", "load_start": 10, "load_step": 5},
            "--load-step-duration is required",
        ),
        (
            {"load_schedule": "line", "load_start": 10, "load_step": 5, "load_end": 10},
            "cannot equal --load-end",
        ),
        (
            {"load_schedule": "line", "load_start": 10, "load_step": -5, "load_end": 50},
            "towards --load-end",
        ),
        ({"load_schedule": "line", "load_start": 10, "load_step": 5, "rps": 7}, "--rps is the"),
        ({"concurrency_schedule": "step", "concurrency_start": 5}, "--concurrency-step-duration"),
        ({"cpus": 0}, "--cpus must be at least 1"),
        ({"cpus": 8, "concurrency": 4}, "cannot exceed the number of workers"),
        ({"cert": "client.pem"}, "--cert and --key go together"),
        ({"format": "csv", "skip_details": True}, "csv lists the details"),
    ],
)
def test_bad_options_are_refused_naming_the_flag(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionsError, match=message):
        make(**changes)


def test_the_cli_exits_2_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--call", CALL, "-c", "2", "--connections", "3", HOST])
    assert exited.value.code == 2
    assert (
        "--connections (3) cannot be greater than -c/--concurrency (2)" in capsys.readouterr().err
    )


def test_a_bad_duration_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--call", CALL, "-z", "10", HOST])
    assert exited.value.code == 2
    assert "missing unit" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text", [CALL, "ticketing.v1.GatewayService/Reserve", "/ticketing.v1.GatewayService/Reserve"]
)
def test_both_ghz_call_spellings_name_the_same_method(text: str) -> None:
    name = CallName.parse(text)
    assert name == CallName("ticketing.v1.GatewayService", "Reserve")
    assert name.path == "/ticketing.v1.GatewayService/Reserve"


@pytest.mark.parametrize("text", ["Reserve", "GatewayService.Reserve", "a/b/", ""])
def test_malformed_calls_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--call"):
        CallName.parse(text)


def test_builtin_descriptors_resolve_our_methods() -> None:
    for call, streaming in (
        (CALL, False),
        ("ticketing.v1.NotifierService.WatchReservation", True),
    ):
        name = CallName.parse(call)
        file_set = builtin_file_set(name.service)
        assert file_set is not None
        method = MethodSpec(name=name, file_set=file_set, source="builtin").load()
        assert method.server_streaming is streaming
    assert builtin_file_set("grpc.health.v1.Health") is None


def test_an_unknown_method_is_named() -> None:
    name = CallName.parse("ticketing.v1.GatewayService.Nope")
    file_set = builtin_file_set(name.service)
    assert file_set is not None
    with pytest.raises(MethodError, match="method Nope not found"):
        MethodSpec(name=name, file_set=file_set, source="builtin").load()


def test_payloads_are_rendered_per_call_and_serialized() -> None:
    factory = PayloadFactory.create(
        '{"event_id":"e","idempotency_key":"k{{.RequestNumber}}","quantity":1}',
        gateway_service_pb2.ReserveRequest,
    )
    assert not factory.is_static
    context = new_context("g0c0", 12, NAMES)
    request = gateway_service_pb2.ReserveRequest.FromString(factory.build(12, context))
    assert (request.idempotency_key, request.quantity) == ("k12", 1)


def test_static_arrays_round_robin_by_request_number() -> None:
    factory = PayloadFactory.create(
        '[{"reservation_id":"a"},{"reservation_id":"b"}]',
        notifier_service_pb2.WatchReservationRequest,
    )
    assert factory.is_static
    picked = [
        notifier_service_pb2.WatchReservationRequest.FromString(factory.build(n, None))
        for n in range(3)
    ]
    assert [p.reservation_id for p in picked] == ["a", "b", "a"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ('{"nope":1}', "does not fit ticketing.v1.ReserveRequest"),
        ("{not json", "not valid JSON"),
        ("[]", "empty JSON array"),
        ('{"user_id":"{{.Nope}}"}', "unknown template field"),
    ],
)
def test_bad_call_data_is_refused_before_the_run(data: str, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        check(data, None, gateway_service_pb2.ReserveRequest, NAMES)


def test_metadata_keys_are_lower_cased_and_templated() -> None:
    factory = MetadataFactory.create('{"X-Request":"{{.RequestNumber}}"}')
    assert factory.build(new_context("g0c0", 4, NAMES)) == (("x-request", "4"),)


def test_processes_split_calls_connections_and_workers() -> None:
    spec = MethodSpec(name=CallName.parse(CALL), file_set=b"", source="builtin")
    options = make(total=10, concurrency=5, connections=3, cpus=2)
    plans = [ProcessPlan(options=options, method=spec, index=i, processes=2) for i in range(2)]
    assert [plan.total for plan in plans] == [5, 5]
    assert [plan.connection_ids for plan in plans] == [[0, 2], [1]]
    assert [plan.local_workers(5) for plan in plans] == [3, 2]
    assert [plan.local_workers(1) for plan in plans] == [1, 1]  # at least one each
