"""The payment service's own metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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

STEP_FAILURES = Counter(
    "ticketing_payment_step_failures_total",
    "Failed attempts at a payment saga step (the state the payment was in): each is "
    "tried again within the retry budget, or, that spent, left to an operator.",
    ["step"],
)
NEEDING_ATTENTION = Gauge(
    "ticketing_payments_needing_attention",
    "Payments whose retry budget is spent or whose provider refused a step for good, "
    "left to an operator (ticketing-admin payments); counted in PostgreSQL at every "
    "sweep, so every payment service shows the same number.",
)

WEBHOOKS = Counter(
    "ticketing_payment_webhooks_total",
    "Stripe webhook events received: their type and what they did (authorized, declined, "
    "voiding, voided, refunding, partial refund, disputed, ignored, duplicate, unknown "
    "payment; bad_signature: refused, 400).",
    ["type", "outcome"],
)
DISPUTES = Counter(
    "ticketing_payment_disputes_total",
    "Payments the buyer disputed at their bank (Stripe's charge.dispute.created): each "
    "needs an operator's answer in Stripe's dashboard.",
)
PROVIDER_CALLS = Histogram(
    "ticketing_payment_provider_seconds",
    "Calls to the payment provider (authorize, status, capture, void, refund) and how long "
    "they took, by how they ended: ok (a decline is an answer too), failed (transient: "
    "retried), refused (an operator's problem), timeout.",
    ["provider", "operation", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
