"""How long the saga keeps trying a step that fails, and what then.

A capture, void or refund moves money, so the saga never gives one up on
its own, and never tries it forever either: each failed attempt at a step
waits a backoff (doubling, capped) before the next, and once the step has
failed ``attempts`` times, or has been failing for longer than ``window``,
or the provider refused it for good, the payment needs an operator. The
saga then leaves it where it stands; ``ticketing-admin payments`` lists it
and ``ticketing-admin payments retry`` gives it a new budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class RetryBudget:
    # Failed attempts at one step before it needs an operator.
    attempts: int
    # Longest a step may keep failing, from when it began.
    window: timedelta
    # The wait after the first failure; it doubles after each, up to backoff_max.
    backoff: timedelta
    backoff_max: timedelta

    def next_attempt(
        self, failures: int, step_began: datetime, now: datetime, *, retriable: bool = True
    ) -> datetime | None:
        """When the step may be tried again after its ``failures``-th failed
        attempt (at ``now``), or None: the budget is spent, the payment
        needs an operator."""
        if not retriable or failures >= self.attempts or now - step_began >= self.window:
            return None
        # (The exponent is capped so the product cannot overflow a timedelta.)
        return now + min(self.backoff * (1 << min(failures - 1, 30)), self.backoff_max)
