"""Amounts in a provider's units.

The suite counts money in ISO 4217 minor units (cents for EUR, yen for
JPY, since the yen has no minor unit). Stripe counts in "the currency's
smallest unit" too, but not always ISO's: it treats a few currencies as
zero-decimal that ISO gives two decimals (MGA), keeps ISK as two-decimal
though ISO gives it none (and then wants whole krónur, multiples of 100),
and wants the last digit of a three-decimal amount to be 0. An amount that
cannot be said exactly in Stripe's units is refused before any call, never
rounded: a buyer pays exactly the price shown.
"""

from __future__ import annotations

# ISO 4217 minor-unit exponents other than 2 (every other code has 2).
_ISO_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_ISO_3 = "BHD IQD JOD KWD LYD OMR TND"
_ISO_4 = "CLF UYW"
ISO_EXPONENTS = {
    **dict.fromkeys(_ISO_0.split(), 0),
    **dict.fromkeys(_ISO_3.split(), 3),
    **dict.fromkeys(_ISO_4.split(), 4),
}

# Stripe's zero-decimal currencies: an amount is in whole units.
_STRIPE_0 = "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF"
STRIPE_ZERO_DECIMAL = frozenset(_STRIPE_0.split())
# Stripe's three-decimal currencies: the last digit must be 0.
STRIPE_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
# Two-decimal at Stripe, whole units only (an amount is a multiple of 100).
STRIPE_WHOLE_UNITS_ONLY = frozenset({"ISK"})


class UnpayableAmount(ValueError):
    """The amount cannot be said exactly in the provider's units."""


def iso_exponent(currency: str) -> int:
    return ISO_EXPONENTS.get(currency, 2)


def stripe_exponent(currency: str) -> int:
    if currency in STRIPE_ZERO_DECIMAL:
        return 0
    if currency in STRIPE_THREE_DECIMAL:
        return 3
    return 2


def to_provider_amount(currency: str, amount_minor: int) -> int:
    """``amount_minor`` (ISO minor units of ``currency``) in Stripe's units."""
    shift = stripe_exponent(currency) - iso_exponent(currency)
    if shift >= 0:
        amount: int = amount_minor * 10 ** int(shift)
    else:
        factor: int = 10 ** (-shift)
        amount, rest = divmod(amount_minor, factor)
        if rest:
            raise UnpayableAmount(
                f"{currency} {amount_minor} (ISO minor units) cannot be charged exactly: "
                f"Stripe takes {currency} with {stripe_exponent(currency)} decimals"
            )
    if currency in STRIPE_THREE_DECIMAL and amount % 10:
        raise UnpayableAmount(
            f"{currency} {amount_minor}: Stripe takes three-decimal amounts ending in 0"
        )
    if currency in STRIPE_WHOLE_UNITS_ONLY and amount % 100:
        raise UnpayableAmount(f"{currency} {amount_minor}: Stripe takes whole units only")
    return amount


def from_provider_amount(currency: str, amount: int) -> int:
    """Stripe's ``amount`` of ``currency`` in ISO minor units (for comparing
    what the provider reports with our books)."""
    shift = stripe_exponent(currency) - iso_exponent(currency)
    factor: int = 10 ** abs(shift)
    return amount * factor if shift <= 0 else amount // factor
