"""Both sides of a reconciliation (``ticketing_tools.reconcile``), read: our
payments from PostgreSQL, the provider's books from Stripe's API or from the
local provider's table (``provider_operations``).

A time range is cut by two clocks: ours stamps ``created_at``, the
provider its own ``created``, and the two differ by the time a call takes
(or more, for a payment retried later). So a range is never taken as the
whole truth: a payment or refund the provider lists that names a payment of
ours outside the range is looked up by id, and a payment of ours whose
PaymentIntent or refund the provider did not list is asked for by its
reference. Only what is still missing then is a difference.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import stripe

from payment_service.settings import StripeSettings
from ticketing_common.config import variable
from ticketing_common.storage.db import Executor

from .reconcile import (
    LOCAL,
    STRIPE,
    Difference,
    OurPayment,
    ProviderBooks,
    ProviderPayment,
    ProviderRefund,
    differences,
    local_books,
)

OUR_COLUMNS = (
    "payment_id, status, amount_minor, currency, provider, provider_ref, refund_ref, created_at"
)
# Stripe's largest page.
PAGE = 100
# Longest wait for one of Stripe's answers (its client retries a failed read).
STRIPE_TIMEOUT_S = 30.0


class NotConfigured(RuntimeError):
    """The provider's books cannot be read: a setting is missing (named)."""


@dataclass
class Reconciliation:
    """One provider's books against ours over ``[since, until)``."""

    provider: str
    since: datetime
    until: datetime
    ours: int = 0
    their_payments: int = 0
    their_refunds: int = 0
    differences: list[Difference] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "our_payments": self.ours,
            "their_payments": self.their_payments,
            "their_refunds": self.their_refunds,
            "differences": [d.as_dict() for d in self.differences],
        }


def _our_payment(row: asyncpg.Record) -> OurPayment:
    return OurPayment(
        payment_id=str(row["payment_id"]),
        status=row["status"],
        amount_minor=row["amount_minor"],
        currency=row["currency"],
        provider=row["provider"],
        provider_ref=row["provider_ref"],
        refund_ref=row["refund_ref"],
        created_at=row["created_at"],
    )


async def our_payments(
    db: Executor, provider: str, since: datetime, until: datetime
) -> list[OurPayment]:
    """Our payments ``provider`` took, made in ``[since, until)``, in the
    order they were made."""
    rows = await db.fetch(
        f"""SELECT {OUR_COLUMNS} FROM payments
            WHERE provider = $1 AND created_at >= $2 AND created_at < $3
            ORDER BY seq""",
        provider,
        since,
        until,
    )
    return [_our_payment(row) for row in rows]


def _uuids(ids: Iterable[str | None]) -> list[uuid.UUID]:
    """The ids that are payment ids at all (a provider's metadata may hold
    anything someone put there)."""
    found = []
    for text in ids:
        try:
            found.append(uuid.UUID(text or ""))
        except ValueError:
            continue
    return found


async def payments_named(db: Executor, ids: Iterable[str | None]) -> list[OurPayment]:
    """Those of ``ids`` we have a payment of, whenever it was made."""
    wanted = _uuids(ids)
    if not wanted:
        return []
    rows = await db.fetch(
        f"SELECT {OUR_COLUMNS} FROM payments WHERE payment_id = ANY($1::uuid[]) ORDER BY seq",
        wanted,
    )
    return [_our_payment(row) for row in rows]


async def _with_named(
    db: Executor, ours: list[OurPayment], named: Iterable[str | None]
) -> list[OurPayment]:
    """``ours`` and the payments of ours outside the range that the
    provider's books name."""
    have = {p.payment_id for p in ours}
    return ours + await payments_named(db, {n for n in named if n and n not in have})


# -- the local provider ------------------------------------------------------


async def local_records(
    db: Executor, since: datetime, until: datetime, also: Sequence[str] = ()
) -> dict[str, dict[str, int]]:
    """The local provider's records (payment id to operation to amount) of
    the payments it first saw in ``[since, until)``, and of ``also``."""
    rows = await db.fetch(
        """SELECT payment_id, operation, amount_minor FROM provider_operations
           WHERE payment_id IN (SELECT payment_id FROM provider_operations
                                GROUP BY payment_id
                                HAVING min(at) >= $1 AND min(at) < $2)
              OR payment_id = ANY($3::uuid[])
           ORDER BY payment_id""",
        since,
        until,
        _uuids(also),
    )
    records: dict[str, dict[str, int]] = {}
    for row in rows:
        records.setdefault(str(row["payment_id"]), {})[row["operation"]] = row["amount_minor"]
    return records


async def reconcile_local(db: Executor, since: datetime, until: datetime) -> Reconciliation:
    """The local provider's books against the payments it took."""
    ours = await our_payments(db, LOCAL, since, until)
    records = await local_records(db, since, until, [p.payment_id for p in ours])
    ours = await _with_named(db, ours, records)
    books = local_books(records)
    return _result(LOCAL, since, until, ours, books)


def _result(
    provider: str,
    since: datetime,
    until: datetime,
    ours: Sequence[OurPayment],
    books: ProviderBooks,
) -> Reconciliation:
    return Reconciliation(
        provider=provider,
        since=since,
        until=until,
        ours=len(ours),
        their_payments=len(books.payments),
        their_refunds=len(books.refunds),
        differences=differences(ours, books),
    )


# -- Stripe ------------------------------------------------------------------


@asynccontextmanager
async def stripe_client(settings: StripeSettings) -> AsyncIterator[stripe.StripeClient]:
    """A client of Stripe's API (or stripe-mock's) over aiohttp, its
    connections closed at the end."""
    if settings.api_key is None:
        raise NotConfigured(
            f"reading Stripe's books needs {variable(StripeSettings, 'api_key')} "
            "(a restricted key that may read PaymentIntents and Refunds is enough)"
        )
    http = stripe.AIOHTTPClient(timeout=STRIPE_TIMEOUT_S)
    try:
        yield stripe.StripeClient(
            settings.api_key.get_secret_value(),
            base_addresses={"api": settings.api_base},
            http_client=http,
            max_network_retries=2,
        )
    finally:
        await http.close_async()  # type: ignore[no-untyped-call]  # untyped in stripe 16.1


def _metadata_payment_id(obj: stripe.PaymentIntent | stripe.Refund) -> str | None:
    """The payment id our provider put in the metadata, if any."""
    metadata = obj.metadata.to_dict() if obj.metadata is not None else {}
    value = metadata.get("payment_id")
    return str(value) if value else None


def stripe_payment(pi: stripe.PaymentIntent) -> ProviderPayment:
    return ProviderPayment(
        ref=pi.id,
        payment_id=_metadata_payment_id(pi),
        status=pi.status,
        amount=pi.amount,
        amount_received=pi.amount_received or 0,
        currency=pi.currency.upper(),
    )


def stripe_refund(refund: stripe.Refund) -> ProviderRefund:
    intent = refund.payment_intent
    return ProviderRefund(
        ref=refund.id,
        payment_ref=intent if isinstance(intent, str) or intent is None else intent.id,
        payment_id=_metadata_payment_id(refund),
        status=refund.status or "unknown",
        amount=refund.amount,
        currency=refund.currency.upper(),
    )


def _created(since: datetime, until: datetime) -> tuple[int, int]:
    """Stripe's ``created`` bounds (whole seconds, ``gte`` and ``lt``)
    covering ``[since, until)``."""
    return math.floor(since.timestamp()), math.ceil(until.timestamp())


async def stripe_listing(
    client: stripe.StripeClient, since: datetime, until: datetime
) -> ProviderBooks:
    """Every PaymentIntent and refund Stripe lists as created in the range
    (all pages)."""
    gte, lt = _created(since, until)
    intents = await client.v1.payment_intents.list_async(
        params={"created": {"gte": gte, "lt": lt}, "limit": PAGE}
    )
    payments = [stripe_payment(pi) async for pi in intents.auto_paging_iter()]
    listed = await client.v1.refunds.list_async(
        params={"created": {"gte": gte, "lt": lt}, "limit": PAGE}
    )
    refunds = [stripe_refund(refund) async for refund in listed.auto_paging_iter()]
    return ProviderBooks(STRIPE, tuple(payments), tuple(refunds))


def _absent(error: stripe.StripeError) -> bool:
    return isinstance(error, stripe.InvalidRequestError) and error.http_status == 404


async def stripe_lookups(
    client: stripe.StripeClient, ours: Sequence[OurPayment], listed: ProviderBooks
) -> ProviderBooks:
    """``listed`` and what Stripe holds under our references that it did not
    list (created outside the range by its clock); a reference Stripe does
    not know stays missing."""
    listed_ids = {p.payment_id for p in listed.payments}
    listed_refs = {p.ref for p in listed.payments}
    listed_refunds = {r.ref for r in listed.refunds}
    payments, refunds = list(listed.payments), list(listed.refunds)
    for payment in ours:
        ref = payment.provider_ref
        if ref and ref not in listed_refs and payment.payment_id not in listed_ids:
            try:
                payments.append(stripe_payment(await client.v1.payment_intents.retrieve_async(ref)))
            except stripe.StripeError as exc:
                if not _absent(exc):
                    raise
        if payment.refund_ref and payment.refund_ref not in listed_refunds:
            try:
                refunds.append(
                    stripe_refund(await client.v1.refunds.retrieve_async(payment.refund_ref))
                )
            except stripe.StripeError as exc:
                if not _absent(exc):
                    raise
    return ProviderBooks(STRIPE, tuple(payments), tuple(refunds))


async def reconcile_stripe(
    db: Executor, client: stripe.StripeClient, since: datetime, until: datetime
) -> Reconciliation:
    """Stripe's books against the payments it took."""
    ours = await our_payments(db, STRIPE, since, until)
    listed = await stripe_listing(client, since, until)
    named = [p.payment_id for p in listed.payments] + [r.payment_id for r in listed.refunds]
    ours = await _with_named(db, ours, named)
    books = await stripe_lookups(client, ours, listed)
    return _result(STRIPE, since, until, ours, books)
