"""`make demo`, scaled down, against the test stack: it runs both designs and
the ceiling, writes its report and chart, and says the invariants hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ticketing_tools.stack import LocalStack


def test_demo_reports_both_designs_the_ceiling_and_the_invariants(
    stack: LocalStack, tmp_path: Path
) -> None:
    env = {**os.environ, **stack.connection_env()}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ticketing_tools.demo",
            "--scale",
            "0.05",
            "--ceiling-seconds",
            "2",
            "--out-dir",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Invariants: all hold" in result.stdout
    report = json.loads((tmp_path / "demo-report.json").read_text())
    queue, sync = report["designs"]
    assert (queue["design"], sync["design"]) == ("queue", "sync")
    assert queue["users"] == sync["users"] == 100  # 2,000 users scaled by 0.05
    assert (queue["seats_sold"], queue["seats_left"]) == (100, 0)
    assert queue["accepted_without_outcome"] == 0
    assert report["ledger"]["balanced"] and report["ledger"]["seats_ok"]
    for key in ("p50", "p95", "p99", "max"):
        assert queue["reserve_latency_ms"][key] > 0
    ceiling = report["ceiling"]
    for name in ("echo", "echo_nginx", "gateway_nginx"):
        assert ceiling[name]["rps"] > 0
        assert set(ceiling[name]["status"]) == {"OK"}
    assert report["failures"] == []
    assert (tmp_path / "demo-report.png").stat().st_size > 10_000
