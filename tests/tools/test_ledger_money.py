"""The ledger's money check with two providers: the local provider's books
are compared with the payments it took, Stripe's are not counted missing
(``payments reconcile`` compares them), and every captured and refunded
payment is named with its provider's reference. Pure logic on built rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ticketing_tools.admin import _print_money
from ticketing_tools.ledger import ProviderReference, _money, _money_check

EVENT = {"event_id": "e-1", "currency": "EUR", "price_minor": 1_000, "confirmed": 2}


def payment(
    payment_id: str,
    status: str,
    *,
    provider: str,
    ref: str | None = None,
    refund_ref: str | None = None,
    provider_captured: int = 0,
    provider_refunded: int = 0,
) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "payment_id": payment_id,
        "status": status,
        "amount_minor": 1_000,
        "detail": "",
        "deadline": now + timedelta(minutes=1),
        "updated_at": now,
        "attempts": 0,
        "last_error": None,
        "attention_since": None,
        "reservation_status": "CONFIRMED" if status == "CAPTURED" else "CANCELLED",
        "reservation_id": f"r-{payment_id}",
        "provider": provider,
        "provider_ref": ref,
        "refund_ref": refund_ref,
        "provider_captured": provider_captured,
        "provider_refunded": provider_refunded,
    }


def test_stripe_payments_are_not_missing_at_the_local_provider() -> None:
    check = _money_check(
        EVENT,
        [
            payment("p-1", "CAPTURED", provider="stripe", ref="pi_1"),
            payment("p-2", "CAPTURED", provider="local", ref="local-p-2", provider_captured=1_000),
            payment("p-3", "REFUNDED", provider="stripe", ref="pi_3", refund_ref="re_3"),
        ],
        0,
    )
    assert check.ok, check
    assert (check.captured_minor, check.refunded_minor) == (2_000, 1_000)
    assert (check.stripe_captured_minor, check.stripe_refunded_minor) == (1_000, 1_000)
    assert (check.provider_captured_minor, check.provider_refunded_minor) == (1_000, 0)
    assert check.references == (
        ProviderReference("p-1", "CAPTURED", 1_000, "stripe", "pi_1"),
        ProviderReference("p-2", "CAPTURED", 1_000, "local", "local-p-2"),
        # A refund is named by the refund's id, not the payment's.
        ProviderReference("p-3", "REFUNDED", 1_000, "stripe", "re_3"),
    )


def test_a_local_payment_the_local_provider_did_not_capture_still_breaks_the_check() -> None:
    check = _money_check(
        {**EVENT, "confirmed": 1},
        [payment("p-1", "CAPTURED", provider="local", ref="local-p-1")],
        0,
    )
    assert not check.ok
    assert check.problems == ()
    assert check.provider_captured_minor == 0


def test_the_local_providers_books_of_a_stripe_payment_are_not_counted() -> None:
    # A stray record of a Stripe payment in provider_operations is not
    # Stripe's books: it neither balances nor breaks the local sums.
    check = _money_check(
        {**EVENT, "confirmed": 1},
        [payment("p-1", "CAPTURED", provider="stripe", ref="pi_1", provider_captured=1_000)],
        0,
    )
    assert check.ok
    assert check.provider_captured_minor == 0


@pytest.mark.parametrize(
    ("status", "what"), [("CAPTURED", "PaymentIntent"), ("REFUNDED", "refund")]
)
def test_a_stripe_payment_without_its_reference_is_a_problem(status: str, what: str) -> None:
    check = _money_check(
        {**EVENT, "confirmed": 1 if status == "CAPTURED" else 0},
        [payment("p-1", status, provider="stripe", ref="pi_1" if status == "REFUNDED" else None)],
        0,
    )
    assert not check.ok
    assert check.problems == (f"payment p-1 is {status} at stripe with no {what} id recorded",)
    assert check.references == (ProviderReference("p-1", status, 1_000, "stripe", None),)


def test_rows_without_the_provider_columns_are_the_local_providers() -> None:
    row = payment("p-1", "CAPTURED", provider="local", provider_captured=1_000)
    for column in ("provider", "provider_ref", "refund_ref"):
        del row[column]
    check = _money_check({**EVENT, "confirmed": 1}, [row], 0)
    assert check.ok
    assert check.references == (ProviderReference("p-1", "CAPTURED", 1_000, "local", None),)


def test_the_ledger_prints_each_reference_and_where_stripes_books_are_compared(
    capsys: pytest.CaptureFixture[str],
) -> None:
    check = _money_check(
        {**EVENT, "confirmed": 1},
        [
            payment("p-1", "CAPTURED", provider="stripe", ref="pi_1"),
            payment("p-2", "REFUNDED", provider="stripe", ref="pi_2", refund_ref="re_2"),
        ],
        0,
    )
    _print_money(check)
    assert capsys.readouterr().out.splitlines() == [
        "  event e-1: captured 1000 = confirmed 1 x 1000 EUR; refunded 1000; local provider "
        "captured 0, refunded 0; Stripe's part captured 1000, refunded 1000 (its books: "
        "payments reconcile) [ok]",
        "    payment p-1 CAPTURED 1000: stripe pi_1",
        "    payment p-2 REFUNDED 1000: stripe re_2",
    ]
    money = _money(check)
    assert money["references"] == [
        {
            "payment_id": "p-1",
            "status": "CAPTURED",
            "amount_minor": 1_000,
            "provider": "stripe",
            "reference": "pi_1",
        },
        {
            "payment_id": "p-2",
            "status": "REFUNDED",
            "amount_minor": 1_000,
            "provider": "stripe",
            "reference": "re_2",
        },
    ]
    assert (money["stripe_captured_minor"], money["stripe_refunded_minor"]) == (1_000, 1_000)
