"""The payment provider behind a small interface, and a local stand-in.

A provider plugs in by implementing ``Provider`` (Stripe's is
``stripe_provider``). Every call carries the payment id as its idempotency
key (with the step's name for capture, void and refund): the saga may
repeat a call after a crash, and the provider must not authorize, capture
or refund twice. What the saga asks of a real provider besides:

- ``void`` releases whatever authorization exists for the payment id,
  including one whose authorize call is still in flight when the saga gives
  up on it (providers that key authorizations by idempotency key do);
- ``capture`` of an authorization it granted succeeds. A failure (an
  exception; ``ProviderError`` says whether trying again may help) is
  retried within the saga's retry budget (``retries``); a capture, void or
  refund refused for good, e.g. an authorization the provider let lapse, or
  failing past the budget, needs an operator: the payment stays where it
  stands, flagged, and ``ticketing-admin payments`` lists it;
- an authorization may stay undecided (the buyer's 3-D Secure): the payment
  stays PENDING, its hold HELD, until the provider's webhook (or ``status``,
  when the saga asks) says how it ended; past the hold, it is voided.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import asyncpg


class ProviderError(Exception):
    """The provider refused or failed an operation. ``retriable``: trying
    again later may succeed (an outage, a rate limit); False: it will not
    (the payment needs an operator at once)."""

    def __init__(self, message: str, *, retriable: bool = True) -> None:
        super().__init__(message)
        self.retriable = retriable


@dataclass(frozen=True, slots=True)
class Charge:
    """What one payment asks of the provider: everything a repeated call
    needs to be the same call (an authorization replayed under its
    idempotency key must carry the same parameters)."""

    payment_id: str
    reservation_id: str
    event_id: str
    method: str
    amount_minor: int
    currency: str


class Outcome(StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    # The buyer must act (3-D Secure): the result comes later, by webhook.
    ACTION_REQUIRED = "action_required"
    # The provider is still deciding (some methods): the result comes later.
    PROCESSING = "processing"


@dataclass(frozen=True, slots=True)
class BuyerAction:
    """What the buyer's client must do before the provider decides: the
    provider's own action type (Stripe's ``use_stripe_sdk``,
    ``redirect_to_url``), the secret its SDK confirms with, and where to send
    the buyer, if anywhere."""

    type: str
    client_secret: str
    redirect_url: str = ""


@dataclass(frozen=True, slots=True)
class Authorization:
    outcome: Outcome
    # The provider's reference for the authorization (approved, waiting, or
    # declined after it was created).
    reference: str = ""
    # Why it was declined, and the issuer's code for it (e.g. insufficient_funds).
    reason: str = ""
    decline_code: str = ""
    action: BuyerAction | None = None

    @property
    def approved(self) -> bool:
        return self.outcome is Outcome.APPROVED

    @property
    def undecided(self) -> bool:
        """The provider decides later (the buyer's action, or processing)."""
        return self.outcome in (Outcome.ACTION_REQUIRED, Outcome.PROCESSING)


class Provider(Protocol):
    name: str

    def check_method(self, method: str) -> str | None:
        """Why ``method`` cannot be charged, or None."""

    def check_amount(self, currency: str, amount_minor: int) -> str | None:
        """Why this amount cannot be charged exactly, or None."""

    async def authorize(self, charge: Charge) -> Authorization: ...

    async def status(self, charge: Charge, reference: str) -> Authorization:
        """Where an authorization left undecided (the buyer's action) stands
        now: the saga asks when no webhook told it in time."""

    async def capture(self, charge: Charge, reference: str, *, attempt: int = 0) -> None:
        """``attempt``: failed attempts at this step so far (each retry may
        need an idempotency key of its own)."""

    async def void(self, charge: Charge, reference: str | None, *, attempt: int = 0) -> None:
        """Releases an authorization; a payment never authorized, or one
        already released, is a no-op."""

    async def refund(self, charge: Charge, reference: str, *, attempt: int = 0) -> str:
        """Pays the charge back; returns the provider's reference of the refund."""


METHODS = ("test-ok", "test-declined", "test-timeout", "test-slow", "test-capture-fails")

# The reference of an authorization whose every capture fails (test-capture-fails).
UNCAPTURABLE = "local-uncapturable-"


class LocalProvider:
    """Stands in for a payment provider. It keeps its own books, as a real
    provider would (table ``provider_operations``: one row per payment and
    operation, so a repeated call is recognised), and knows five test
    methods: ``test-ok`` authorizes, ``test-declined`` declines,
    ``test-timeout`` never answers, ``test-slow`` authorizes after
    ``slow_delay_s``, ``test-capture-fails`` authorizes but every capture
    fails (as at a provider's outage), and its voids succeed."""

    name = "local"

    def __init__(self, pool: asyncpg.Pool, *, slow_delay_s: float) -> None:
        self._pool = pool
        self._slow_delay_s = slow_delay_s

    def check_method(self, method: str) -> str | None:
        if method in METHODS:
            return None
        return f"the local provider takes {', '.join(METHODS)}; got {method[:64]!r}"

    def check_amount(self, currency: str, amount_minor: int) -> str | None:
        return None

    async def authorize(self, charge: Charge) -> Authorization:
        if charge.method == "test-timeout":
            await asyncio.Event().wait()  # never answers; the saga gives up
        if charge.method == "test-slow":
            await asyncio.sleep(self._slow_delay_s)
        if charge.method == "test-declined":
            await self._record(charge.payment_id, "declined", charge.amount_minor)
            return Authorization(
                Outcome.DECLINED,
                reason="declined by the issuer (test-declined)",
                decline_code="generic_decline",
            )
        await self._record(charge.payment_id, "authorized", charge.amount_minor)
        prefix = UNCAPTURABLE if charge.method == "test-capture-fails" else "local-"
        return Authorization(Outcome.APPROVED, reference=f"{prefix}{charge.payment_id}")

    async def status(self, charge: Charge, reference: str) -> Authorization:
        # The local provider never leaves an authorization undecided.
        return Authorization(Outcome.APPROVED, reference=reference)

    async def capture(self, charge: Charge, reference: str, *, attempt: int = 0) -> None:
        if reference.startswith(UNCAPTURABLE):
            raise ProviderError("capture failed: the provider is unavailable (test-capture-fails)")
        await self._record(charge.payment_id, "captured", charge.amount_minor)

    async def void(self, charge: Charge, reference: str | None, *, attempt: int = 0) -> None:
        await self._record(charge.payment_id, "voided", 0)

    async def refund(self, charge: Charge, reference: str, *, attempt: int = 0) -> str:
        await self._record(charge.payment_id, "refunded", charge.amount_minor)
        return f"local-refund-{charge.payment_id}"

    async def _record(self, payment_id: str, operation: str, amount_minor: int) -> None:
        await self._pool.execute(
            """INSERT INTO provider_operations (payment_id, operation, amount_minor)
               VALUES ($1, $2, $3) ON CONFLICT (payment_id, operation) DO NOTHING""",
            uuid.UUID(payment_id),
            operation,
            amount_minor,
        )
