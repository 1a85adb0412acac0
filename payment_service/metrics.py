"""The payment service's own metrics."""

from __future__ import annotations

from prometheus_client import Counter

SAGA_STEPS = Counter(
    "ticketing_saga_steps_total",
    "Payment saga steps taken: the step (the state the payment was in) and its outcome "
    "(the state it moved to).",
    ["step", "outcome"],
)

PAY_REFUSED = Counter(
    "ticketing_payment_refused_total",
    "Pay calls refused by a limit: `subject` (calls per window) or `declines` (declined "
    "attempts on one hold).",
    ["limit"],
)
