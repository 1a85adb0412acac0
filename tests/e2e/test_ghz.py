"""The real ghz, built pinned from source, through nginx, knowing nothing but
reflection: it finds ``Reserve`` by its full name and every call succeeds."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path

import pytest

from ticketing_tools.stack import LocalStack

from ..helpers import Reservations, create_event, get_event, token

CALLS, CONCURRENCY = 20, 2


def run_ghz(binary: Path, stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), "--insecure", "--format", "json", "--timeout", "10s", *args, stack.endpoint],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_ghz_reserves_by_reflection_through_nginx(
    stack: LocalStack, ghz_binary: Path, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=CALLS + 10, per_user_limit=CALLS)
    run = uuid.uuid4().hex[:8]
    ran = await asyncio.to_thread(
        run_ghz,
        ghz_binary,
        stack,
        "--call",
        "ticketing.v1.GatewayService.Reserve",
        "--data",
        json.dumps(
            {
                "event_id": event.event_id,
                "quantity": 1,
                "idempotency_key": f"ghz-{run}-{{{{.RequestNumber}}}}",
            }
        ),
        "--metadata",
        json.dumps({"authorization": f"Bearer {token('ghz-buyer')}"}),
        "--total",
        str(CALLS),
        "--concurrency",
        str(CONCURRENCY),
    )
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["statusCodeDistribution"] == {"OK": CALLS}, report.get("errorDistribution")
    assert report["count"] == CALLS
    # Twenty distinct requests, each a seat once decided.
    deadline = asyncio.get_running_loop().time() + 60
    while (await get_event(reservations, event.event_id)).available != 10:
        assert asyncio.get_running_loop().time() < deadline, "the 20 seats were never taken"
        await asyncio.sleep(0.2)


async def test_ghz_with_the_protoset_reaches_the_same_method(
    stack: LocalStack, ghz_binary: Path, pytestconfig: pytest.Config
) -> None:
    """Without reflection, the shipped protoset names the same method; an
    invalid request is answered INVALID_ARGUMENT for every call."""
    ran = await asyncio.to_thread(
        run_ghz,
        ghz_binary,
        stack,
        "--protoset",
        str(pytestconfig.rootpath / "protos" / "ticketing.protoset"),
        "--call",
        "ticketing.v1.GatewayService/Reserve",
        "--data",
        json.dumps({"event_id": str(uuid.uuid4()), "quantity": 0, "idempotency_key": "k"}),
        "--metadata",
        json.dumps({"authorization": f"Bearer {token('ghz-buyer')}"}),
        "--total",
        "4",
        "--concurrency",
        "2",
    )
    report = json.loads(ran.stdout)
    assert report["statusCodeDistribution"] == {"InvalidArgument": 4}, ran.stderr
