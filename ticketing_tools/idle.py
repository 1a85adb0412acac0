"""``make idle``: what a stack costs when nobody is buying.

Starts a stack of its own (the same launcher as ``make run``), lets it settle,
then reads every process's CPU time (with its children: PostgreSQL backends,
nginx workers) over a window and prints the share of one core each used.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ticketing_common.runtime import settings_or_exit

from .demo import cpu_seconds
from .stack import LocalStack, StackConfig


@dataclass(frozen=True)
class IdleReport:
    window_s: float
    # Percent of one core per process, by the launcher's name for it.
    per_process: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.per_process.values())

    def table(self) -> str:
        width = max(len(name) for name in self.per_process)
        lines = [f"{name:<{width}}  {pct:5.2f} %" for name, pct in self.per_process.items()]
        lines.append(f"{'total':<{width}}  {self.total:5.2f} % of one core")
        return "\n".join(lines)


def measure(stack: LocalStack, *, settle_s: float, window_s: float) -> IdleReport:
    """CPU of each of the stack's processes over ``window_s``, after ``settle_s``."""
    time.sleep(settle_s)
    children = [c for c in stack.children if c.alive()]
    before = {c.name: cpu_seconds([c.pid]) for c in children}
    started = time.monotonic()
    time.sleep(window_s)
    elapsed = time.monotonic() - started
    return IdleReport(
        window_s=elapsed,
        per_process={
            c.name: 100 * (cpu_seconds([c.pid]) - before[c.name]) / elapsed for c in children
        },
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settle-seconds", type=float, default=15.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    config = settings_or_exit(StackConfig).model_copy(update={"listen_port": 0})
    with LocalStack(config) as stack:
        report = measure(stack, settle_s=args.settle_seconds, window_s=args.seconds)
    if args.json:
        print(json.dumps(dataclasses.asdict(report) | {"total": report.total}, indent=2))
    else:
        print(f"idle stack over {report.window_s:.0f} s:\n{report.table()}")


if __name__ == "__main__":
    main()
