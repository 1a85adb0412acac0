"""``make flood``: does one subject's flood of ``Reserve`` calls hurt anyone
else? (BENCHMARKS.md, section 6.)

On a stack of its own, with the gateways' per-subject limit on
(``--limit``, calls per second) and the per-address limit off (the whole
load comes from one loopback address), one buyer sends ``--buyer-rate``
calls a second for ``--seconds``: first alone, then while a flooding
subject sends each of ``--flood-rates`` calls a second. Both loads are open
loop (``ticketing-bench --arrival-rate``), each in a process of its own.
Prints the buyer's p50 and p99 per run, and what the flood got through;
``--json`` writes the whole report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.settings import GatewaySettings
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing.v1 import reservation_service_pb2_grpc as rs_grpc
from ticketing_common.auth import ADMIN
from ticketing_common.config import variable

from .bench.reserve import reserve_argv
from .stack import LocalStack, StackConfig
from .tokens import authorized_channel


def load(
    endpoint: str, event_id: str, token: str, *, rate: int, seconds: int
) -> subprocess.Popen[str]:
    """Starts one open-loop ``ticketing-bench`` run; its JSON report comes on stdout."""
    argv = reserve_argv(
        endpoint,
        event_id,
        token,
        ["--arrival-rate", str(rate), "-z", f"{seconds}s", "--connections", "4"],
    )
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def summary(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=600)
    if process.returncode != 0:
        raise RuntimeError(f"ticketing-bench failed: {err.strip()[-500:]}")
    report = json.loads(out)
    latencies = {d["percentage"]: d["latency"] for d in report["latencyDistribution"] or []}
    return {
        "calls": report["count"],
        "statuses": report["statusCodeDistribution"],
        "p50_ms": round(latencies.get(50, 0) / 1e6, 1),
        "p99_ms": round(latencies.get(99, 0) / 1e6, 1),
    }


def run(stack: LocalStack, args: argparse.Namespace) -> dict[str, Any]:
    async def create_event() -> str:
        admin = stack.token("flood-admin", roles=(ADMIN,))
        async with authorized_channel(stack.endpoint, admin) as channel:
            reply = await rs_grpc.ReservationServiceStub(channel).CreateEvent(
                rs.CreateEventRequest(name="flood", capacity=10_000_000, per_user_limit=10_000_000),
                timeout=10,
            )
        return str(reply.event.event_id)

    event_id = asyncio.run(create_event())
    buyer, flooder = stack.token("buyer"), stack.token("flooder")
    runs: list[dict[str, Any]] = []
    for flood_rate in (0, *args.flood_rates):
        flood = (
            load(stack.endpoint, event_id, flooder, rate=flood_rate, seconds=args.seconds)
            if flood_rate
            else None
        )
        measured = load(stack.endpoint, event_id, buyer, rate=args.buyer_rate, seconds=args.seconds)
        result: dict[str, Any] = {"flood_rate": flood_rate, "buyer": summary(measured)}
        if flood is not None:
            result["flood"] = summary(flood)
        runs.append(result)
        print(json.dumps(result), flush=True)
    return {
        "limit_per_subject": args.limit,
        "buyer_rate": args.buyer_rate,
        "seconds": args.seconds,
        "runs": runs,
    }


def table(report: dict[str, Any]) -> str:
    base = report["runs"][0]["buyer"]["p99_ms"] or 1.0
    lines = [
        "| flood | buyer p50 | buyer p99 | flood calls accepted |",
        "|---|---:|---:|---:|",
    ]
    for entry in report["runs"]:
        buyer = entry["buyer"]
        flood = entry.get("flood")
        accepted = f"{flood['statuses'].get('OK', 0):,} of {flood['calls']:,}" if flood else "—"
        ratio = f" ({buyer['p99_ms'] / base:.1f}x)" if flood else ""
        lines.append(
            f"| {entry['flood_rate'] or 'none'}{'/s' if flood else ''} | {buyer['p50_ms']} ms "
            f"| {buyer['p99_ms']} ms{ratio} | {accepted} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="flood", description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=20, help="per-subject calls per second")
    parser.add_argument("--buyer-rate", type=int, default=10, help="the buyer's calls per second")
    parser.add_argument(
        "--flood-rates",
        type=lambda text: [int(r) for r in text.split(",")],
        default=[400, 1500],
        help="flood calls per second, comma-separated, one run each",
    )
    parser.add_argument("--seconds", type=int, default=20, help="length of each run")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    env = {
        variable(GatewaySettings, "rate_per_subject"): str(args.limit),
        variable(GatewaySettings, "rate_per_address"): "0",
    }
    with LocalStack(StackConfig(listen_port=0), service_env=env) as stack:
        report = run(stack, args)
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
