"""``ticketing-bench`` as the other tools run it: ``Reserve`` calls for one
event, each a new request, as one subject."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

DATA = '{"event_id": "%s", "quantity": 1, "idempotency_key": "{{newUUID}}"}'


def reserve_argv(endpoint: str, event_id: str, token: str, load: Sequence[str]) -> list[str]:
    """The command line of one plaintext run shaped by ``load`` (duration,
    rate, workers...), reporting JSON on stdout; calls still in flight when
    the time is up are waited for, not counted as cancelled."""
    return [
        sys.executable,
        "-m",
        "ticketing_tools.bench.cli",
        "--insecure",
        "--call",
        "ticketing.v1.GatewayService.Reserve",
        "-d",
        DATA % event_id,
        "-m",
        json.dumps({"authorization": f"Bearer {token}"}),
        *load,
        "--duration-stop",
        "wait",
        "-O",
        "json",
        "--skip-details",
        endpoint,
    ]
