"""Our payments against the provider's books: every difference, named.

The ledger checks our own books against themselves (what was captured
equals the seats sold). Whether the provider's books say the same is this
module's question (``ticketing-admin payments reconcile``): for each of our
payments, what the provider must show given its status, and for each of the
provider's payments and refunds, that it is one of ours.

This is the pure core: ``differences`` compares rows already read, with no
I/O (``provider_books`` reads them, from PostgreSQL and from Stripe or the
local provider's table). The provider's payments are described in Stripe's
terms (a PaymentIntent's status, amounts in Stripe's units); the local
provider's records are translated into them (``local_payment``), so one
table of expectations (``EXPECTED``) serves both.

What a payment's status lets the provider show, and why:

- CAPTURED, REFUNDED, REFUNDING: ``succeeded``, with ``amount_received`` our
  amount; REFUNDED also a refund (succeeded or pending) of our amount whose
  id is our ``refund_ref``; REFUNDING's refund may not exist yet.
- AUTHORIZED: ``requires_capture``. CAPTURING: ``requires_capture``, or
  ``succeeded`` when the capture went through and its record is still to
  come (as VOIDING may already be ``canceled``).
- VOIDED: ``canceled``, or nothing at all (an authorization that timed out
  before the provider saw it). VOIDING: on its way there, so also
  ``requires_capture``, ``requires_action``, ``processing`` or
  ``requires_payment_method``.
- DECLINED: ``requires_payment_method`` or ``canceled`` or nothing (an
  amount refused before any call), never money taken or held.
- PENDING: undecided (``requires_action``, ``processing``,
  ``requires_confirmation``), or nothing yet, or decided at the provider
  (``requires_capture``, ``requires_payment_method``) with its webhook still
  on the way (one that never comes is found by the saga's look-ups).

A refund is expected only of a REFUNDED or REFUNDING payment; any other
refund that took or will take money back (succeeded or pending) is a
difference, as is a payment or refund at the provider that names none of
our payments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from payment_service.currencies import UnpayableAmount, to_provider_amount

STRIPE = "stripe"
LOCAL = "local"
PROVIDERS = (STRIPE, LOCAL)

# The kinds of difference.
MISSING = "missing at provider"
UNKNOWN = "unknown to us"
AMOUNT = "amount"
CURRENCY = "currency"
STATUS = "status"
REFERENCE = "reference"
REFUND_MISSING = "refund missing"
REFUND_UNKNOWN = "refund unknown to us"
REFUND_AMOUNT = "refund amount"
KINDS = (
    MISSING,
    UNKNOWN,
    AMOUNT,
    CURRENCY,
    STATUS,
    REFERENCE,
    REFUND_MISSING,
    REFUND_UNKNOWN,
    REFUND_AMOUNT,
)

# Refund statuses that have taken, or will take, the money back.
REFUND_TAKING = frozenset({"succeeded", "pending"})


@dataclass(frozen=True, slots=True)
class Expected:
    """The provider statuses a payment of ours may have, and whether it may
    have none at all."""

    statuses: frozenset[str]
    may_be_absent: bool = False

    def allows(self, status: str | None) -> bool:
        return self.may_be_absent if status is None else status in self.statuses

    def describe(self) -> str:
        shown = " or ".join(sorted(self.statuses))
        return f"{shown} or none" if self.may_be_absent else shown


EXPECTED: Mapping[str, Expected] = {
    "PENDING": Expected(
        frozenset(
            {
                "requires_action",
                "processing",
                "requires_confirmation",
                # Decided at the provider, its webhook still on the way.
                "requires_capture",
                "requires_payment_method",
            }
        ),
        True,
    ),
    "AUTHORIZED": Expected(frozenset({"requires_capture"})),
    "CAPTURING": Expected(frozenset({"requires_capture", "succeeded"})),
    "CAPTURED": Expected(frozenset({"succeeded"})),
    "DECLINED": Expected(frozenset({"requires_payment_method", "canceled"}), True),
    "VOIDING": Expected(
        frozenset(
            {
                "requires_capture",
                "canceled",
                "requires_action",
                "processing",
                "requires_payment_method",
            }
        ),
        True,
    ),
    "VOIDED": Expected(frozenset({"canceled"}), True),
    "REFUNDING": Expected(frozenset({"succeeded"})),
    "REFUNDED": Expected(frozenset({"succeeded"})),
}


@dataclass(frozen=True, slots=True)
class OurPayment:
    """A payments row: amounts in ISO 4217 minor units."""

    payment_id: str
    status: str
    amount_minor: int
    currency: str
    provider: str
    provider_ref: str | None
    refund_ref: str | None
    created_at: datetime

    @property
    def money(self) -> str:
        return f"{self.amount_minor} {self.currency}"


@dataclass(frozen=True, slots=True)
class ProviderPayment:
    """A payment in the provider's books (a PaymentIntent), amounts in the
    provider's units. ``ref`` and ``currency`` are None where the provider
    does not record them (the local provider)."""

    ref: str | None
    payment_id: str | None
    status: str
    # Asked for (None where the provider does not say), and received.
    amount: int | None
    amount_received: int
    currency: str | None

    @property
    def name(self) -> str:
        return self.ref or f"the record of payment {self.payment_id}"

    @property
    def money(self) -> str:
        shown = "-" if self.amount is None else str(self.amount)
        return f"{shown} {self.currency}" if self.currency else shown


@dataclass(frozen=True, slots=True)
class ProviderRefund:
    """A refund in the provider's books: of the payment ``payment_ref`` (a
    PaymentIntent id) or naming ``payment_id`` (its metadata)."""

    ref: str | None
    payment_ref: str | None
    payment_id: str | None
    status: str
    amount: int
    currency: str | None

    @property
    def name(self) -> str:
        return f"refund {self.ref}" if self.ref else f"the refund of payment {self.payment_id}"


@dataclass(frozen=True, slots=True)
class ProviderBooks:
    """What ``provider`` holds: its payments and refunds."""

    provider: str
    payments: tuple[ProviderPayment, ...] = ()
    refunds: tuple[ProviderRefund, ...] = ()

    @property
    def title(self) -> str:
        return "Stripe" if self.provider == STRIPE else "the local provider"


@dataclass(frozen=True, slots=True)
class Difference:
    """One disagreement. ``payment_id`` is ours (None for the provider's
    payment or refund that names none of ours); ``provider_ref`` the
    provider's reference concerned, if any; ``ours`` and ``theirs`` the two
    sides in short; ``text`` the whole of it on one line."""

    kind: str
    payment_id: str | None
    provider_ref: str | None
    ours: str | None
    theirs: str | None
    text: str

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "payment_id": self.payment_id,
            "provider_ref": self.provider_ref,
            "ours": self.ours,
            "theirs": self.theirs,
            "text": self.text,
        }


def expected_amount(books: ProviderBooks, payment: OurPayment) -> int | None:
    """Our amount in the provider's units; None if it cannot be said in
    them (the provider was never asked for it)."""
    if books.provider != STRIPE:
        return payment.amount_minor
    try:
        return to_provider_amount(payment.currency, payment.amount_minor)
    except UnpayableAmount:
        return None


def differences(ours: Sequence[OurPayment], theirs: ProviderBooks) -> list[Difference]:
    """Every difference between ``ours`` and ``theirs``: our payments' in
    their order, then the provider's payments and refunds that are none of
    ours."""
    by_ref = {p.ref: p for p in theirs.payments if p.ref}
    by_id = {p.payment_id: p for p in theirs.payments if p.payment_id}
    found: list[Difference] = []
    matched: set[int] = set()
    refunds = _refunds_by_payment(ours, theirs.refunds)
    claimed: set[int] = set()
    for payment in ours:
        pi = (by_ref.get(payment.provider_ref) if payment.provider_ref else None) or by_id.get(
            payment.payment_id
        )
        if pi is not None:
            matched.add(id(pi))
        found += _payment_differences(payment, pi, theirs)
        mine = refunds.get(payment.payment_id, [])
        claimed.update(id(r) for r in mine)
        found += _refund_differences(payment, mine, theirs)
    ids = {p.payment_id: p for p in ours}
    for pi in theirs.payments:
        if id(pi) not in matched:
            found.append(_unknown_payment(pi, ids.get(pi.payment_id or ""), theirs))
    for refund in theirs.refunds:
        if id(refund) not in claimed and refund.status in REFUND_TAKING:
            found.append(
                Difference(
                    REFUND_UNKNOWN,
                    refund.payment_id,
                    refund.ref,
                    None,
                    _refund_text(refund),
                    f"{refund.name} ({_refund_text(refund)}) at {theirs.title} is of no payment "
                    f"we have (payment {refund.payment_id or '-'}, "
                    f"PaymentIntent {refund.payment_ref or '-'})",
                )
            )
    return found


def _refunds_by_payment(
    ours: Iterable[OurPayment], refunds: Iterable[ProviderRefund]
) -> dict[str, list[ProviderRefund]]:
    """Each of our payments' refunds at the provider: by our refund
    reference, else by the payment id it names, else by its PaymentIntent."""
    by_refund_ref = {p.refund_ref: p.payment_id for p in ours if p.refund_ref}
    ids = {p.payment_id for p in ours}
    by_provider_ref = {p.provider_ref: p.payment_id for p in ours if p.provider_ref}
    found: dict[str, list[ProviderRefund]] = {}
    for refund in refunds:
        owner = (
            (by_refund_ref.get(refund.ref) if refund.ref else None)
            or (refund.payment_id if refund.payment_id in ids else None)
            or (by_provider_ref.get(refund.payment_ref) if refund.payment_ref else None)
        )
        if owner is not None:
            found.setdefault(owner, []).append(refund)
    return found


def _payment_differences(
    payment: OurPayment, pi: ProviderPayment | None, books: ProviderBooks
) -> list[Difference]:
    expected = EXPECTED[payment.status]
    pid, status = payment.payment_id, payment.status
    if pi is None:
        if expected.may_be_absent:
            return []
        return [
            Difference(
                MISSING,
                pid,
                payment.provider_ref,
                f"{status} {payment.money}",
                None,
                f"payment {pid} is {status} ({payment.money}) here; {books.title} has no "
                f"payment {payment.provider_ref or 'for it'}",
            )
        ]
    found: list[Difference] = []
    if payment.provider_ref and pi.ref and pi.ref != payment.provider_ref:
        found.append(
            Difference(
                REFERENCE,
                pid,
                pi.ref,
                payment.provider_ref,
                pi.ref,
                f"payment {pid} names {payment.provider_ref} here; {books.title}'s payment for "
                f"it is {pi.ref}",
            )
        )
    if pi.payment_id and pi.payment_id != pid:
        found.append(
            Difference(
                REFERENCE,
                pid,
                pi.ref,
                pid,
                pi.payment_id,
                f"payment {pid}'s {pi.name} at {books.title} names payment {pi.payment_id}",
            )
        )
    if not expected.allows(pi.status):
        found.append(
            Difference(
                STATUS,
                pid,
                pi.ref,
                status,
                pi.status,
                f"payment {pid} is {status} here, {pi.name} is {pi.status} at {books.title} "
                f"(expected {expected.describe()})",
            )
        )
    if pi.currency is not None and pi.currency != payment.currency:
        found.append(
            Difference(
                CURRENCY,
                pid,
                pi.ref,
                payment.currency,
                pi.currency,
                f"payment {pid} is in {payment.currency} here, {pi.name} in {pi.currency} at "
                f"{books.title}",
            )
        )
    else:
        found += _amount_differences(payment, pi, books)
    return found


def _amount_differences(
    payment: OurPayment, pi: ProviderPayment, books: ProviderBooks
) -> list[Difference]:
    # Money received is what counts once it has been; before, the amount
    # asked (a status that should have received it is a status difference).
    received = pi.status == "succeeded"
    got, what = (pi.amount_received, "received") if received else (pi.amount, "asked for")
    want = expected_amount(books, payment)
    if got is None or got == want:
        return []
    expected = (
        f"{want} in its units" if want is not None else "nothing: it cannot say our amount exactly"
    )
    return [
        Difference(
            AMOUNT,
            payment.payment_id,
            pi.ref,
            payment.money,
            f"{got} {what}",
            f"payment {payment.payment_id} is {payment.status} {payment.money} here; "
            f"{pi.name} at {books.title} {what} {got} (expected {expected})",
        )
    ]


def _refund_text(refund: ProviderRefund) -> str:
    currency = f" {refund.currency}" if refund.currency else ""
    return f"{refund.amount}{currency} {refund.status}"


def _refund_differences(
    payment: OurPayment, refunds: Sequence[ProviderRefund], books: ProviderBooks
) -> list[Difference]:
    pid, status = payment.payment_id, payment.status
    taking = [r for r in refunds if r.status in REFUND_TAKING]
    expected = status in {"REFUNDED", "REFUNDING"}
    found: list[Difference] = []
    ours: ProviderRefund | None = None
    if expected:
        ours = next(
            (r for r in taking if payment.refund_ref and r.ref == payment.refund_ref),
            # Without a reference of our own (the local provider's record, or
            # a refund not recorded yet), the one refund there is.
            taking[0] if taking and not (payment.refund_ref and taking[0].ref) else None,
        )
    if status == "REFUNDED" and ours is None:
        named = next((r for r in refunds if r.ref and r.ref == payment.refund_ref), None)
        if named is not None:
            why = f"its {named.name} {named.status}"
        else:
            why = f"no refund {payment.refund_ref}" if payment.refund_ref else "no refund of it"
        found.append(
            Difference(
                REFUND_MISSING,
                pid,
                payment.refund_ref,
                f"REFUNDED {payment.money}",
                named.status if named else None,
                f"payment {pid} is REFUNDED ({payment.money}) here; {books.title} has {why}",
            )
        )
    if ours is not None:
        want = expected_amount(books, payment)
        if ours.amount != want or (ours.currency not in (None, payment.currency)):
            found.append(
                Difference(
                    REFUND_AMOUNT,
                    pid,
                    ours.ref,
                    payment.money,
                    _refund_text(ours),
                    f"payment {pid} was refunded {payment.money} here; {ours.name} at "
                    f"{books.title} is {_refund_text(ours)} (expected {want} in its units)",
                )
            )
    for refund in taking:
        if refund is ours:
            continue
        why = (
            f"payment {pid} is {status} here"
            if not expected
            else f"payment {pid}'s refund is {payment.refund_ref or 'another'} here"
        )
        found.append(
            Difference(
                REFUND_UNKNOWN,
                pid,
                refund.ref,
                status if not expected else payment.refund_ref,
                _refund_text(refund),
                f"{refund.name} ({_refund_text(refund)}) at {books.title}, but {why}",
            )
        )
    return found


def _unknown_payment(
    pi: ProviderPayment, owner: OurPayment | None, books: ProviderBooks
) -> Difference:
    if owner is not None:
        why = (
            f"is a second payment for payment {owner.payment_id} "
            f"(ours is {owner.provider_ref or 'not recorded'})"
        )
    elif pi.payment_id:
        why = f"is for payment {pi.payment_id}, which we do not have"
    else:
        why = "names none of our payments"
    return Difference(
        UNKNOWN,
        pi.payment_id,
        pi.ref,
        owner.status if owner else None,
        f"{pi.status} {pi.money}",
        f"{pi.name} ({pi.status}, {pi.money}) at {books.title} {why}",
    )


# -- the local provider's records, in Stripe's terms -------------------------


def local_payment(
    payment_id: str, operations: Mapping[str, int]
) -> tuple[ProviderPayment, ProviderRefund | None]:
    """The local provider's records of one payment (operation to amount, in
    ISO minor units) as a PaymentIntent and its refund. It keeps no
    references and no currency, so those are not compared."""
    if "captured" in operations:
        status = "succeeded"
    elif "declined" in operations:
        status = "requires_payment_method"
    elif "voided" in operations:
        status = "canceled"
    elif "authorized" in operations:
        status = "requires_capture"
    else:
        status = "requires_confirmation"
    # A void is recorded without an amount (and of a payment never authorized).
    asked = next(
        (operations[op] for op in ("authorized", "declined", "captured") if op in operations),
        None,
    )
    payment = ProviderPayment(
        ref=None,
        payment_id=payment_id,
        status=status,
        amount=asked,
        amount_received=operations.get("captured", 0),
        currency=None,
    )
    refund = (
        ProviderRefund(
            ref=None,
            payment_ref=None,
            payment_id=payment_id,
            status="succeeded",
            amount=operations["refunded"],
            currency=None,
        )
        if "refunded" in operations
        else None
    )
    return payment, refund


def local_books(records: Mapping[str, Mapping[str, int]]) -> ProviderBooks:
    """The local provider's books from its records (payment id to operation
    to amount)."""
    payments, refunds = [], []
    for payment_id, operations in records.items():
        payment, refund = local_payment(payment_id, operations)
        payments.append(payment)
        if refund is not None:
            refunds.append(refund)
    return ProviderBooks(LOCAL, tuple(payments), tuple(refunds))
