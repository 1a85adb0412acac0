"""The saga's retry budget and what counts as a stuck payment: pure logic,
no I/O (the saga itself under a failing provider: test_saga_store.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from payment_service.retries import RetryBudget
from ticketing_tools.ledger import _money_check
from ticketing_tools.payments import OPEN_GRACE, STEP_BOUND, why_stuck

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BUDGET = RetryBudget(
    attempts=4,
    window=timedelta(minutes=10),
    backoff=timedelta(seconds=1),
    backoff_max=timedelta(seconds=5),
)


def test_a_failing_step_is_retried_with_a_doubling_capped_backoff_until_its_attempts_run_out() -> (
    None
):
    began = NOW - timedelta(seconds=30)
    waits = [BUDGET.next_attempt(n, began, NOW) for n in range(1, 5)]
    assert waits[:3] == [NOW + timedelta(seconds=s) for s in (1, 2, 4)]
    # The fourth failure spends the budget: no next attempt, an operator's turn.
    assert waits[3] is None
    capped = RetryBudget(4_000, BUDGET.window, BUDGET.backoff, BUDGET.backoff_max)
    assert capped.next_attempt(3_999, began, NOW) == NOW + timedelta(seconds=5)


def test_a_step_failing_longer_than_the_window_needs_an_operator_with_attempts_left() -> None:
    assert BUDGET.next_attempt(1, NOW - timedelta(minutes=9), NOW) is not None
    assert BUDGET.next_attempt(1, NOW - timedelta(minutes=10), NOW) is None


def test_a_step_the_provider_refused_for_good_needs_an_operator_at_once() -> None:
    assert BUDGET.next_attempt(1, NOW, NOW, retriable=False) is None


@pytest.mark.parametrize(
    ("status", "step_age", "past_deadline", "flagged", "why"),
    [
        ("CAPTURING", timedelta(minutes=1), False, False, None),
        ("CAPTURING", STEP_BOUND + timedelta(seconds=1), False, False, "past its bound"),
        ("REFUNDING", STEP_BOUND + timedelta(seconds=1), False, False, "past its bound"),
        ("VOIDING", STEP_BOUND + timedelta(seconds=1), False, False, "past its bound"),
        ("CAPTURING", timedelta(minutes=1), False, True, "needs attention"),
        ("PENDING", timedelta(minutes=1), True, False, "past its deadline"),
        ("AUTHORIZED", timedelta(seconds=1), False, False, None),
        # Settled: never stuck, however old.
        ("CAPTURED", STEP_BOUND * 10, True, False, None),
    ],
)
def test_what_is_a_stuck_payment(
    status: str, step_age: timedelta, past_deadline: bool, flagged: bool, why: str | None
) -> None:
    deadline = NOW - OPEN_GRACE - timedelta(seconds=1) if past_deadline else NOW
    assert (
        why_stuck(
            status=status,
            updated_at=NOW - step_age,
            deadline=deadline,
            attention_since=NOW if flagged else None,
            now=NOW,
            step_bound=STEP_BOUND,
        )
        == why
    )


def _payment(status: str, *, step_age: timedelta, flagged: bool = False) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "payment_id": "p-1",
        "status": status,
        "amount_minor": 1_000,
        "detail": "seats confirmed",
        "deadline": now + timedelta(minutes=1),
        "updated_at": now - step_age,
        "attempts": 8 if flagged else 0,
        "last_error": "ProviderError: capture failed" if flagged else None,
        "attention_since": now if flagged else None,
        "reservation_status": "CONFIRMED",
        "reservation_id": "r-1",
        "provider_captured": 0,
        "provider_refunded": 0,
    }


EVENT = {"event_id": "e-1", "currency": "EUR", "price_minor": 1_000, "confirmed": 1}


def test_the_money_check_is_not_ok_while_a_payment_needs_attention() -> None:
    check = _money_check(
        EVENT, [_payment("CAPTURING", step_age=timedelta(seconds=5), flagged=True)], 0
    )
    assert not check.ok
    assert check.problems == (
        "payment p-1 CAPTURING needs attention: 8 failed attempts, "
        "last error: ProviderError: capture failed",
    )


def test_the_money_check_is_not_ok_while_a_capture_is_in_flight_past_its_bound() -> None:
    within = _money_check(EVENT, [_payment("CAPTURING", step_age=timedelta(minutes=1))], 0)
    assert within.ok  # in flight, within its bound: the sums wait for a quiet point
    past = _money_check(
        EVENT,
        [_payment("CAPTURING", step_age=timedelta(minutes=3))],
        0,
        step_bound=timedelta(minutes=2),
    )
    assert not past.ok
    assert past.problems == ("payment p-1 still CAPTURING past its bound",)
