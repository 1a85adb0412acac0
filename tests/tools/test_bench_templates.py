"""ticketing-bench: ghz call-data templates and Go durations."""

from __future__ import annotations

import re
import uuid

import pytest

from ticketing_tools.bench.durations import DurationError, format_duration, parse_duration
from ticketing_tools.bench.templates import (
    CallContext,
    CallTemplate,
    MethodNames,
    TemplateError,
    new_context,
    random_int,
)

METHOD = MethodNames(
    fully_qualified_name="ticketing.v1.GatewayService.Reserve",
    method_name="Reserve",
    service_name="GatewayService",
    input_name="ReserveRequest",
    output_name="ReserveResponse",
)


def context(number: int = 7, worker: str = "g3c1") -> CallContext:
    return CallContext(
        worker_id=worker,
        request_number=number,
        method=METHOD,
        timestamp_ns=1_700_000_000_123_456_789,
        call_uuid="11111111-2222-4333-8444-555555555555",
    )


def render(text: str, ctx: CallContext | None = None) -> str:
    return CallTemplate.compile(text).render(ctx or context())


def test_request_number_and_worker_id_are_substituted() -> None:
    text = '{"user_id":"u{{.RequestNumber}}","worker":"{{ .WorkerID }}"}'
    assert render(text, context(42, "g9c2")) == '{"user_id":"u42","worker":"g9c2"}'


def test_method_fields_and_timestamps_follow_ghz() -> None:
    assert render("{{.FullyQualifiedName}}|{{.MethodName}}|{{.InputName}}") == (
        "ticketing.v1.GatewayService.Reserve|Reserve|ReserveRequest"
    )
    assert render("{{.IsServerStreaming}}") == "false"
    assert render("{{.TimestampUnix}}") == "1700000000"
    assert render("{{.TimestampUnixMilli}}") == "1700000000123"
    assert render("{{.TimestampUnixNano}}") == "1700000000123456789"
    assert re.fullmatch(r"2023-11-1\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", render("{{.Timestamp}}"))
    assert render("{{.UUID}}-{{.UUID}}") == f"{context().call_uuid}-{context().call_uuid}"


def test_new_uuid_is_a_fresh_uuid4_at_every_use() -> None:
    first, second = render("{{newUUID}} {{newUUID}}").split()
    assert first != second
    assert uuid.UUID(first).version == 4
    assert uuid.UUID(second).version == 4


@pytest.mark.parametrize("length", [1, 5, 32])
def test_random_string_has_the_asked_length(length: int) -> None:
    value = render(f"{{{{randomString {length}}}}}")
    assert len(value) == length
    assert value.isalnum()


def test_random_string_without_a_length_is_2_to_16_characters() -> None:
    lengths = {len(render("{{randomString 0}}")) for _ in range(300)}
    assert min(lengths) >= 2
    assert max(lengths) <= 16
    assert len(lengths) > 1


def test_random_int_stays_in_the_half_open_range() -> None:
    values = {int(render("{{randomInt 3 6}}")) for _ in range(300)}
    assert values == {3, 4, 5}
    assert random_int(5, 5) == 5


def test_static_templates_are_recognised_and_comments_vanish() -> None:
    assert CallTemplate.compile('{"a":1}').is_static
    assert CallTemplate.compile('{"a":{{/* note */}}1}').render(context()) == '{"a":1}'
    assert not CallTemplate.compile('{"a":"{{newUUID}}"}').is_static


def test_trim_markers_remove_adjacent_whitespace() -> None:
    assert render("a  {{- .RequestNumber -}}  b") == "a7b"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{.Nope}}", "unknown template field"),
        ("{{randomString}}", "randomString takes 1"),
        ("{{randomString x}}", "integer"),
        ("{{upper .WorkerID}}", "unsupported template action"),
        ('{"a":"{{.WorkerID"}', "unclosed"),
    ],
)
def test_bad_templates_are_refused_when_compiled(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        CallTemplate.compile(text)


def test_new_context_stamps_the_current_time() -> None:
    ctx = new_context("g0c0", 3, METHOD)
    assert ctx.request_number == 3
    assert ctx.timestamp_ns > 1_700_000_000 * 10**9


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("10s", 10 * 10**9),
        ("1m", 60 * 10**9),
        ("500ms", 500 * 10**6),
        ("1m30s", 90 * 10**9),
        ("1h2m3s", 3723 * 10**9),
        ("1.5s", 1_500_000_000),
        ("250us", 250_000),
        ("250\u00b5s", 250_000),
        ("42ns", 42),
        ("0", 0),
        ("-2s", -2 * 10**9),
    ],
)
def test_go_durations_parse_to_nanoseconds(text: str, nanos: int) -> None:
    assert parse_duration(text) == nanos


@pytest.mark.parametrize("text", ["", "10", "s", "10x", "1m x", "ten seconds", "1.5"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


def test_durations_format_back_compactly() -> None:
    assert format_duration(90 * 10**9) == "1m30s"
    assert format_duration(500 * 10**6) == "500ms"
    assert format_duration(0) == "0s"
    assert parse_duration(format_duration(3723 * 10**9)) == 3723 * 10**9
