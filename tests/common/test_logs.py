"""Every log line is one JSON object, ours and the libraries' alike."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from ticketing_common import logs


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()


def test_library_and_own_lines_are_json_with_the_service(
    restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("gateway", "info")
    logging.getLogger("aiokafka.consumer.group_coordinator").warning(
        "Heartbeat failed for group %s", "ticketing-consumer"
    )
    logging.getLogger("asyncpg.pool").info("below warning: not shown")
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        logging.getLogger("grpc").exception("handler failed")
    structlog.get_logger().info("reserve_queued", reservation_id="r-1")

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["event"], line["level"]) for line in lines] == [
        ("Heartbeat failed for group ticketing-consumer", "warning"),
        ("handler failed", "error"),
        ("reserve_queued", "info"),
    ]
    assert {line["service"] for line in lines} == {"gateway"}
    assert lines[0]["logger"] == "aiokafka.consumer.group_coordinator"
    assert "ZeroDivisionError: boom" in lines[1]["exception"]
    assert lines[2]["reservation_id"] == "r-1"
