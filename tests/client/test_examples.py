"""The SDK's examples (``clients/python/examples/``) run as a user runs
them, against the local stack through nginx, and print what they promise."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_tools.stack import LocalStack

from ..helpers import Reservations, get_event, token

EXAMPLES = Path(__file__).resolve().parents[2] / "clients" / "python" / "examples"


async def run_example(name: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / name),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_seats_together_prints_two_seats_in_section_b_until_none_are_left(
    stack: LocalStack, reservations: Reservations
) -> None:
    plan = pb.SeatingPlan()
    plan.sections.add(section_id="A", name="Stalls").rows.add(
        row_id="A-1", seat_ids=[f"A-1-{n}" for n in range(1, 7)]
    )
    plan.sections.add(section_id="B", name="Balcony").rows.add(
        row_id="B-1", seat_ids=["B-1-1", "B-1-2", "B-1-3", "B-1-4"]
    )
    event = (
        await reservations.CreateEvent(
            rs.CreateEventRequest(name="Example", per_user_limit=2, seating_plan=plan), timeout=10
        )
    ).event

    async def buyer(name: str) -> tuple[int, str, str]:
        subject = f"{name}-{uuid.uuid4().hex[:8]}"
        return await run_example(
            "seats_together.py",
            event.event_id,
            "--token",
            token(subject),
            "--target",
            stack.endpoint,
        )

    code, out, err = await buyer("example-first")
    assert code == 0, err
    assert out.splitlines() == [
        "2 seats together in section B:",
        "  row B-1, seat B-1-2",
        "  row B-1, seat B-1-3",
    ]
    # B-1-1 and B-1-4 are left: two seats, not together.
    code, out, err = await buyer("example-second")
    assert (code, out) == (1, ""), err
    assert err.strip() == "no 2 seats together left in section B"
    assert (await get_event(reservations, event.event_id)).confirmed == 2
