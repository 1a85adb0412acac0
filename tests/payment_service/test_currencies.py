"""Amounts in Stripe's units, over every currency a price may name: an
amount Stripe takes comes back from Stripe's units as it went, and one it
cannot take exactly is refused, never rounded."""

from __future__ import annotations

import pytest

from payment_service.currencies import (
    ISO_EXPONENTS,
    STRIPE_THREE_DECIMAL,
    STRIPE_WHOLE_UNITS_ONLY,
    STRIPE_ZERO_DECIMAL,
    UnpayableAmount,
    from_provider_amount,
    iso_exponent,
    stripe_exponent,
    to_provider_amount,
)
from ticketing_common.fields import currencies

CODES = sorted(currencies())
AMOUNTS = range(0, 2001)


def test_every_code_the_tables_name_is_a_currency_in_use() -> None:
    named = set(ISO_EXPONENTS) | STRIPE_ZERO_DECIMAL | STRIPE_THREE_DECIMAL
    named |= STRIPE_WHOLE_UNITS_ONLY
    assert named - set(CODES) == set()


@pytest.mark.parametrize("currency", CODES)
def test_an_amount_stripe_takes_comes_back_as_it_went(currency: str) -> None:
    payable = []
    for amount in AMOUNTS:
        try:
            stripe_amount = to_provider_amount(currency, amount)
        except UnpayableAmount as exc:
            assert currency in str(exc)
            continue
        payable.append(amount)
        assert from_provider_amount(currency, stripe_amount) == amount
    # Some price is payable in every currency, and the payable ones are
    # the multiples of the smallest: a whole step, never a rounding.
    step = next(a for a in payable if a > 0)
    assert payable == list(range(0, AMOUNTS.stop, step))


@pytest.mark.parametrize("currency", CODES)
def test_whatever_stripe_reports_reads_back_into_our_units(currency: str) -> None:
    # Stripe's amounts of an acceptable kind (whole units where it wants
    # them, a final 0 for three decimals) are the images of ours.
    for amount in range(0, 2001, 100):
        assert to_provider_amount(currency, from_provider_amount(currency, amount)) == amount


@pytest.mark.parametrize(
    ("currency", "amount_minor", "stripe_amount"),
    [
        ("EUR", 2500, 2500),
        ("USD", 1, 1),
        ("JPY", 500, 500),
        ("KRW", 1000, 1000),
        ("ISK", 100, 10000),
        ("MGA", 12300, 123),
        ("KWD", 5120, 5120),
        ("BHD", 10, 10),
        ("IQD", 1230, 123),
        ("CLF", 10000, 100),
        ("UYI", 7, 700),
    ],
)
def test_amounts_in_stripes_units(currency: str, amount_minor: int, stripe_amount: int) -> None:
    assert to_provider_amount(currency, amount_minor) == stripe_amount
    assert from_provider_amount(currency, stripe_amount) == amount_minor


@pytest.mark.parametrize(
    ("currency", "amount_minor", "why"),
    [
        ("MGA", 12345, "Stripe takes MGA with 0 decimals"),
        ("MGA", 1, "Stripe takes MGA with 0 decimals"),
        ("KWD", 5125, "ending in 0"),
        ("IQD", 1235, "Stripe takes IQD with 2 decimals"),
        ("CLF", 10050, "Stripe takes CLF with 2 decimals"),
    ],
)
def test_an_amount_stripe_cannot_say_exactly_is_refused(
    currency: str, amount_minor: int, why: str
) -> None:
    with pytest.raises(UnpayableAmount, match=why):
        to_provider_amount(currency, amount_minor)


def test_exponents_of_the_currencies_that_differ() -> None:
    assert (iso_exponent("EUR"), stripe_exponent("EUR")) == (2, 2)
    assert (iso_exponent("JPY"), stripe_exponent("JPY")) == (0, 0)
    assert (iso_exponent("ISK"), stripe_exponent("ISK")) == (0, 2)
    assert (iso_exponent("MGA"), stripe_exponent("MGA")) == (2, 0)
    assert (iso_exponent("KWD"), stripe_exponent("KWD")) == (3, 3)
