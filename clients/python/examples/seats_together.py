"""Two seats together in section B of a seated event, with the client SDK.

    python clients/python/examples/seats_together.py EVENT_ID \\
        --token "$(ticketing-admin token --subject alice)"

Asks for the best 2 seats next to each other in one row of section B
(``--count``, ``--section`` for others), waits for the outcome, and prints
the seats given, one line each; exits 1 with the reason when there are
none. A priced event's seats are held for payment, which this example
leaves to ``PaymentService.Pay``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from ticketing_client import (
    ApiError,
    Confirmed,
    Held,
    NoSeatsTogether,
    Outcome,
    Rejected,
    Seat,
    TicketingClient,
)


def describe(outcome: Outcome, section_id: str) -> tuple[int, list[str]]:
    """The exit code and the lines to print for ``outcome``."""
    seats: tuple[Seat, ...] = ()
    match outcome:
        case Confirmed(seats=seats):
            head = f"{len(seats)} seats together in section {section_id}:"
        case Held(seats=seats, deadline=deadline, amount=amount):
            price = (
                f" for {amount.amount_minor} {amount.currency_code} (minor units)" if amount else ""
            )
            head = f"{len(seats)} seats held{price}, pay before {deadline:%H:%M:%S} UTC:"
        case NoSeatsTogether():
            return 1, [f"no {outcome.quantity} seats together left in section {section_id}"]
        case Rejected(reason=reason):
            return 1, [f"refused: {reason.name}"]
        case _:
            return 1, [f"the reservation ended {type(outcome).__name__}"]
    return 0, [head, *map(seat_line, seats)]


def seat_line(seat: Seat) -> str:
    if not seat.row_id:
        return f"  a standing place in section {seat.section_id}"
    return f"  row {seat.row_id}, seat {seat.seat_id}"


async def reserve_together(
    target: str, token: str, event_id: str, section_id: str, count: int
) -> int:
    async with TicketingClient(target, token=token) as client:
        try:
            outcome = await client.reserve_and_wait(event_id, count, section_id=section_id)
        except ApiError as exc:  # a refusal, not an outcome: a bad id, no such section
            detail = "; ".join(f"{v.field}: {v.description}" for v in exc.field_violations)
            print(f"refused: {exc.code.name} {exc.reason or ''} {detail}".rstrip(), file=sys.stderr)
            return 1
    code, lines = describe(outcome, section_id)
    print("\n".join(lines), file=sys.stdout if code == 0 else sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("event_id", help="a seated event's id")
    parser.add_argument("--token", required=True, help="the customer's bearer token")
    parser.add_argument("--target", default="127.0.0.1:50051", help="the API's host:port")
    parser.add_argument("--section", default="B", help="the section's id (default B)")
    parser.add_argument("--count", type=int, default=2, help="seats together (default 2)")
    args = parser.parse_args(argv)
    return asyncio.run(
        reserve_together(args.target, args.token, args.event_id, args.section, args.count)
    )


if __name__ == "__main__":
    raise SystemExit(main())
